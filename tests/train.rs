//! The model, the loss and metrics against hand-computed values, checkpoints, resume and
//! divergence.

mod common;

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use predicates::prelude::PredicateBooleanExt;
use sweep::config::TrialConfig;
use sweep::config::{Goal, ModelError, UNetConfig};
use sweep::train::checkpoint::{CheckpointKind, EpochSummary, TrialDir};
use sweep::train::device::DeviceSpec;
use sweep::train::metrics::{Confusion, MetricAccumulator, bce_dice_loss, bce_with_logits, confusion_counts, soft_dice};
use sweep::train::{self, Faults, Observer, Outcome, SavedCheckpoint, StepProgress, StopRequest, TrialContext};

fn cpu() -> Device {
    DeviceSpec::Cpu.open().unwrap()
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), &cpu())
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().iter::<f64>().next().unwrap()
}

#[test]
fn unet_keeps_the_input_size_for_depths_3_to_5_and_non_square_inputs() {
    for depth in 3..=5 {
        let config = UNetConfig { base_filters: 2, depth, ..UNetConfig::default() };
        config.check_input(64, 96).unwrap();
        let model = config.init(&cpu(), 1);
        let input = Tensor::<4>::random([2, 3, 64, 96], Distribution::Default, &cpu());
        assert_eq!(model.forward(input).dims(), [2, 1, 64, 96], "depth {depth}");
    }
}

#[test]
fn an_indivisible_input_side_names_the_nearest_valid_sizes() {
    let config = UNetConfig::default();
    let err = config.check_input(100, 128).unwrap_err();
    assert!(matches!(err, ModelError::IndivisibleSide { side: 100, multiple: 32, .. }));
    assert!(err.to_string().contains("96 or 128"), "{err}");
    assert!(config.check_input(20, 32).unwrap_err().to_string().contains("nearest valid sizes: 32"));
}

/// Logits of ±20 (probabilities 0 or 1 to within 2e-9) from a 0/1 pattern.
fn confident(pattern: &[f32]) -> Vec<f32> {
    pattern.iter().map(|&v| if v > 0.5 { 20.0 } else { -20.0 }).collect()
}

fn metrics_of(logits: Vec<f32>, truth: Vec<f32>) -> (f64, f64, Confusion) {
    let shape = [1, 1, 4, 4];
    let (l, t) = (tensor(logits, shape), tensor(truth, shape));
    let (loss, dice) = bce_dice_loss(l.clone(), t.clone());
    let counts: Vec<i64> = confusion_counts(l, t).into_data().iter::<i64>().collect();
    (scalar(loss), scalar(dice), Confusion::from_counts(counts[0] as u64, counts[1] as u64, counts[2] as u64, 16))
}

#[test]
fn loss_and_metrics_match_hand_computed_values() {
    let zeros = vec![0.0; 16];
    let ones = vec![1.0; 16];
    let left: Vec<f32> = (0..16).map(|i| f32::from(i % 4 < 2)).collect();
    let top: Vec<f32> = (0..16).map(|i| f32::from(i < 8)).collect();

    // All background, predicted all background: dice = (0 + 1) / (0 + 0 + 1) = 1; the car class
    // is absent from truth and prediction, so mean IoU is the background's alone, and fg_iou is
    // undefined.
    let (loss, dice, c) = metrics_of(confident(&zeros), zeros.clone());
    assert!((dice - 1.0).abs() < 1e-6 && loss.abs() < 1e-6, "{loss} {dice}");
    assert_eq!((c.mean_iou(), c.foreground_iou()), (1.0, None));

    // All car, predicted all car: background absent, mean IoU = car IoU = 1.
    let (_, dice, c) = metrics_of(confident(&ones), ones.clone());
    assert!((dice - 1.0).abs() < 1e-6);
    assert_eq!((c.mean_iou(), c.background_iou()), (1.0, None));

    // Perfect on a half-car image.
    let (loss, dice, c) = metrics_of(confident(&left), left.clone());
    assert!((dice - 1.0).abs() < 1e-6 && loss < 1e-6);
    assert_eq!(c, Confusion { tp: 8, fp: 0, fn_: 0, tn: 8 });
    assert_eq!(c.mean_iou(), 1.0);

    // Inverted: every pixel wrong. dice = (0 + 1) / (8 + 8 + 1); IoU 0 for both classes.
    let (loss, dice, c) = metrics_of(confident(&left.iter().map(|v| 1.0 - v).collect::<Vec<_>>()), left.clone());
    assert!((dice - 1.0 / 17.0).abs() < 1e-6, "{dice}");
    assert!((loss - (20.0 + 1.0 - 1.0 / 17.0)).abs() < 1e-4, "BCE of a confident miss is 20: {loss}");
    assert_eq!((c.mean_iou(), c.foreground_iou()), (0.0, Some(0.0)));

    // Half overlap: truth = left half, prediction = top half: tp = fp = fn = tn = 4.
    let (_, dice, c) = metrics_of(confident(&top), left.clone());
    assert_eq!(c, Confusion { tp: 4, fp: 4, fn_: 4, tn: 4 });
    assert!((c.mean_iou() - 1.0 / 3.0).abs() < 1e-12);
    assert!((dice - 9.0 / 17.0).abs() < 1e-6, "(2*4 + 1) / (8 + 8 + 1): {dice}");

    // A class absent from the truth but predicted: it counts, with IoU 0.
    let (_, _, c) = metrics_of(confident(&top), zeros);
    assert_eq!(c.foreground_iou(), Some(0.0));
    assert!((c.mean_iou() - 0.25).abs() < 1e-12, "(8/16 + 0) / 2");
}

#[test]
fn bce_from_logits_matches_the_textbook_formula_and_never_overflows() {
    let logits = vec![-100.0f32, -3.0, -0.5, 0.0, 0.25, 2.0, 7.0, 100.0];
    let targets = vec![0.0f32, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let expected: f64 = logits
        .iter()
        .zip(&targets)
        .map(|(&x, &y)| {
            let (x, y) = (x as f64, y as f64);
            // log(1 + e^-|x|) + max(x, 0) - x*y, the stable form of -[y log p + (1-y) log(1-p)]
            (1.0 + (-x.abs()).exp()).ln() + x.max(0.0) - x * y
        })
        .sum::<f64>()
        / 8.0;
    let got = scalar(bce_with_logits(tensor(logits, [1, 1, 2, 4]), tensor(targets, [1, 1, 2, 4])));
    assert!(got.is_finite() && (got - expected).abs() < 1e-5, "{got} vs {expected}");

    // Soft dice at p = 0.5 everywhere with 4 ones of 16: (2*2 + 1) / (4 + 8 + 1).
    let truth: Vec<f32> = (0..16).map(|i| f32::from(i < 4)).collect();
    let dice = scalar(soft_dice(tensor(vec![0.5; 16], [1, 1, 4, 4]), tensor(truth, [1, 1, 4, 4])));
    assert!((dice - 5.0 / 13.0).abs() < 1e-6, "{dice}");
}

#[test]
fn epoch_dice_is_weighted_by_batch_size() {
    let mut acc = MetricAccumulator::default();
    acc.add_batch(0.2, 0.5, 3, &Confusion::default());
    acc.add_batch(0.6, 1.0, 1, &Confusion::default());
    let m = acc.finish();
    assert!((m.dice - 0.625).abs() < 1e-12, "(3*0.5 + 1*1.0) / 4 = 0.625, not the plain mean 0.75");
    assert!((m.loss - 0.3).abs() < 1e-12);
}

#[test]
fn confusion_matrix_iou_matches_a_naive_per_pixel_loop() {
    let device = cpu();
    let mut total = Confusion::default();
    let mut naive = [0u64; 4];
    for seed in 0..3 {
        device.seed(seed);
        let logits = Tensor::<4>::random([3, 1, 17, 23], Distribution::Normal(0.0, 2.0), &device);
        let truth = Tensor::<4>::random([3, 1, 17, 23], Distribution::Bernoulli(0.3), &device);
        let counts: Vec<i64> = confusion_counts(logits.clone(), truth.clone()).into_data().iter::<i64>().collect();
        total.add(&Confusion::from_counts(counts[0] as u64, counts[1] as u64, counts[2] as u64, 3 * 17 * 23));
        let l: Vec<f32> = logits.into_data().iter::<f32>().collect();
        let t: Vec<f32> = truth.into_data().iter::<f32>().collect();
        for (x, y) in l.iter().zip(&t) {
            let p = 1.0 / (1.0 + (-x).exp());
            match (p > 0.5, *y > 0.5) {
                (true, true) => naive[0] += 1,
                (true, false) => naive[1] += 1,
                (false, true) => naive[2] += 1,
                (false, false) => naive[3] += 1,
            }
        }
    }
    assert_eq!(total, Confusion { tp: naive[0], fp: naive[1], fn_: naive[2], tn: naive[3] });
    let fg = naive[0] as f64 / (naive[0] + naive[1] + naive[2]) as f64;
    let bg = naive[3] as f64 / (naive[3] + naive[1] + naive[2]) as f64;
    assert!((total.mean_iou() - (fg + bg) / 2.0).abs() < 1e-12);
}

/// Records epochs and can ask to stop.
#[derive(Default)]
struct Recorder {
    epochs: Vec<EpochSummary>,
    replayed: Vec<usize>,
    stop_after_epoch: Option<usize>,
    stop_at_step: Option<(usize, usize)>,
    at: (usize, usize),
}

impl Observer for Recorder {
    fn on_step(&mut self, p: &StepProgress) {
        self.at = (p.epoch, p.step);
    }
    fn on_epoch(&mut self, s: &EpochSummary, _: &[SavedCheckpoint]) -> Result<(), String> {
        self.epochs.push(s.clone());
        Ok(())
    }
    fn replay(&mut self, history: &[EpochSummary], _: &[SavedCheckpoint]) -> Result<(), String> {
        self.replayed = history.iter().map(|h| h.epoch).collect();
        Ok(())
    }
    fn stop_request(&self) -> StopRequest {
        if self.stop_at_step.is_some_and(|(e, s)| self.at.0 == e && self.at.1 >= s) {
            return StopRequest::Now;
        }
        match (self.stop_after_epoch, self.epochs.last()) {
            (Some(n), Some(last)) if last.epoch >= n => StopRequest::AfterEpoch,
            _ => StopRequest::Continue,
        }
    }
}

fn context<'a>(dir: &Path, runs: &'a Path, faults: Faults) -> TrialContext<'a> {
    TrialContext { trial_dir: TrialDir::new(dir), runs_root: runs, device: cpu(), faults }
}

fn metric_values(epochs: &[EpochSummary]) -> Vec<[f64; 8]> {
    epochs.iter().map(|e| [e.train.loss, e.train.dice, e.train.iou, e.train.fg_iou, e.val.loss, e.val.dice, e.val.iou, e.val.fg_iou]).collect()
}

#[test]
fn a_resumed_run_ends_with_the_same_metrics_as_an_uninterrupted_one() {
    let runs = tempfile::tempdir().unwrap();
    let config = common::tiny_config();

    let mut straight = Recorder::default();
    let outcome = train::train(&config, &context(&runs.path().join("a"), runs.path(), Faults::default()), &mut straight).unwrap();
    assert!(matches!(outcome, Outcome::Completed { epochs: 3, .. }), "{outcome:?}");

    // Stopped gracefully after epoch 1, then resumed.
    let dir_b = runs.path().join("b");
    let mut first = Recorder { stop_after_epoch: Some(1), ..Default::default() };
    assert_eq!(train::train(&config, &context(&dir_b, runs.path(), Faults::default()), &mut first).unwrap(), Outcome::Stopped { epochs_done: 1 });
    let mut second = Recorder::default();
    train::train(&config, &context(&dir_b, runs.path(), Faults::default()), &mut second).unwrap();
    assert_eq!(second.replayed, vec![1], "the tracker is offered epoch 1 again on resume");
    let resumed: Vec<EpochSummary> = first.epochs.iter().chain(&second.epochs).cloned().collect();
    assert_eq!(metric_values(&resumed), metric_values(&straight.epochs));

    // Stopped in the middle of epoch 2 (its partial work is dropped), then resumed.
    let dir_c = runs.path().join("c");
    let mut first = Recorder { stop_at_step: Some((2, 2)), ..Default::default() };
    assert_eq!(train::train(&config, &context(&dir_c, runs.path(), Faults::default()), &mut first).unwrap(), Outcome::Stopped { epochs_done: 1 });
    let mut second = Recorder::default();
    train::train(&config, &context(&dir_c, runs.path(), Faults::default()), &mut second).unwrap();
    let resumed: Vec<EpochSummary> = first.epochs.iter().chain(&second.epochs).cloned().collect();
    assert_eq!(metric_values(&resumed), metric_values(&straight.epochs));

    // Completed with 1 epoch as its target, then continued to 3 (issue 16, item 4).
    let dir_d = runs.path().join("d");
    let mut first = Recorder::default();
    let outcome = train::train(&config.with_epochs(1), &context(&dir_d, runs.path(), Faults::default()), &mut first).unwrap();
    assert!(matches!(outcome, Outcome::Completed { epochs: 1, .. }), "{outcome:?}");
    let mut second = Recorder::default();
    train::train(&config, &context(&dir_d, runs.path(), Faults::default()), &mut second).unwrap();
    assert_eq!(second.replayed, vec![1], "it goes on from its checkpoint");
    let continued: Vec<EpochSummary> = first.epochs.iter().chain(&second.epochs).cloned().collect();
    assert_eq!(metric_values(&continued), metric_values(&straight.epochs));
    assert_eq!(TrialDir::new(&dir_d).read_config().unwrap(), config, "the directory describes the trial as it is now");
}

#[test]
fn the_same_seed_gives_the_same_metrics_and_another_seed_does_not() {
    let runs = tempfile::tempdir().unwrap();
    let mut config = common::tiny_config();
    config.train.epochs = 1;
    let run = |dir: &str, config: &TrialConfig| {
        let mut r = Recorder::default();
        train::train(config, &context(&runs.path().join(dir), runs.path(), Faults::default()), &mut r).unwrap();
        metric_values(&r.epochs)
    };
    let a = run("a", &config);
    assert_eq!(a, run("b", &config));
    config.train.seed += 1;
    assert_ne!(a, run("c", &config));
}

#[test]
fn a_nan_loss_ends_the_run_as_diverged_with_epoch_and_step() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("run");
    let faults = Faults { nan_loss_at: Some((2, 3)), ..Faults::default() };
    let mut r = Recorder::default();
    let outcome = train::train(&common::tiny_config(), &context(&dir, runs.path(), faults), &mut r).unwrap();
    match outcome {
        Outcome::Diverged { epoch, step, value } => assert_eq!((epoch, step, value.is_nan()), (2, 3, true)),
        other => panic!("expected divergence, got {other:?}"),
    }
    assert_eq!(r.epochs.len(), 1, "epoch 1 was recorded, epoch 2 never completed");
    let last = TrialDir::new(&dir).load(CheckpointKind::Last).unwrap().unwrap();
    assert_eq!(last.state.epochs_done, 1, "the last good checkpoint is kept");
}

#[test]
fn the_best_checkpoint_follows_the_objective_in_its_direction() {
    let runs = tempfile::tempdir().unwrap();
    for (name, goal) in [("val_loss", Goal::Minimize), ("val_iou", Goal::Maximize), ("train_dice", Goal::Maximize)] {
        let mut config = common::tiny_config();
        config.train.epochs = 4;
        config.metric.name = name.into();
        config.metric.goal = goal;
        let dir = runs.path().join(name);
        train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
        let run = TrialDir::new(&dir);
        let last = run.load(CheckpointKind::Last).unwrap().unwrap();
        let values: Vec<f64> = last.state.history.iter().map(|h| h.metric(name).unwrap()).collect();
        let best_epoch = match goal {
            Goal::Minimize => values.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 + 1,
            Goal::Maximize => values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0))).unwrap().0 + 1,
        };
        let best = last.state.best.unwrap();
        assert_eq!(best.epoch, best_epoch, "{name}: {values:?}");
        let best_file = run.load(CheckpointKind::Best).unwrap().unwrap();
        assert_eq!(best_file.state.epochs_done, best_epoch, "{name}: the best file holds the best epoch's model");
    }
}

#[test]
fn a_saved_model_loads_back_with_identical_predictions() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("run");
    let mut config = common::tiny_config();
    config.train.epochs = 2;
    train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
    let run = TrialDir::new(&dir);
    let device = cpu();
    device.seed(123);
    let input = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
    let (_, a, _) = train::load_model(&run, CheckpointKind::Last, &device).unwrap();
    let (loaded_config, b, state) = train::load_model(&run, CheckpointKind::Last, &device).unwrap();
    assert_eq!(loaded_config, config, "the run directory holds its resolved config");
    assert_eq!(state.epochs_done, 2);
    let pa: Vec<f32> = a.valid().forward(input.clone()).into_data().iter::<f32>().collect();
    let pb: Vec<f32> = b.valid().forward(input.clone()).into_data().iter::<f32>().collect();
    assert_eq!(pa, pb);

    // A model saved from memory and loaded into a freshly initialised one predicts the same,
    // BatchNorm running statistics included.
    let fresh = config.model.init(&device, 99);
    let bytes = a.clone().into_record().into_bytes().unwrap();
    let reloaded = fresh.load_record(burn::store::ModuleRecord::from_bytes(bytes).unwrap());
    let pc: Vec<f32> = reloaded.valid().forward(input).into_data().iter::<f32>().collect();
    assert_eq!(pa, pc);
}

/// A checkpoint that burn's Vulkan backend wrote on an NVIDIA H200 (the main job's best trial,
/// trained by `bench/gpu.sh`; BENCHMARKS.md, "GPU") reloads on the CPU, whose convolutions and
/// batch norm are our own kernels, and evaluates to the validation metrics the GPU recorded for
/// that epoch and to the GPU's own re-evaluation. IoU and foreground IoU count thresholded
/// pixels: they agree unless a logit lies within float32 rounding of 0, and one pixel of the
/// 80 x 64 x 64 validation pixels moves IoU by about 3e-6, so 1e-5 allows three. Loss and dice
/// average float32 probabilities summed in another order: within 7e-8 there.
#[test]
fn a_checkpoint_written_on_a_gpu_reloads_on_the_cpu_with_the_metrics_the_gpu_recorded() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vulkan-h200");
    let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture.join("recorded.json")).unwrap()).unwrap();
    let runs = tempfile::tempdir().unwrap();
    let trial = TrialDir::new(fixture.join("hue-1"));
    let e = train::predict::evaluate_checkpoint(&trial, CheckpointKind::Best, runs.path(), None, sweep::train::scoring::Tta::None, &cpu()).unwrap();
    assert_eq!((e.epoch, e.images), (11, 80));
    let m = &e.metrics;
    for (name, ours) in [("loss", m.loss), ("dice", m.dice), ("iou", m.iou), ("fg_iou", m.fg_iou)] {
        for source in ["val", "gpu_eval"] {
            let gpu = recorded[source][name].as_f64().unwrap();
            assert!((ours - gpu).abs() <= 1e-5, "{name}: {ours} on the CPU, {gpu} recorded on the GPU ({source})");
        }
    }
    // The model is the trained one, not a fresh initialisation that would also load.
    assert!(m.iou > 0.93, "{}", m.iou);
}

#[test]
fn a_run_directory_with_another_config_is_refused() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("run");
    let mut config = common::tiny_config();
    config.train.epochs = 1;
    train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
    config.train.learning_rate *= 2.0;
    let err = train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap_err();
    assert!(err.to_string().contains("belongs to another configuration"), "{err}");
}

#[test]
fn split_by_car_holds_out_whole_cars_of_a_carvana_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("carvana");
    common::write_carvana(&data, 12, 32, 32);
    // Rename to 3 cars x 4 views: car000_01 .. car002_04.
    for i in 0..12 {
        let (from, to) = (format!("car{i:03}_01"), format!("car{:03}_{:02}", i / 4, i % 4 + 1));
        std::fs::rename(data.join("train").join(format!("{from}.jpg")), data.join("train").join(format!("{to}.jpg"))).unwrap();
        std::fs::rename(data.join("train_masks").join(format!("{from}_mask.gif")), data.join("train_masks").join(format!("{to}_mask.gif"))).unwrap();
    }
    let mut config = common::tiny_config();
    config.data.source = data.display().to_string();
    config.data.image_size = [32, 32];
    config.data.val_fraction = 0.25;
    config.data.split_by = sweep::config::SplitBy::Car;
    let split = train::load_split(&config, dir.path()).unwrap();
    let car = |i: &usize| split.samples[*i].id[..6].to_string();
    let val_cars: std::collections::HashSet<String> = split.val.iter().map(car).collect();
    assert_eq!((split.train.len(), split.val.len(), val_cars.len()), (8, 4, 1), "one whole car of three held out");
    assert!(split.train.iter().all(|i| !val_cars.contains(&car(i))));
    // The setting is part of the trial's identity, but leaves every split-by-image config's as it was.
    assert!(config.canonical_json().contains("\"split_by\":\"car\""));
    config.data.split_by = sweep::config::SplitBy::Image;
    assert!(!config.canonical_json().contains("split_by"));
}

// ---- issue 15: validation over the whole split, checkpoint order, leftovers, predict names ----

#[test]
fn validation_metrics_do_not_depend_on_the_batch_size() {
    let runs = tempfile::tempdir().unwrap();
    let config = common::tiny_config();
    let split = train::load_split(&config, runs.path()).unwrap();
    assert!(split.val.len() >= 5, "{}", split.val.len());
    let model = config.model.init(&cpu(), 7);
    let measure = |batch: usize| {
        let loader = sweep::data::Loader::eval(split.samples.clone(), split.val.clone(), batch, config.augment.rescale);
        train::evaluate(&model, &loader, &cpu())
    };
    // One batch holding the whole split is the definition: the split's BCE and soft dice.
    let whole = measure(split.val.len());
    for batch in [1, 2, 4] {
        let m = measure(batch);
        for ((name, a), (_, b)) in m.named().into_iter().zip(whole.named()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "batch {batch}: {name} {a} vs {b} over the whole split");
        }
    }
}

/// A tracker as the worker keeps it: the epochs recorded, and the epoch of each checkpoint row
/// (a row only moves forward, as the store's upsert does).
#[derive(Default)]
struct Tracker {
    epochs: Vec<usize>,
    checkpoints: std::collections::HashMap<CheckpointKind, usize>,
}

impl Tracker {
    fn record(&mut self, epoch: usize, saved: &[SavedCheckpoint]) {
        if !self.epochs.contains(&epoch) {
            self.epochs.push(epoch);
        }
        for c in saved {
            let row = self.checkpoints.entry(c.kind).or_insert(c.epoch);
            *row = (*row).max(c.epoch);
        }
    }
}

impl Observer for Tracker {
    fn on_epoch(&mut self, s: &EpochSummary, saved: &[SavedCheckpoint]) -> Result<(), String> {
        self.record(s.epoch, saved);
        Ok(())
    }
    fn on_checkpoint(&mut self, saved: &SavedCheckpoint) -> Result<(), String> {
        assert!(self.epochs.contains(&saved.epoch), "a checkpoint of epoch {} before its epoch was recorded", saved.epoch);
        self.record(saved.epoch, std::slice::from_ref(saved));
        Ok(())
    }
    fn replay(&mut self, history: &[EpochSummary], saved: &[SavedCheckpoint]) -> Result<(), String> {
        for (i, h) in history.iter().enumerate() {
            self.record(h.epoch, if i + 1 == history.len() { saved } else { &[] });
        }
        Ok(())
    }
}

#[test]
fn a_crash_between_an_epochs_writes_never_leaves_a_best_checkpoint_the_tracker_has_not_recorded() {
    let runs = tempfile::tempdir().unwrap();
    let mut config = common::tiny_config();
    config.train.epochs = 2;
    config.metric.name = "train_loss".into(); // falls every epoch here, so each epoch writes both files
    config.metric.goal = Goal::Minimize;
    for (epoch, write) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        let dir = runs.path().join(format!("crash-{epoch}-{write}"));
        let run = TrialDir::new(&dir);
        let mut tracker = Tracker::default();
        let faults = Faults { crash_after_write: Some((epoch, write)), ..Faults::default() };
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train::train(&config, &context(&dir, runs.path(), faults), &mut tracker).unwrap();
        }));
        assert!(crashed.is_err(), "the fault at write {write} of epoch {epoch} fired");
        if let Some(best) = run.read_state(CheckpointKind::Best).unwrap() {
            assert!(
                tracker.epochs.contains(&best.epochs_done),
                "write {write} of epoch {epoch}: best.ckpt holds epoch {} that the tracker never recorded (it has {:?})",
                best.epochs_done,
                tracker.epochs
            );
        }
        // Resumed: best.ckpt holds the best epoch, the tracker says so, and every epoch is there.
        train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut tracker).unwrap();
        let state = run.load(CheckpointKind::Last).unwrap().unwrap().state;
        let best = state.best.unwrap().epoch;
        assert_eq!(run.read_state(CheckpointKind::Best).unwrap().unwrap().epochs_done, best, "crash at write {write} of epoch {epoch}");
        assert_eq!((tracker.checkpoints[&CheckpointKind::Best], tracker.checkpoints[&CheckpointKind::Last]), (best, 2));
        assert_eq!(tracker.epochs, vec![1, 2]);
    }
}

#[test]
fn temp_files_of_dead_writers_are_removed_when_a_trial_resumes_and_a_live_writers_are_kept() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("run");
    let mut config = common::tiny_config();
    config.train.epochs = 1;
    train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
    let host = sweep::util::hostname();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    let mut live = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let ck = dir.join("checkpoints");
    let dead_here = ck.join(format!(".last.ckpt.tmp-{dead}-{host}"));
    let older_name = ck.join(format!(".best.ckpt.tmp-{dead}"));
    let dead_config = dir.join(format!(".config.json.tmp-{dead}-{host}"));
    let live_here = ck.join(format!(".last.ckpt.tmp-{}-{host}", live.id()));
    let other_host = ck.join(format!(".last.ckpt.tmp-{dead}-another-node"));
    for p in [&dead_here, &older_name, &dead_config, &live_here, &other_host] {
        std::fs::write(p, b"half a checkpoint").unwrap();
    }
    train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
    for gone in [&dead_here, &older_name, &dead_config] {
        assert!(!gone.exists(), "{} is removed", gone.display());
    }
    assert!(live_here.exists(), "a live writer's file is kept");
    assert!(other_host.exists(), "another host's file is kept: its pid says nothing here");
    live.kill().unwrap();
    live.wait().unwrap();
    train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
    assert!(!live_here.exists(), "removed once its writer is gone");
    assert!(TrialDir::new(&dir).load(CheckpointKind::Last).unwrap().is_some(), "the checkpoints themselves are kept");
}

#[test]
fn predict_refuses_two_images_that_would_write_the_same_outputs() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("run");
    let mut config = common::tiny_config();
    config.train.epochs = 1;
    train::train(&config, &context(&dir, runs.path(), Faults::default()), &mut Recorder::default()).unwrap();
    let image = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
    let [ax, bx, by] = ["a/x.jpg", "b/x.png", "b/y.png"].map(|p| runs.path().join(p));
    for p in [&ax, &bx, &by] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image.save(p).unwrap();
    }
    let out = runs.path().join("pred");
    let predict = |images: [&Path; 2]| common::sweep(runs.path()).arg("predict").arg(&dir).args(images).arg("--out").arg(&out).assert();
    predict([&ax, &bx]).code(2).stderr(
        predicates::str::contains("a/x.jpg")
            .and(predicates::str::contains("b/x.png"))
            .and(predicates::str::contains("x_mask.png"))
            .and(predicates::str::contains("separate --out")),
    );
    assert!(!out.join("x_mask.png").exists(), "nothing is written");
    predict([&ax, &by]).success();
    assert!(out.join("x_mask.png").is_file() && out.join("y_mask.png").is_file());
}

/// A Carvana-layout set of `n` PNG images whose sizes are odd and not square, none the training
/// size: a red ellipse (the car) on a grey background, at a place and size that vary.
fn write_odd_sized_set(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("train")).unwrap();
    std::fs::create_dir_all(dir.join("train_masks")).unwrap();
    let sizes = [(37u32, 23u32), (51, 29), (45, 31), (33, 41)];
    for i in 0..n {
        let (w, h) = sizes[i % sizes.len()];
        let (cx, cy) = ((w / 3 + (i as u32 * 5) % (w / 3)) as f32, (h / 3 + (i as u32 * 3) % (h / 3)) as f32);
        let (rx, ry) = (w as f32 / (3.0 + (i % 3) as f32), h as f32 / 3.5);
        let inside = |x: u32, y: u32| ((x as f32 - cx) / rx).powi(2) + ((y as f32 - cy) / ry).powi(2) <= 1.0;
        let grey = 40 + (i as u8 * 13) % 60;
        let image = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(if inside(x, y) { [215, 50, 40] } else { [grey, grey, grey + 10] }));
        let mask = image::GrayImage::from_fn(w, h, |x, y| image::Luma([if inside(x, y) { 255 } else { 0 }]));
        image.save(dir.join("train").join(format!("car{i:02}.png"))).unwrap();
        mask.save(dir.join("train_masks").join(format!("car{i:02}_mask.png"))).unwrap();
    }
}

/// The tiny model on `data` at 20x24 (neither the images' size nor square), scoring the
/// validation split at full size every epoch and ranked by it.
fn full_resolution_config(data: &Path) -> TrialConfig {
    let mut config = common::tiny_config();
    config.data.source = data.display().to_string();
    config.data.image_size = [20, 24];
    config.data.val_fraction = 0.5;
    config.data.eval_full_resolution = true;
    config.metric = sweep::config::Objective { name: "val_full_iou".into(), goal: Goal::Maximize };
    config.train.epochs = 2;
    config.train.batch_size = 4;
    config.train.learning_rate = 1e-2;
    config
}

/// scikit-learn's figures on the masks `sweep predict` wrote (`<out>/<id>_mask.png`) against the
/// dataset's (`<data>/train_masks/<id>_mask.png`): each image's, and pooled over every pixel of
/// them all.
const SKLEARN_REFERENCE: &str = r#"
import json, sys
import numpy as np
from PIL import Image
from sklearn.metrics import f1_score, jaccard_score
data, out, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
def scores(t, p):
    return {"iou": jaccard_score(t, p, average="macro"), "dice": f1_score(t, p), "fg_iou": jaccard_score(t, p)}
truths, preds, each = [], [], {}
for i in ids:
    t = (np.array(Image.open(f"{data}/train_masks/{i}_mask.png")) > 0).ravel()
    p = (np.array(Image.open(f"{out}/{i}_mask.png")) > 0).ravel()
    truths.append(t); preds.append(p); each[i] = scores(t, p)
print(json.dumps({"images": each, "pooled": scores(np.concatenate(truths), np.concatenate(preds))}))
"#;

/// Issue 30: `sweep eval` measures at each image's own size exactly what scikit-learn computes on
/// the masks `sweep predict` writes; what training records as val_full_* is the same figure;
/// per-image figures average as README says (pooled: one confusion matrix; mean per image).
#[test]
fn full_resolution_metrics_equal_scikit_learns_on_the_masks_predict_writes() {
    let root = tempfile::tempdir().unwrap();
    let [data, runs, dir, out] = ["data", "runs", "runs/trial", "masks"].map(|p| root.path().join(p));
    write_odd_sized_set(&data, 12);
    let config = full_resolution_config(&data);
    let mut recorder = Recorder::default();
    train::train(&config, &context(&dir, &runs, Faults::default()), &mut recorder).unwrap();
    assert!(recorder.epochs.iter().all(|e| e.val_full.is_some()), "every epoch is scored at full size");

    let eval = common::sweep(&runs).arg("eval").arg(&dir).args(["--json", "--per-image"]).assert().success();
    let e: serde_json::Value = serde_json::from_slice(&eval.get_output().stdout).unwrap();
    let pooled = &e["original_size"]["pooled"];
    let best = recorder.epochs.iter().max_by(|a, b| a.val_full.unwrap().iou.total_cmp(&b.val_full.unwrap().iou)).unwrap();
    assert_eq!(e["epoch"], best.epoch, "the best checkpoint is the best val_full_iou's epoch");
    assert!((pooled["iou"].as_f64().unwrap() - best.val_full.unwrap().iou).abs() < 1e-12, "eval measures what training recorded");

    let images = e["per_image"].as_array().unwrap();
    assert_eq!(images.len(), 6, "the validation half of 12 images");
    let ids: Vec<&str> = images.iter().map(|i| i["image"].as_str().unwrap()).collect();
    let files: Vec<std::path::PathBuf> = ids.iter().map(|id| data.join("train").join(format!("{id}.png"))).collect();
    common::sweep(&runs).arg("predict").arg(&dir).args(&files).arg("--out").arg(&out).assert().success();
    let reference = common::python(SKLEARN_REFERENCE, &[data.to_str().unwrap(), out.to_str().unwrap(), &ids.join(",")]);
    for image in images {
        let theirs = &reference["images"][image["image"].as_str().unwrap()];
        for metric in ["iou", "dice", "fg_iou"] {
            let (ours, theirs) = (image[metric].as_f64().unwrap(), theirs[metric].as_f64().unwrap());
            assert!((ours - theirs).abs() < 1e-6, "{} {metric}: ours {ours}, scikit-learn {theirs}", image["image"]);
        }
    }
    for metric in ["iou", "dice", "fg_iou"] {
        let (ours, theirs) = (pooled[metric].as_f64().unwrap(), reference["pooled"][metric].as_f64().unwrap());
        assert!((ours - theirs).abs() < 1e-6, "pooled {metric}: ours {ours}, scikit-learn {theirs}");
    }

    // Pooled: the images' confusion matrices summed; mean per image: the images' figures averaged.
    for count in ["tp", "fp", "fn", "tn"] {
        let sum: u64 = images.iter().map(|i| i["confusion"][count].as_u64().unwrap()).sum();
        assert_eq!(pooled["confusion"][count].as_u64().unwrap(), sum, "{count}");
    }
    let pixels: u64 = images.iter().map(|i| i["width"].as_u64().unwrap() * i["height"].as_u64().unwrap()).sum();
    assert_eq!(["tp", "fp", "fn", "tn"].iter().map(|c| pooled["confusion"][*c].as_u64().unwrap()).sum::<u64>(), pixels, "every pixel at full size");
    for metric in ["iou", "dice"] {
        let mean = images.iter().map(|i| i[metric].as_f64().unwrap()).sum::<f64>() / images.len() as f64;
        assert!((e["original_size"]["mean_per_image"][metric].as_f64().unwrap() - mean).abs() < 1e-12, "{metric}");
    }
    let ious: Vec<f64> = images.iter().map(|i| i["iou"].as_f64().unwrap()).collect();
    assert!(ious.windows(2).all(|w| w[0] <= w[1]), "worst first: {ious:?}");

    // The CSV carries the same figures at full precision.
    let csv = common::sweep(&runs).arg("eval").arg(&dir).args(["--per-image", "--csv"]).assert().success();
    let csv = String::from_utf8(csv.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "image,width,height,tp,fp,fn,tn,dice,iou,fg_iou");
    assert_eq!(lines.len(), 1 + images.len());
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((first[0], first[8].parse::<f64>().unwrap()), (ids[0], ious[0]));

    // --probabilities: a 16-bit map at the image's size whose upper half is the mask.
    common::sweep(&runs).arg("predict").arg(&dir).arg(&files[0]).args(["--probabilities", "--out"]).arg(&out).assert().success();
    let map = image::open(out.join(format!("{}_probability.png", ids[0]))).unwrap();
    assert_eq!(map.color(), image::ColorType::L16, "16 bits a pixel");
    let (map, mask) = (map.into_luma16(), image::open(out.join(format!("{}_mask.png", ids[0]))).unwrap().into_luma8());
    assert_eq!(map.dimensions(), mask.dimensions());
    let agree = map.pixels().zip(mask.pixels()).filter(|(p, m)| (p.0[0] > 32768) == (m.0[0] > 0)).count();
    assert!(agree + 1 >= mask.len(), "the mask is where the probability is above one half ({agree} of {} agree)", mask.len());
}

/// Sets every convolution kernel (and the transposed convolutions') to the mean of itself and its
/// horizontal mirror: the U-Net then maps a mirrored image to the mirrored output. The head's
/// bias moves off 0, where a freshly drawn model puts every pixel that no ReLU lets through (an
/// exact 0 is a tie that any rounding breaks either way).
#[derive(Default)]
struct MirrorSymmetric {
    path: Vec<String>,
}

impl burn::module::ModuleMapper for MirrorSymmetric {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        match D {
            4 => param.map(|w| (w.clone() + w.flip([3])).div_scalar(2.0)),
            1 if self.path.first().is_some_and(|p| p == "head") => param.map(|b| b.add_scalar(0.01)),
            _ => param,
        }
    }
}

/// Issue 30: the flip TTA on a model that is flip-equivariant by construction changes nothing;
/// on an ordinary model it does change the logits (so the TTA is not a no-op).
#[test]
fn flip_tta_changes_nothing_for_a_flip_equivariant_model() {
    use sweep::train::scoring::{self, Tta};
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_odd_sized_set(&data, 8);
    let config = full_resolution_config(&data);
    let [h, w] = config.data.image_size;
    let samples = sweep::data::cached(&data, Some((h as u32, w as u32))).unwrap();
    let all: Vec<usize> = (0..samples.len()).collect();
    let truth = scoring::load_truth(&data, &samples, &all).unwrap();
    let loader = sweep::data::Loader::eval(samples, all, 3, config.augment.rescale);
    let ordinary = config.model.init(&cpu(), 7);
    let symmetric = ordinary.clone().map(&mut MirrorSymmetric::default()).valid();

    // The mirrored forward sums the same products in another order, and the TTA's mean is taken
    // through logarithms: equal within float rounding (f32: about 1e-7 of these logits).
    let images = Tensor::<4>::random([2, 3, h, w], Distribution::Default, &cpu());
    let gap = |model: &sweep::train::model::UNet| {
        let (a, b) = (scoring::logits(model, images.clone(), Tta::None), scoring::logits(model, images.clone(), Tta::Flip));
        (a - b).abs().max().into_data().iter::<f32>().next().unwrap()
    };
    let rounding = gap(&symmetric);
    assert!(rounding < 1e-6, "equivariant: TTA keeps the logits (they moved by {rounding})");
    assert!(gap(&ordinary.valid()) > 1e-3, "an ordinary model's mirror disagrees, and the TTA averages it in");

    let plain = scoring::evaluate_split(&symmetric, &loader, &cpu(), Some(&truth), Tta::None);
    let flipped = scoring::evaluate_split(&symmetric, &loader, &cpu(), Some(&truth), Tta::Flip);
    for (name, a, b) in [("loss", plain.metrics.loss, flipped.metrics.loss), ("dice", plain.metrics.dice, flipped.metrics.dice)] {
        assert!((a - b).abs() < 1e-6, "{name}: {a} without TTA, {b} with");
    }
    // The masks at full size agree but where a pixel's logit is within rounding of 0, a tie.
    let (mut ties, mut seen) = (0u64, 0);
    for batch in loader.epoch(0) {
        let (n, bh, bw) = (batch.len, batch.height, batch.width);
        let (inputs, _) = train::batch_tensors(batch, &cpu());
        let logits: Vec<f32> = symmetric.forward(inputs).into_data().iter::<f32>().collect();
        for (k, plane) in logits.chunks(bh * bw).enumerate().take(n) {
            let t = &truth[seen + k];
            let full = scoring::resize_bilinear(plane, (bw as u32, bh as u32), (t.width, t.height));
            ties += full.iter().filter(|l| l.abs() <= 10.0 * rounding).count() as u64;
        }
        seen += n;
    }
    let (a, b) = (plain.full.unwrap().pooled(), flipped.full.unwrap().pooled());
    let moved = a.tp.abs_diff(b.tp) + a.fp.abs_diff(b.fp);
    assert!(moved <= ties, "{moved} pixels changed sides, {ties} were ties: {a:?} without TTA, {b:?} with");
    assert!(ties < 5, "the head's bias keeps ties rare ({ties})");
}

/// Issue 30: the new flags on bad input are clear errors with exit code 2, and write nothing.
#[test]
fn evaluation_flags_on_bad_input_are_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let [data, runs, dir] = ["data", "runs", "runs/fresh"].map(|p| root.path().join(p));
    write_odd_sized_set(&data, 6);
    // A trial directory with its config but no checkpoint yet.
    let mut config = full_resolution_config(&data);
    config.train.epochs = 1;
    std::fs::create_dir_all(&dir).unwrap();
    TrialDir::new(&dir).write_config(&config).unwrap();
    let eval = |args: &[&str]| common::sweep(&runs).arg("eval").arg(&dir).args(args).assert();
    eval(&["--per-image"]).code(2).stderr(predicates::str::contains("no `best` checkpoint yet"));
    eval(&["--tta", "sideways"]).code(2).stderr(predicates::str::contains("--tta sideways: expected flip or none"));
    eval(&["--csv"]).code(2).stderr(predicates::str::contains("--per-image"));
    // A dataset of another layout (images straight in the folder, no train/).
    let flat = root.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    image::RgbImage::new(9, 7).save(flat.join("a.png")).unwrap();
    train::train(&config, &context(&dir, &runs, Faults::default()), &mut Recorder::default()).unwrap();
    eval(&["--data", flat.to_str().unwrap()]).code(2).stderr(predicates::str::contains("train/").and(predicates::str::contains("Carvana layout")));
    let out = root.path().join("out");
    common::sweep(&runs)
        .arg("predict")
        .arg(&dir)
        .arg(flat.join("a.png"))
        .args(["--tta", "both", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--tta both"));
    assert!(!out.exists(), "nothing written");
}
