//! Sweep files and the scheduler: validation messages, expansion, every shipped sweep file, and
//! `sweep run` end to end with real worker processes, including killed workers.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use sweep::store::{SqliteStore, Store, TrialFilter, TrialStatus};
use sweep::study::spec::{self, Method};

fn parse(text: &str) -> Result<spec::SweepSpec, String> {
    spec::parse(text, Path::new("sweeps/test.toml")).map_err(|e| e.to_string())
}

#[test]
fn every_shipped_sweep_file_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let spec = spec::load(&path, &[]).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            if spec.is_lazy() {
                let first = spec.sampler().ask(&sweep::study::history::History::new("val_iou", spec.metric.goal, Vec::new()));
                assert!(first.is_some_and(|p| spec.trial_of(&p).is_ok()), "{}: the sampler proposes a valid first trial", path.display());
            } else {
                assert!(!spec.trials(Some("/data/carvana")).is_empty(), "{}", path.display());
            }
            names.push(spec.name.clone());
        }
    }
    names.sort();
    for required in ["augment", "bayes", "hue", "optimizer", "pareto", "quick", "tutorial"] {
        assert!(names.iter().any(|n| n == required), "sweeps/{required}.toml is shipped: {names:?}");
    }
}

#[test]
fn the_tutorial_sweep_has_the_tutorials_exact_settings() {
    let spec = spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/tutorial.toml"), &[]).unwrap();
    let trials = spec.trials(Some("/data/carvana"));
    assert_eq!(trials.len(), 1);
    let c = &trials[0].config;
    assert_eq!(c.data.image_size, [256, 256]);
    assert_eq!(c.data.source, "/data/carvana");
    assert_eq!((c.train.batch_size, c.train.epochs, c.train.learning_rate), (3, 5, 1e-3));
    assert_eq!(c.train.optimizer, sweep::config::OptimizerKind::Adam);
    assert_eq!((c.augment.hue_delta, c.augment.horizontal_flip), (0.1, true));
    assert_eq!((c.augment.width_shift_range, c.augment.height_shift_range), (0.1, 0.1));
    assert!((c.augment.rescale - 1.0 / 255.0).abs() < 1e-9);
    assert_eq!((c.model.base_filters, c.model.depth), (32, 5));
    assert_eq!(c.data.val_fraction, 0.2);
}

#[test]
fn a_grid_is_the_product_of_its_values_last_key_fastest() {
    let s = parse(
        r#"name = "g"
[parameters]
"augment.hue_delta" = { values = [0.0, 0.1] }
"augment.horizontal_flip" = { values = [true, false] }
"train.learning_rate" = { value = 0.01 }
"#,
    )
    .unwrap();
    let trials = s.trials(None);
    let points: Vec<(f32, bool)> = trials.iter().map(|t| (t.config.augment.hue_delta, t.config.augment.horizontal_flip)).collect();
    assert_eq!(points, [(0.0, true), (0.0, false), (0.1, true), (0.1, false)]);
    assert!(trials.iter().all(|t| t.config.train.learning_rate == 0.01));
    assert_eq!(trials[0].params.len(), 3);
}

#[test]
fn random_search_draws_run_cap_configs_from_the_sweep_seed() {
    let text = r#"name = "r"
method = "random"
run_cap = 12
seed = 5
[parameters]
"train.optimizer" = { values = ["adam", "sgd", "rmsprop"] }
"train.learning_rate" = { distribution = "log_uniform_values", min = 1e-4, max = 1e-1 }
"train.batch_size" = { distribution = "int_uniform", min = 2, max = 8 }
"augment.hue_delta" = { distribution = "q_uniform", min = 0.0, max = 0.5, q = 0.1 }
"train.momentum" = { distribution = "categorical", values = [0.0, 0.9], probabilities = [0.25, 0.75] }
"#;
    let s = parse(text).unwrap();
    assert_eq!(s.method, Method::Random);
    let trials = s.trials(None);
    assert_eq!(trials.len(), 12);
    assert_eq!(trials, parse(text).unwrap().trials(None), "same seed, same draws");
    let other = parse(&text.replace("seed = 5", "seed = 6")).unwrap().trials(None);
    assert_ne!(trials, other);
    for t in &trials {
        let c = &t.config;
        assert!((1e-4..=1e-1).contains(&c.train.learning_rate));
        assert!((2..=8).contains(&c.train.batch_size));
        let q = c.augment.hue_delta * 10.0;
        assert!((q - q.round()).abs() < 1e-4, "q_uniform rounds to 0.1: {}", c.augment.hue_delta);
        assert!(c.train.momentum == 0.0 || c.train.momentum == 0.9);
    }
    let hashes: HashSet<String> = trials.iter().map(|t| t.config.hash()).collect();
    assert_eq!(hashes.len(), 12, "no config drawn twice");
    assert!(s.is_log("train.learning_rate") && !s.is_log("train.batch_size"));
}

/// Issue 27, item 2: q_uniform rounded its draw to the nearest multiple of q even outside the
/// range (min 0.05, max 0.3, q 1 drew 0; min 0, max 0.5, q 0.3 drew 0.6, an invalid hue).
#[test]
fn q_uniform_draws_only_multiples_of_q_inside_its_range_and_needs_one_there() {
    let sweep = |min: f64, max: f64, q: f64| {
        format!(
            "name = \"q\"\nmethod = \"random\"\nrun_cap = 40\nseed = 1\n[parameters]\n\"augment.hue_delta\" = {{ distribution = \"q_uniform\", min = {min:?}, max = {max:?}, q = {q:?} }}\n"
        )
    };
    let trials = parse(&sweep(0.0, 0.5, 0.3)).unwrap().trials(None);
    let drawn: HashSet<String> = trials.iter().map(|t| t.config.augment.hue_delta.to_string()).collect();
    assert_eq!(drawn, HashSet::from(["0".to_string(), "0.3".to_string()]), "0.45 and above round down to 0.3, never up to 0.6");
    common::check_errors(&sweep(0.05, 0.3, 1.0), &[(6, 80, "no multiple of q = 1 lies between min = 0.05 and max = 0.3")]);
    // A bound that is itself a multiple (up to rounding: 0.3 / 0.1 = 2.9999999999999996) is one.
    let trials = parse(&sweep(0.1, 0.3, 0.1)).unwrap().trials(None);
    assert!(trials.iter().all(|t| [0.1, 0.2, 0.3].contains(&t.config.augment.hue_delta)));
}

#[test]
fn validation_reports_every_problem_with_its_line_and_column() {
    common::check_errors(
        r#"name = "bad"
methd = "grid"
[augment]
hue_delt = 0.1
width_shift_range = 1.5
[train]
learning_rate = -0.1
batch_size = 2.5
optimizer = "adamm"
[data]
split_by = "cars"
"#,
        &[
            (2, 1, "unknown key methd (did you mean method?)"),
            (4, 1, "unknown key augment.hue_delt (did you mean hue_delta?)"),
            (5, 21, "augment.width_shift_range: 1.5 must be in [0, 1)"),
            (7, 17, "train.learning_rate: -0.1 must be > 0"),
            (8, 14, "must be a whole number"),
            (9, 13, "not one of adam, adamw, sgd, rmsprop (did you mean adam?)"),
            (11, 12, "not one of image, car (did you mean car?)"),
        ],
    );
}

#[test]
fn bad_parameters_are_reported_at_the_parameter() {
    common::check_errors(
        r#"name = "bad"
[data]
image_size = 128
[parameters]
"augment.hue_delta" = { values = [0.1, 0.7] }
"data.image_size" = { values = [128, 100] }
"train.epochs" = { values = [] }
"augment.flip" = { values = [true] }
"train.learning_rate" = { distribution = "uniform", min = 0.001, max = 0.1 }
"#,
        &[
            (5, 1, "augment.hue_delta (value 0.7): 0.7 must be in [0, 0.5]"),
            (6, 1, "nearest valid sizes: 96 or 128"),
            (7, 29, "values is empty"),
            (8, 1, "unknown key augment.flip"),
            (9, 1, "grid\" needs finite values"),
        ],
    );
    common::check_errors("name = \"r\"\nmethod = \"random\"\n", &[(2, 10, "needs run_cap")]);
    common::check_errors("name = \"x/y\"\n", &[(1, 8, "may only contain")]);
    common::check_errors("name = \"t\"\nseed = [\n", &[(2, 9, "not valid TOML")]);
    common::check_errors("[metric]\nname = \"accuracy\"\n", &[(2, 8, "not a metric")]);
    common::check_errors("[augment]\nresize = [64, 64]\n", &[(2, 1, "data.image_size")]);
}

#[test]
fn cli_reports_a_bad_sweep_file_with_exit_code_2_and_runs_nothing() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("bad.toml");
    std::fs::write(&file, "name = \"bad\"\n[augment]\nhue_delta = 0.9\n").unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("bad.toml:3:13: augment.hue_delta: 0.9 must be in [0, 0.5]"));
    assert!(!runs.path().join("sweep.db").exists(), "nothing was registered");
    common::sweep(runs.path()).args(["run", "/no/such/sweep.toml"]).assert().code(2).stderr(contains("cannot read the sweep file"));
}

#[test]
fn dry_run_prints_the_trial_table() {
    let runs = tempfile::tempdir().unwrap();
    common::sweep(runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "sweeps/augment.toml", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("augment.hue_delta").and(contains("augment.horizontal_flip")).and(contains("new")));
    assert!(!runs.path().join("sweep.db").exists(), "a dry run registers nothing");
}

/// Issue 16, item 4: raising `train.epochs` (and only that) continues the completed trials from
/// their last checkpoint under their ids, and they end as trials trained straight through to the
/// new count; the same file again adds nothing, and a lower count retrains nothing.
#[test]
fn raising_train_epochs_continues_the_trials_to_the_new_count() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("grow.toml");
    let run = |text: String, args: &[&str]| {
        std::fs::write(&file, text).unwrap();
        let out = common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    run(common::tiny_sweep("grow", 1, &[0.0, 0.1]), &[]);
    let before = store(runs.path()).metrics("grow-1").unwrap();

    let dry = run(common::tiny_sweep("grow", 2, &[0.0, 0.1]), &["--dry-run"]);
    assert!(dry.contains("extend 1 -> 2"), "{dry}");
    assert!(dry.contains("2 trial(s) would continue from their last checkpoint to the new train.epochs: grow-1 (1 -> 2 epochs)"), "{dry}");
    let out = run(common::tiny_sweep("grow", 2, &[0.0, 0.1]), &[]);
    assert!(out.contains("2 trial(s) continue from their last checkpoint"), "{out}");
    let rows = store(runs.path()).trials(&TrialFilter { sweep: Some("grow".into()), status: None }).unwrap();
    let summary: Vec<(&str, TrialStatus, i64, i64)> = rows.iter().map(|r| (r.id.as_str(), r.status, r.attempt, r.epochs())).collect();
    assert_eq!(summary, [("grow-1", TrialStatus::Completed, 2, 2), ("grow-2", TrialStatus::Completed, 2, 2)]);
    // Issue 29: `took` counted the idle time between the two runs as if it were training.
    let shown = String::from_utf8(common::sweep(runs.path()).args(["show", "grow-1"]).assert().success().get_output().stdout.clone()).unwrap();
    assert!(shown.contains(" over 2 runs; ") && shown.contains(" since it first started"), "{shown}");
    // Epoch 1 was not trained again: the checkpoint's own history holds the first run's epoch 1.
    let state = sweep::train::checkpoint::TrialDir::new(runs.path().join("grow/grow-1"))
        .read_state(sweep::train::checkpoint::CheckpointKind::Last)
        .unwrap()
        .unwrap();
    assert_eq!(state.history[0].wall, before[0].wall, "epoch 1 is the first run's");
    // Values as bits, so that a NaN (fg_iou without a car predicted) compares equal to itself.
    let bits = |metrics: &[sweep::store::MetricRow]| -> Vec<(i64, String, String, u64, u64)> {
        metrics.iter().map(|m| (m.epoch, m.split.clone(), m.name.clone(), m.value.to_bits(), m.wall.to_bits())).collect()
    };
    let after = store(runs.path()).metrics("grow-1").unwrap();
    assert_eq!(bits(&after)[..before.len()].to_vec(), bits(&before), "its history stays");

    // The same trial trained straight through to 2 epochs, in another sweep.
    std::fs::write(runs.path().join("straight.toml"), common::tiny_sweep("straight", 2, &[0.0])).unwrap();
    common::sweep(runs.path()).args(["run", runs.path().join("straight.toml").to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    let values = |id: &str| -> Vec<(i64, String, String, u64)> {
        let metrics = store(runs.path()).metrics(id).unwrap();
        metrics.into_iter().filter(|m| m.name != "seconds").map(|m| (m.epoch, m.split, m.name, m.value.to_bits())).collect()
    };
    assert_eq!(values("grow-1"), values("straight-1"));

    let again = run(common::tiny_sweep("grow", 2, &[0.0, 0.1]), &[]);
    assert!(again.contains("nothing to run"), "{again}");
    let lower = run(common::tiny_sweep("grow", 1, &[0.0, 0.1]), &[]);
    assert!(lower.contains("note: grow-1 has 2 epochs as its target already") && lower.contains("nothing to run"), "{lower}");
    assert_eq!(store(runs.path()).trials(&TrialFilter { sweep: Some("grow".into()), status: None }).unwrap().len(), 2);
}

fn store(runs: &Path) -> SqliteStore {
    SqliteStore::open(&runs.join("sweep.db")).unwrap()
}

/// Every config completed exactly once, epochs contiguous, checkpoints present, file sound.
fn assert_complete(runs: &Path, sweep: &str, trials: usize, epochs: i64) {
    let store = store(runs);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let rows = store.trials(&TrialFilter { sweep: Some(sweep.into()), status: None }).unwrap();
    assert_eq!(rows.len(), trials, "one run per config");
    let hashes: HashSet<&String> = rows.iter().map(|r| &r.config_hash).collect();
    assert_eq!(hashes.len(), trials, "no config twice");
    for r in &rows {
        assert_eq!(r.status, TrialStatus::Completed, "{} {:?}", r.id, r.error);
        let metrics = store.metrics(&r.id).unwrap();
        let mut per_name: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        for m in metrics {
            per_name.entry((m.split, m.name)).or_default().push(m.epoch);
        }
        assert_eq!(per_name.len(), 10, "{}: every metric recorded", r.id);
        for (name, epochs_seen) in per_name {
            assert_eq!(epochs_seen, (1..=epochs).collect::<Vec<_>>(), "{} {name:?}: contiguous, no duplicates", r.id);
        }
        let kinds: Vec<String> = store.checkpoints(&r.id).unwrap().into_iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["best", "last"], "{}", r.id);
        assert!(runs.join(sweep).join(&r.id).join("checkpoints/last.ckpt").is_file());
        assert!(runs.join(sweep).join(&r.id).join("config.json").is_file());
    }
}

/// One sweep trained once for the tests below, which only read it: `sweep run` of a 3-trial
/// grid with 2 workers, the same file again, then the file edited to add a fourth value. It
/// lives in cargo's temporary directory for integration tests (a static is never dropped, so a
/// `TempDir` would be left behind in /tmp), cleared at the start of each test run.
struct Trained {
    runs: PathBuf,
    first: String,
    again: String,
    edited: String,
}

fn trained() -> &'static Trained {
    static TRAINED: std::sync::OnceLock<Trained> = std::sync::OnceLock::new();
    TRAINED.get_or_init(|| {
        let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep-trained");
        let _ = std::fs::remove_dir_all(&runs);
        std::fs::create_dir_all(&runs).unwrap();
        let file = runs.join("s.toml");
        let run = |args: &[&str]| {
            let out = common::sweep(&runs).arg("run").arg(&file).args(args).arg("--plain").output().unwrap();
            assert!(out.status.success(), "sweep run failed: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        std::fs::write(&file, common::tiny_sweep("twice", 2, &[0.0, 0.2, 0.4])).unwrap();
        let first = run(&["--workers", "2"]);
        let again = run(&[]);
        std::fs::write(&file, common::tiny_sweep("twice", 2, &[0.0, 0.2, 0.4, 0.5])).unwrap();
        let edited = run(&[]);
        Trained { runs, first, again, edited }
    })
}

#[test]
fn run_trains_every_trial_and_prints_the_leaderboard() {
    let t = trained();
    assert!(t.first.contains("3 trials registered"), "{}", t.first);
    assert!(t.first.contains("rank") && t.first.contains("3 completed"), "{}", t.first);
    assert_complete(&t.runs, "twice", 4, 2);
}

#[test]
fn a_second_run_of_the_same_file_adds_nothing() {
    assert!(trained().again.contains("nothing to run"), "{}", trained().again);
}

#[test]
fn an_edited_file_under_the_same_name_adds_only_its_new_configs() {
    let edited = &trained().edited;
    assert!(edited.contains("the sweep file changed") && edited.contains("1 new trial(s) added (3 already known)"), "{edited}");
}

#[test]
fn the_charts_are_drawn_at_the_end_of_a_run_in_their_documented_sizes() {
    let plots = &trained().runs.join("twice/plots");
    // Sizes as README.md documents them; the grid: 4 columns and 4 validation images of 160 px.
    for (name, size) in [
        ("curves_val_iou.png", (1000, 600)),
        ("curves_val_loss.png", (1000, 600)),
        ("objective_vs_augment_hue_delta.png", (1000, 600)),
        ("parallel_coordinates.png", (1200, 600)),
        ("history.png", (1000, 600)),
        ("predictions.png", (8 + 4 * (160 + 8), 44 + 20 + 4 * (160 + 8) + 8)),
    ] {
        let img = image::open(plots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")).into_rgb8();
        assert_eq!(img.dimensions(), size, "{name}");
        let colours: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 50, "{name} is nearly blank: {} colours", colours.len());
    }
    assert!(std::fs::read_to_string(plots.join("index.html")).unwrap().contains("predictions.png"));
    // Issue 30: the worst validation images, one row each (a caption, then tiles of the synthetic
    // set's 64x48 images fitted into 160 px: 120 px tall).
    let worst = image::open(plots.join("worst_images.png")).unwrap().into_rgb8();
    assert_eq!(worst.dimensions(), (8 + 4 * (160 + 8), 68 + 20 + 4 * (20 + 120 + 8) + 8), "worst_images.png");
}

#[test]
fn the_prediction_grid_shows_the_actual_mask_in_black_and_white() {
    let grid = image::open(trained().runs.join("twice/plots/predictions.png")).unwrap().into_rgb8();
    // The "actual mask" tile of the first image.
    let tile: Vec<u8> = (0..160u32).flat_map(|y| (0..160u32).map(move |x| (x, y))).map(|(x, y)| grid.get_pixel(8 + 168 + x, 64 + y).0[0]).collect();
    let (car, background) = (tile.iter().filter(|&&v| v > 225).count(), tile.iter().filter(|&&v| v < 30).count());
    assert!(car + background > tile.len() * 4 / 5, "a mask tile is black and white but for its smoothed edges");
    assert!(car > 0 && background > 0, "with both car and background");
}

#[test]
fn best_ranks_by_the_metric_in_its_natural_direction() {
    let runs = &trained().runs;
    common::sweep(runs).args(["best", "--metric", "iou"]).assert().success().stdout(contains("best trial").and(contains("twice-")));
    common::sweep(runs)
        .args(["best", "--metric", "loss", "--json"])
        .assert()
        .success()
        .stdout(contains("\"goal\": \"minimize\"").and(contains("\"metric\": \"val_loss\"")));
}

#[test]
fn ls_filters_and_sorts_by_a_swept_setting() {
    common::sweep(&trained().runs)
        .args(["ls", "--sort", "val_iou", "--where", "augment.hue_delta >= 0.2"])
        .assert()
        .success()
        .stdout(contains("twice-2").and(contains("twice-3")).and(contains("twice-4")).and(contains("twice-1").not()));
}

#[test]
fn ls_reads_settings_that_were_not_swept_from_each_trials_config() {
    let runs = &trained().runs;
    // learning_rate is 0.003 in every trial.
    common::sweep(runs)
        .args(["ls", "--where", "train.learning_rate < 0.01 and augment.hue_delta >= 0.2", "--sort", "train.epochs"])
        .assert()
        .success()
        .stdout(contains("twice-2").and(contains("twice-3")).and(contains("twice-1").not()));
    common::sweep(runs).args(["ls", "--where", "train.learning_rate > 0.01"]).assert().success().stdout(contains("twice-2").not());
}

#[test]
fn ls_refuses_an_unknown_field_or_a_broken_filter_with_exit_code_2() {
    let runs = &trained().runs;
    common::sweep(runs)
        .args(["ls", "--where", "train.learnin_rate < 1"])
        .assert()
        .code(2)
        .stderr(contains("unknown field \"train.learnin_rate\"").and(contains("train.learning_rate")));
    common::sweep(runs).args(["ls", "--where", "val_iou >"]).assert().code(2).stderr(contains("expected a value"));
    common::sweep(runs).args(["ls", "--where", "colour = red"]).assert().code(2).stderr(contains("unknown field"));
    common::sweep(runs).args(["ls", "--pareto"]).assert().code(2).stderr(contains("this sweep follows one: give it several [[objectives]]"));
}

#[test]
fn importance_needs_five_finished_trials_and_names_an_unknown_sweep() {
    let runs = &trained().runs;
    common::sweep(runs)
        .args(["importance", "twice"])
        .assert()
        .code(1)
        .stderr(contains("at least 5 completed or pruned trials with a value of val_iou; there are 4"));
    common::sweep(runs).args(["importance", "twyce"]).assert().code(2).stderr(contains("twice"));
}

/// Issue 26: each trial records what its model costs: `params` and `gflops` from its settings
/// (as `UNetConfig::cost` counts them, checked against burn's own count in `train::model`),
/// `train_seconds` as its epochs' total, `infer_ms` measured; fields of `ls` and a line of `show`.
#[test]
fn every_trial_records_what_its_model_costs() {
    let runs = &trained().runs;
    let store = store(runs);
    for row in store.trials(&TrialFilter { sweep: Some("twice".into()), status: None }).unwrap() {
        let config = store.trial_config(&row.id).unwrap();
        let [h, w] = config.data.image_size;
        let cost = config.model.cost(h, w);
        assert_eq!(row.last("params"), Some(cost.params as f64), "{}", row.id);
        assert_eq!(row.last("gflops"), Some(cost.flops / 1e9), "{}", row.id);
        let epochs: f64 = store.metrics(&row.id).unwrap().iter().filter(|m| m.split == "train" && m.name == "seconds").map(|m| m.value).sum();
        let total = row.last("train_seconds").unwrap();
        assert!((total - epochs).abs() <= 1e-9 * epochs, "{}: train_seconds {total} is its epochs' {epochs}", row.id);
        let infer = row.last("infer_ms").unwrap();
        assert!(infer > 0.0 && infer < 10_000.0, "{}: infer_ms {infer}", row.id);
        // Per trial, not per epoch: no epoch table shows them.
        assert!(store.metrics(&row.id).unwrap().iter().all(|m| m.split != "cost"));
    }
    let params = store.trials(&TrialFilter::default()).unwrap()[0].last("params").unwrap();
    let listed = |filter: String| {
        let out = common::sweep(runs).args(["ls", "--sweep", "twice", "--where", &filter, "--sort", "infer_ms"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(listed(format!("params <= {params} and gflops > 0")).contains("twice-1"));
    assert!(!listed(format!("params < {params}")).contains("twice-1"));
    common::sweep(runs)
        .args(["show", "twice-1"])
        .assert()
        .success()
        .stdout(contains("cost         ").and(contains(" params, ")).and(contains("GFLOPs an image")).and(contains("infer ")));
}

#[test]
fn show_prints_a_trials_epochs_and_checkpoints() {
    common::sweep(&trained().runs).args(["show", "twice-2"]).assert().success().stdout(contains("epoch").and(contains("checkpoints")));
}

#[test]
fn show_refuses_an_unknown_or_unsafe_trial_id_with_exit_code_2() {
    let runs = &trained().runs;
    common::sweep(runs).args(["show", "twice-99"]).assert().code(2).stderr(contains("no trial \"twice-99\""));
    common::sweep(runs).args(["show", "../etc"]).assert().code(2);
}

#[test]
fn compare_shows_the_settings_that_differ_and_the_metrics() {
    common::sweep(&trained().runs)
        .args(["compare", "twice-1", "twice-3"])
        .assert()
        .success()
        .stdout(contains("augment.hue_delta").and(contains("best val_iou")));
}

#[test]
fn status_counts_the_trials_and_names_the_best_so_far() {
    common::sweep(&trained().runs).args(["status", "twice"]).assert().success().stdout(contains("4 completed").and(contains("best so far")));
}

#[test]
fn export_writes_a_line_per_trial_and_epoch() {
    let runs = &trained().runs;
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("export.csv");
    common::sweep(runs).args(["export", "--format", "csv", "--out", csv.to_str().unwrap()]).assert().success();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + 4 * 2, "a header and one line per trial and epoch");
    assert!(text.lines().next().unwrap().contains("val_iou"));
    common::sweep(runs).args(["export", "--format", "json"]).assert().success().stdout(contains("\"epochs\""));
}

#[test]
fn best_eval_reloads_the_checkpoint_that_holds_the_metrics_best_epoch() {
    let runs = &trained().runs;
    common::sweep(runs).args(["best", "--eval"]).assert().success().stdout(
        contains("re-evaluated the best checkpoint").and(contains("at original size, pooled")).and(contains("at original size, mean per image")),
    );
    let json = common::sweep(runs).args(["best", "--eval", "--json"]).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    assert!(json["eval"]["original_size"]["pooled"]["iou"].is_number(), "{json}");
    // Another metric than the objective: the checkpoint evaluated is said, with its epoch.
    common::sweep(runs).args(["best", "--metric", "loss", "--eval"]).assert().success().stdout(contains("re-evaluated the "));
}

/// Issue 29: `plot` left the two-panel chart of a trial that was the best before behind.
#[test]
fn plot_removes_the_chart_of_a_former_best_trial() {
    let runs = &trained().runs;
    let out = tempfile::tempdir().unwrap();
    let best = String::from_utf8(common::sweep(runs).args(["best", "--json"]).assert().success().get_output().stdout.clone()).unwrap();
    let best: serde_json::Value = serde_json::from_str(&best).unwrap();
    let best = best["run"].as_str().unwrap().to_string();
    let former = ["twice-1", "twice-2", "twice-3", "twice-4"].into_iter().find(|id| *id != best).unwrap();
    std::fs::write(out.path().join(format!("run_{former}.png")), b"a chart of yesterday's best").unwrap();
    std::fs::write(out.path().join("run_other-1.png"), b"not this sweep's").unwrap();
    common::sweep(runs).args(["plot", "twice", "--out", out.path().to_str().unwrap()]).assert().success();
    assert!(!out.path().join(format!("run_{former}.png")).exists(), "the former best's chart is gone");
    assert!(out.path().join(format!("run_{best}.png")).is_file());
    assert!(out.path().join("run_other-1.png").is_file(), "another sweep's file is left alone");
}

#[test]
fn plot_run_draws_one_trials_two_panel_chart() {
    let out = tempfile::tempdir().unwrap();
    common::sweep(&trained().runs).args(["plot", "--run", "twice-2", "--out", out.path().to_str().unwrap()]).assert().success();
    assert!(image::open(out.path().join("run_twice-2.png")).is_ok());
}

#[test]
fn eval_rebuilds_a_trials_model_and_evaluates_its_last_checkpoint() {
    common::sweep(&trained().runs).args(["eval", "twice-1", "--checkpoint", "last"]).assert().success().stdout(contains("fg_iou"));
}

#[test]
fn predict_writes_binary_masks_at_the_inputs_size() {
    let out = tempfile::tempdir().unwrap();
    let img = out.path().join("car.png");
    image::RgbImage::from_fn(75, 50, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 80])).save(&img).unwrap();
    let pred = out.path().join("pred");
    common::sweep(&trained().runs).args(["predict", "twice-1", img.to_str().unwrap(), "--out", pred.to_str().unwrap()]).assert().success();
    let mask = image::open(pred.join("car_mask.png")).unwrap().into_luma8();
    assert_eq!(mask.dimensions(), (75, 50), "the mask has the input's size");
    assert!(mask.iter().all(|&v| v == 0 || v == 255));
    assert!(pred.join("car_overlay.png").is_file());
}

#[test]
fn predict_names_a_missing_or_broken_image_with_exit_code_2() {
    let out = tempfile::tempdir().unwrap();
    let runs = &trained().runs;
    common::sweep(runs)
        .args(["predict", "twice-1", "/no/such.png", "--out", out.path().to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("/no/such.png: no such image file"));
    let junk = out.path().join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    common::sweep(runs)
        .args(["predict", "twice-1", junk.to_str().unwrap(), "--out", out.path().to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("junk.png"));
}

#[test]
fn a_trial_that_panics_or_diverges_is_recorded_and_the_sweep_goes_on() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("faults", 2, &[0.0, 0.1])).unwrap();
    // Every trial panics at epoch 2 step 1: both are recorded as failed, the exit code says so.
    common::sweep(runs.path())
        .env("SWEEP_FAULT", "panic@2:1")
        .args(["run", file.to_str().unwrap(), "--plain"])
        .assert()
        .code(1)
        .stdout(contains("failed"))
        .stderr(contains("did not complete"));
    let s = store(runs.path());
    for r in s.trials(&TrialFilter::default()).unwrap() {
        assert_eq!(r.status, TrialStatus::Failed);
        assert!(r.error.as_deref().unwrap().contains("injected fault: panic at epoch 2 step 1"), "{:?}", r.error);
        assert_eq!(r.epochs(), 1, "the epoch before the panic was kept");
    }
    drop(s);
    // Failed trials are retried only when asked (the exit code keeps saying that some failed);
    // with --retry-failed they resume and complete.
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain"]).assert().code(1).stdout(contains("nothing to run"));
    // Issue 27, item 13: raising the epochs of failed trials said "2 trial(s) continue", then
    // "nothing to run".
    std::fs::write(&file, common::tiny_sweep("faults", 3, &[0.0, 0.1])).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain"]).assert().code(1).stdout(
        contains(
            "2 failed trial(s) take the new train.epochs and run again only with --retry-failed: faults-1 (2 -> 3 epochs), faults-2 (2 -> 3 epochs)",
        )
        .and(contains("continue from their last checkpoint").not())
        .and(contains("nothing to run")),
    );
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain", "--retry-failed"]).assert().success();
    assert_complete(runs.path(), "faults", 2, 3);

    // A NaN loss: diverged with epoch and step, and exit code 1.
    let file = runs.path().join("nan.toml");
    std::fs::write(&file, common::tiny_sweep("nan", 2, &[0.0])).unwrap();
    common::sweep(runs.path()).env("SWEEP_FAULT", "nan@1:2").args(["run", file.to_str().unwrap(), "--plain"]).assert().code(1);
    let r = store(runs.path()).trial("nan-1").unwrap();
    assert_eq!(r.status, TrialStatus::Diverged);
    assert!(r.error.unwrap().contains("epoch 1, step 2"));
}

#[test]
fn worker_logs_keep_every_start_and_errors_point_at_what_holds_the_reason() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("logs", 1, &[0.0])).unwrap();
    // A diverged trial: its worker exits with 1, and the reason is the tracker's, not an empty log's.
    let out = common::sweep(runs.path()).env("SWEEP_FAULT", "nan@1:1").args(["run", file.to_str().unwrap(), "--plain"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("logs-1 (diverged); see `sweep show RUN`"), "{stderr}");
    assert!(!stderr.contains("exited with code") && !stderr.contains("worker-1.log"), "no worker error pointing at a log: {stderr}");
    // A second start appends to the same log (issue 15, item 20): the first start's lines stay.
    let log = runs.path().join("logs/logs/worker-1.log");
    let first = std::fs::read_to_string(&log).unwrap();
    std::fs::write(runs.path().join("t.toml"), common::tiny_sweep("logs", 1, &[0.0, 0.1])).unwrap();
    common::sweep(runs.path()).args(["run", runs.path().join("t.toml").to_str().unwrap(), "--plain"]).assert().code(1);
    let after = std::fs::read_to_string(&log).unwrap();
    assert!(after.starts_with(&first), "the first start's lines are kept:\n{after}");
    assert_eq!(after.matches("=== sweep run: worker 1 of sweep logs started").count(), 2, "one header per start:\n{after}");
}

#[test]
fn a_trial_that_kills_its_worker_after_an_epoch_fails_after_max_attempts() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("loop", 3, &[0.0])).unwrap();
    // Every attempt records (or replays) epoch 1, then its worker is SIGKILLed at epoch 2: replaying
    // epoch 1 on resume is not progress, so the third death in a row fails the trial (issue 15, item 8).
    let out = common::sweep(runs.path())
        .env("SWEEP_FAULT", "kill@2:1")
        .args(["run", file.to_str().unwrap(), "--plain", "--no-plot", "--max-attempts", "3"])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r = store(runs.path()).trial("loop-1").unwrap();
    assert_eq!((r.status, r.attempt, r.epochs()), (TrialStatus::Failed, 3, 1), "{:?}", r.error);
    let error = r.error.unwrap();
    assert!(error.contains("killed by signal 9") && error.contains("3 attempts in a row"), "{error}");
}

#[test]
fn a_standalone_worker_killed_before_its_first_epoch_counts_a_crash() {
    let runs = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    s.register_sweep("w", "spec").unwrap();
    s.enqueue("w", &common::trials(1)).unwrap();
    drop(s);
    // Each worker is SIGKILLed in its first step, as the OOM killer would; no supervisor sees it.
    // The next worker on this host finds the dead pid and takes the trial over at once (not after
    // --stale-after), counting the crash; at --max-attempts the trial fails instead (issue 15,
    // items 8 and 10).
    let worker = || {
        common::sweep(runs.path())
            .env("SWEEP_FAULT", "kill@1:1")
            .args(["worker", "--sweep", "w", "--max-attempts", "2", "--stale-after", "600"])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    };
    for attempt in 1..=2 {
        let out = worker();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(libc::SIGKILL), "attempt {attempt}");
        let r = store(runs.path()).trial("w-1").unwrap();
        assert_eq!((r.status, r.attempt), (TrialStatus::Running, attempt));
    }
    let out = worker();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = store(runs.path()).trial("w-1").unwrap();
    assert_eq!((r.status, r.attempt), (TrialStatus::Failed, 2), "{:?}", r.error);
    let error = r.error.unwrap();
    assert!(error.contains("is gone") && error.contains("2 attempts in a row"), "{error}");
}

/// Live worker processes of a `sweep run` (its direct children).
fn worker_pids(supervisor: u32) -> Vec<i32> {
    let children = std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children")).unwrap_or_default();
    children.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn spawn_run(runs: &Path, file: &Path, workers: usize) -> std::process::Child {
    Command::new(common::sweep_bin())
        .arg("--runs-dir")
        .arg(runs)
        .args(["run", file.to_str().unwrap(), "--plain", "--workers", &workers.to_string()])
        .args(["--max-attempts", "1000", "--stale-after", "3", "--heartbeat-every", "0.5"])
        .env_remove("SWEEP_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_workers_lose_nothing_and_a_rerun_completes_every_config_exactly_once() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    let hues: Vec<f64> = (0..8).map(|i| i as f64 * 0.05).collect();
    // Long enough (about 20 s of work on two cores) for ten kills to land in the middle of it.
    std::fs::write(&file, common::tiny_sweep("kills", 60, &hues)).unwrap();
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move |lo: u64, hi: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        lo + rng_state % (hi - lo)
    };
    let mut kills = 0;
    let mut supervisor = spawn_run(runs.path(), &file, 2);
    let deadline = Instant::now() + Duration::from_secs(240);
    while kills < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(random(200, 900)));
        if supervisor.try_wait().unwrap().is_some() {
            // The sweep finished before all the kills: start it again (it resumes, or has nothing left).
            supervisor = spawn_run(runs.path(), &file, 2);
            continue;
        }
        let pids = worker_pids(supervisor.id());
        if pids.is_empty() {
            continue;
        }
        let victim = pids[random(0, pids.len() as u64) as usize];
        unsafe { libc::kill(victim, libc::SIGKILL) };
        kills += 1;
    }
    assert_eq!(kills, 10, "ten workers were killed");
    // Finally kill the supervisor itself, then rerun: the stale runs are reclaimed and resumed.
    unsafe { libc::kill(supervisor.id() as i32, libc::SIGKILL) };
    supervisor.wait().unwrap();
    let status = Command::new(common::sweep_bin())
        .arg("--runs-dir")
        .arg(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--workers", "2", "--stale-after", "3", "--heartbeat-every", "0.5"])
        .args(["--max-attempts", "1000"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_complete(runs.path(), "kills", 8, 60);
    let attempts: i64 = store(runs.path()).trials(&TrialFilter::default()).unwrap().iter().map(|r| r.attempt).sum();
    assert!(attempts > 8, "some trials were resumed after a kill ({attempts} attempts for 8 trials)");
}

/// Waits until every run of the sweep has recorded at least `epochs` epochs.
fn wait_for_epochs(runs: &Path, sweep: &str, n: usize, epochs: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(s) = SqliteStore::open(&runs.join("sweep.db")) {
            let rows = s.trials(&TrialFilter { sweep: Some(sweep.into()), status: None }).unwrap_or_default();
            if rows.len() == n && rows.iter().all(|r| r.epochs() >= epochs) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the runs never reached epoch {epochs}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_once_checkpoints_and_stops_twice_stops_now_and_both_resume() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("stop", 150, &[0.0, 0.1])).unwrap();
    let start = || {
        Command::new(common::sweep_bin())
            .arg("--runs-dir")
            .arg(runs.path())
            .args(["run", file.to_str().unwrap(), "--plain", "--workers", "2", "--no-plot"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    for interrupts in [1, 2] {
        // Wait for two epochs past the most any trial has so far: epochs that this process's
        // workers trained, so its signal handler is installed (one Ctrl-C may let the first round
        // train further than its target; a fixed target could then be met before the handler is in place).
        let before = match runs.path().join("sweep.db").exists() {
            true => store(runs.path()).trials(&TrialFilter::default()).unwrap().iter().map(|r| r.epochs()).max().unwrap_or(0),
            false => 0,
        };
        let child = start();
        wait_for_epochs(runs.path(), "stop", 2, before + 2);
        for _ in 0..interrupts {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            std::thread::sleep(Duration::from_millis(30));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "an interrupted sweep exits with 1: {stdout}");
        assert!(stdout.contains("run the same command to resume"), "{stdout}");
        let s = store(runs.path());
        assert_eq!(s.integrity_check().unwrap(), "ok");
        for r in s.trials(&TrialFilter::default()).unwrap() {
            assert_eq!(r.status, TrialStatus::Queued, "{} was given back ({interrupts} Ctrl-C)", r.id);
            let last = sweep::train::checkpoint::TrialDir::new(runs.path().join("stop").join(&r.id))
                .load(sweep::train::checkpoint::CheckpointKind::Last)
                .unwrap()
                .unwrap();
            assert_eq!(last.state.epochs_done as i64, r.epochs(), "{}: the tracker and the checkpoint agree", r.id);
            assert!(r.epochs() < 150, "{} stopped early", r.id);
        }
    }
    // The same command resumes both and finishes them.
    let out = start().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_complete(runs.path(), "stop", 2, 150);
}

#[test]
fn four_workers_share_one_store_without_lock_errors() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    let hues: Vec<f64> = (0..8).map(|i| i as f64 * 0.05).collect();
    std::fs::write(&file, common::tiny_sweep("four", 2, &hues)).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "4", "--plain", "--heartbeat-every", "0.1"]).assert().success();
    assert_complete(runs.path(), "four", 8, 2);
    // Parameter importance from the real tracker: 8 completed trials, one swept parameter.
    let out = common::sweep(runs.path()).args(["importance", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["sweep"].as_str(), v["objective"].as_str(), v["trials"].as_u64()), (Some("four"), Some("val_iou"), Some(8)), "{v}");
    let only = &v["importances"][0];
    assert_eq!(only["parameter"], "augment.hue_delta", "{v}");
    assert!([0.0, 1.0].contains(&only["importance"].as_f64().unwrap()), "one parameter explains all or nothing: {v}");
    let img = image::open(runs.path().join("four/plots/importance.png")).unwrap().into_rgb8();
    assert_eq!(img.dimensions(), (1000, 500));
    let logs: Vec<PathBuf> = std::fs::read_dir(runs.path().join("four/logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(logs.len(), 4);
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("locked") && !text.contains("warning"), "{}: {text}", log.display());
    }
}

#[test]
fn asking_for_a_gpu_this_build_lacks_is_an_error_not_a_panic() {
    let runs = tempfile::tempdir().unwrap();
    #[cfg(not(feature = "cuda"))]
    common::sweep(runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "sweeps/quick.toml", "--device", "cuda"])
        .assert()
        .code(2)
        .stderr(contains("--features cuda").and(contains("panicked").not()));
    common::sweep(runs.path()).args(["eval", "x-1", "--device", "tpu"]).assert().code(2).stderr(contains("expected cpu, cuda"));
}

#[test]
fn a_worker_stops_after_max_trials_and_leaves_the_rest_queued() {
    let runs = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    s.register_sweep("w", "spec").unwrap();
    s.enqueue("w", &common::trials(3)).unwrap();
    drop(s);
    common::sweep(runs.path()).args(["worker", "--sweep", "w", "--max-trials", "1"]).assert().success();
    let count = |status: TrialStatus| store(runs.path()).trials(&TrialFilter::default()).unwrap().iter().filter(|r| r.status == status).count();
    assert_eq!((count(TrialStatus::Completed), count(TrialStatus::Queued)), (1, 2), "one trial, then the worker stopped");
    common::sweep(runs.path()).args(["worker", "--sweep", "w"]).assert().success();
    assert_eq!(count(TrialStatus::Completed), 3, "a worker without a cap takes the rest");
}

/// Issue 27, item 5: two `sweep run`s registering different versions of one sweep: the first
/// announced its own settings while its workers followed the other's. The tracker's version wins,
/// and the run whose file lost says so.
#[test]
fn a_run_whose_sweep_another_run_re_registers_says_which_version_the_workers_follow() {
    use std::process::{Command, Stdio};
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("race.toml");
    let text = common::tiny_sweep("race", 20, &[0.0]).replace("synthetic_count = 24", "synthetic_count = 160");
    std::fs::write(&file, &text).unwrap();
    let first = Command::new(common::sweep_bin())
        .arg("--runs-dir")
        .arg(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--no-plot", "--workers", "1"])
        .env_remove("SWEEP_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(std::time::Instant::now() < deadline, "the first run never recorded an epoch");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let Ok(s) = SqliteStore::open(&runs.path().join("sweep.db")) else { continue };
        if s.trial("race-1").is_ok_and(|t| t.epochs() >= 1) {
            break;
        }
    }
    // Another run registers another version of the file under the same name.
    let other = text.replace("[0.0]", "[0.0, 0.3]").replace("method = \"grid\"", "method = \"grid\"\nrun_cap = 9");
    let mut s = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    s.register_sweep("race", &other).unwrap();
    drop(s);
    let out = first.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: another `sweep run` registered a different version of sweep race")
            && stderr.contains(", run_cap 9)")
            && stderr.contains("the workers follow that version"),
        "{stderr}"
    );
}

/// Issue 27, item 4: `worker --sweep` with a misspelt name found nothing to claim and exited 0,
/// so SLURM jobs with a typo succeeded having trained nothing.
#[test]
fn a_worker_of_an_unknown_sweep_exits_2_with_the_closest_name_and_trains_nothing() {
    let runs = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    s.register_sweep("hue", "spec").unwrap();
    s.enqueue("hue", &common::trials(1)).unwrap();
    drop(s);
    common::sweep(runs.path())
        .args(["worker", "--sweep", "hues"])
        .assert()
        .code(2)
        .stderr(contains("no sweep \"hues\"; did you mean hue?"))
        .stdout(contains("worker done").not());
    let queued = store(runs.path()).trials(&TrialFilter { sweep: None, status: Some(TrialStatus::Queued) }).unwrap();
    assert_eq!(queued.len(), 1, "the other sweep's trial was left alone");
}

/// Issue 27, item 15: an OS error was printed twice ("Not a directory (os error 20): Not a
/// directory (os error 20)").
#[test]
fn an_os_error_is_printed_once_with_the_path_it_is_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let sweep_file = dir.path().join("s.toml");
    std::fs::write(&sweep_file, common::tiny_sweep("os", 1, &[0.0])).unwrap();
    let out = common::sweep(&file).args(["run", sweep_file.to_str().unwrap(), "--plain"]).assert().failure().get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("(os error 20)").count(), 1, "{stderr}");
    assert!(stderr.contains("a-file/data/"), "{stderr}");
}

/// Issue 15, item 15: absurd or zero values were accepted (100,000 threads hung the machine).
#[test]
fn numeric_flags_out_of_range_are_refused_with_exit_code_2_naming_the_flag_and_range() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("ranges", 1, &[0.0])).unwrap();
    for (flag, value, range) in [
        ("--threads", "100000", "from 1 to"),
        ("--workers", "0", "from 1 to 1024"),
        ("--stale-after", "0", "seconds from 1 to 604800"),
        ("--heartbeat-every", "0", "seconds from 0.1 to 3600"),
        ("--max-attempts", "0", "from 1 to 1000"),
    ] {
        common::sweep(runs.path())
            .args(["run", file.to_str().unwrap(), flag, value])
            .assert()
            .code(2)
            .stderr(contains(format!("invalid value '{value}' for '{flag}")).and(contains(range)));
    }
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--stale-after", "3", "--heartbeat-every", "5"])
        .assert()
        .code(2)
        .stderr(contains("--stale-after 3 must be at least twice --heartbeat-every 5"));
    common::sweep(runs.path()).args(["worker", "--threads", "0"]).assert().code(2).stderr(contains("'--threads <THREADS>'"));
    assert!(!runs.path().join("sweep.db").exists(), "nothing was registered");
}

/// Issue 15, item 9: a sweep named `-x` passed validation, then every worker read `--sweep -x`
/// as two options.
#[test]
fn a_sweep_name_that_reads_as_an_option_is_refused_at_validation() {
    common::check_errors("name = \"-x\"\n", &[(1, 8, "must not start with '-'")]);
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("-x", 1, &[0.0])).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap()]).assert().code(2).stderr(contains("must not start with '-'"));
}

/// Issue 15, item 18: `ls` and `export` listed nothing and exited 0 for a misspelt sweep.
#[test]
fn ls_and_export_of_an_unknown_sweep_exit_2_with_a_did_you_mean() {
    let runs = &trained().runs;
    for args in [&["ls", "--sweep", "twise"][..], &["export", "--format", "csv", "--sweep", "twise"]] {
        common::sweep(runs).args(args).assert().code(2).stderr(contains("twise").and(contains("twice")));
    }
}

/// Issue 15, item 16: a filter's value of the wrong kind matched nothing, silently; deep
/// nesting overflowed the stack (exit 134).
#[test]
fn ls_refuses_a_value_of_the_wrong_kind_and_deep_nesting_with_exit_code_2() {
    let runs = &trained().runs;
    common::sweep(runs)
        .args(["ls", "--where", "val_iou > abc"])
        .assert()
        .code(2)
        .stderr(contains("at column 11").and(contains("val_iou is a number")).and(contains("e.g. val_iou > 0.5")));
    let deep = format!("{}val_iou > 0.5{}", "(".repeat(20_000), ")".repeat(20_000));
    common::sweep(runs).args(["ls", "--where", &deep]).assert().code(2).stderr(contains("nest more than 64 deep"));
}

/// Issue 15, item 23: README's `--where` example named a key that does not exist. Every `--where`
/// example in README (the code spans of its `--where` paragraph that compare, and any
/// `--where "..."` in it) runs against a real tracker.
#[test]
fn every_where_example_in_the_readme_runs() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("`--where` takes").expect("README describes --where");
    let paragraph = readme[start..].split("\n\n").next().unwrap();
    let spans = paragraph.split('`').skip(1).step_by(2);
    let mut examples: Vec<String> = spans.filter(|s| s.contains(['<', '>', '=']) && !s.starts_with("--")).map(str::to_string).collect();
    for quote in ['"', '\''] {
        for rest in readme.split(&format!("--where {quote}")).skip(1) {
            examples.extend(rest.split(quote).next().map(str::to_string));
        }
    }
    assert!(examples.len() >= 3, "{examples:?}");
    for example in &examples {
        let out = common::sweep(&trained().runs).args(["ls", "--where", example]).output().unwrap();
        assert!(out.status.success(), "--where {example:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs `sweep --runs-dir RUNS ARGS` with its standard output a pipe whose reader has already
/// gone.
fn run_into_closed_pipe(runs: &Path, args: &[&str]) -> std::process::Output {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are ours and open; the read end is closed at once.
    let (read, write) = unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut cmd = Command::new(common::sweep_bin());
    cmd.arg("--runs-dir").arg(runs).args(args).env_remove("SWEEP_STORE").env_remove("SWEEP_RUNS");
    cmd.stdout(Stdio::from(write)).stderr(Stdio::piped()).output().unwrap()
}

/// Issue 15, item 19: output to a closed pipe panicked (exit 101).
#[test]
fn commands_that_print_end_quietly_when_their_reader_has_gone() {
    use std::os::unix::process::ExitStatusExt;
    let runs = &trained().runs;
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["export", "--format", "csv"],
        &["status"],
        &["show", "twice-1"],
        &["best"],
        &["compare", "twice-1", "twice-2"],
    ] {
        let out = run_into_closed_pipe(runs, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "sweep {args:?} ends as `ls` does: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "sweep {args:?} says nothing: {stderr}");
    }
}

/// Issue 15, item 19: `sweep run ... | head -2` killed the sweep mid-trial. Its output's reader
/// goes away after two lines; the sweep trains every trial to the end all the same.
#[test]
fn a_sweep_goes_on_when_the_reader_of_its_output_goes_away() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("headed", 2, &[0.0, 0.2])).unwrap();
    let pipeline = format!(
        "'{}' --runs-dir '{}' run '{}' --workers 2 --plain 2>&1 | head -2",
        common::sweep_bin().display(),
        runs.path().display(),
        file.display()
    );
    let out = Command::new("bash").args(["-o", "pipefail", "-c", &pipeline]).env_remove("SWEEP_STORE").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the sweep exits 0: {:?} {stdout}", out.status);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert_complete(runs.path(), "headed", 2, 2);
}

/// Issue 15, item 19: the unread output of a sweep run into a closed pipe is dropped, not fatal.
#[test]
fn a_sweep_run_into_a_closed_pipe_completes() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("closed", 1, &[0.0])).unwrap();
    let out = run_into_closed_pipe(runs.path(), &["run", file.to_str().unwrap(), "--plain", "--no-plot"]);
    assert!(out.status.success(), "{:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_complete(runs.path(), "closed", 1, 1);
}

#[test]
fn a_runs_directory_reused_with_another_store_is_refused_naming_both() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("shared", 1, &[0.0])).unwrap();
    let (a, b) = (runs.path().join("a.db"), runs.path().join("b.db"));
    let with = |store: &Path| {
        let mut cmd = common::sweep(runs.path());
        cmd.arg("--store").arg(store);
        cmd
    };
    with(&a).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    let trial_dir = runs.path().join("shared/shared-1");
    let files = |dir: &Path| -> BTreeMap<PathBuf, Vec<u8>> { walk(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect() };
    let before = files(&trial_dir);
    assert!(before.contains_key(&trial_dir.join("tracker.json")), "the trial directory says which tracker it belongs to");
    // Tracker b's trial shared-1 would be another trial under the same name (issue 15, item 5).
    let clash = |out: std::process::Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("belongs to the tracker") && stderr.contains(a.to_str().unwrap()) && stderr.contains(b.to_str().unwrap()),
            "{stderr}"
        );
    };
    clash(with(&b).args(["run", file.to_str().unwrap(), "--plain"]).output().unwrap());
    assert!(SqliteStore::open(&b).unwrap().trials(&TrialFilter::default()).unwrap().is_empty(), "nothing registered in b");
    // A worker of b refuses it too: at its start for its sweep, or at the trial for any sweep;
    // the trial is given back, untouched.
    let mut store_b = SqliteStore::open(&b).unwrap();
    store_b.register_sweep("shared", "spec").unwrap();
    store_b.enqueue("shared", &common::trials(1)).unwrap();
    drop(store_b);
    clash(with(&b).args(["worker", "--sweep", "shared"]).output().unwrap());
    clash(with(&b).args(["worker"]).output().unwrap());
    assert_eq!(SqliteStore::open(&b).unwrap().trial("shared-1").unwrap().status, TrialStatus::Queued);
    assert_eq!(files(&trial_dir), before, "tracker a's trial directory is as it was");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn best_follows_the_sweeps_objective_when_no_metric_is_named() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("loss.toml");
    let by_loss =
        common::tiny_sweep("byloss", 1, &[0.0, 0.3]).replace("name = \"val_iou\"\ngoal = \"maximize\"", "name = \"val_loss\"\ngoal = \"minimize\"");
    assert!(by_loss.contains("val_loss"));
    std::fs::write(&file, by_loss).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = common::sweep(runs.path()).args(["best", "--json"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let best = json(&[]);
    assert_eq!((best["metric"].as_str(), best["goal"].as_str()), (Some("val_loss"), Some("minimize")), "{best}");
    assert_eq!(best["run"], json(&["--metric", "loss"])["run"]);
    // Another sweep with another objective in the same tracker: which one must be said.
    std::fs::write(runs.path().join("iou.toml"), common::tiny_sweep("byiou", 1, &[0.0])).unwrap();
    common::sweep(runs.path()).args(["run", runs.path().join("iou.toml").to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    common::sweep(runs.path())
        .args(["best"])
        .assert()
        .code(2)
        .stderr(contains("byloss (val_loss minimize)").and(contains("byiou (val_iou maximize)")));
    assert_eq!(json(&["--sweep", "byloss"])["metric"], "val_loss");
    assert_eq!(json(&["--sweep", "byiou"])["metric"], "val_iou");
}

#[test]
fn the_dry_run_lists_what_the_run_registers_and_says_when_random_search_runs_out() {
    let runs = tempfile::tempdir().unwrap();
    // A grid value repeated: one trial, in the dry run as in the tracker (issue 15, item 14).
    let file = runs.path().join("dup.toml");
    std::fs::write(&file, common::tiny_sweep("dup", 1, &[0.1, 0.1, 0.2])).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--dry-run"]).assert().success().stdout(contains("(grid, 2 trial(s)"));
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--no-plot"])
        .assert()
        .success()
        .stdout(contains("sweep dup: 2 trials registered"));
    // Random search over 2 values with run_cap 5: 2 trials, and a note that says why.
    let random = common::tiny_sweep("few", 1, &[0.0, 0.1]).replace("method = \"grid\"", "method = \"random\"\nrun_cap = 5");
    std::fs::write(runs.path().join("few.toml"), random).unwrap();
    common::sweep(runs.path())
        .args(["run", runs.path().join("few.toml").to_str().unwrap(), "--dry-run"])
        .assert()
        .success()
        .stdout(contains("note: random search found only 2 distinct configs of the run_cap = 5").and(contains("2 trial(s)")));
}

#[test]
fn a_sweep_without_a_seed_and_a_default_config_share_one_seed() {
    let spec = parse("name = \"s\"\n").unwrap();
    let config = &spec.trials(None)[0].config;
    let default = sweep::config::TrialConfig::default();
    assert_eq!((spec.seed, config.train.seed, config.data.split_seed), (0, 0, 0));
    assert_eq!((default.train.seed, default.data.split_seed), (0, 0), "one default seed (issue 15, item 14)");
}

/// Every sweep file of `tests/hostile/` (issue 27: the malformed files of hostile reviews) is
/// refused by `sweep run FILE --dry-run` with the exit code and the message its header gives,
/// naming the file, never a panic.
#[test]
fn hostile_sweep_files_are_refused_as_their_header_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let runs = tempfile::tempdir().unwrap();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")).map(str::to_string))
                .unwrap_or_else(|| panic!("{}: no `# {key}:` line", file.display()))
        };
        let (exit, message) = (header("exit").parse::<i32>().unwrap(), header("message"));
        let out = common::sweep(runs.path()).args(["run", "--dry-run"]).arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit), "{}: {stderr}", file.display());
        assert!(stderr.contains(&message) && stderr.contains(file.file_name().unwrap().to_str().unwrap()), "{}: {stderr}", file.display());
        assert!(!stderr.contains("panicked"), "{}: {stderr}", file.display());
    }
    assert!(!runs.path().join("sweep.db").exists(), "nothing was registered");
}

/// Issue 30: with `data.eval_full_resolution`, every epoch records the validation split scored at
/// the images' own size, and a sweep ranks, filters, shows and charts by it like any metric.
#[test]
fn a_sweep_ranks_by_the_metrics_at_full_resolution() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("full.toml");
    let text = common::tiny_sweep("full", 2, &[0.0, 0.2])
        .replace("name = \"val_iou\"", "name = \"val_full_iou\"")
        .replace("[data]\n", "[data]\neval_full_resolution = true\n");
    std::fs::write(&file, &text).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain"]).assert().success();
    let s = store(runs.path());
    let trials = s.trials(&TrialFilter::default()).unwrap();
    let value = |t: &sweep::store::TrialRow| t.best("val_full_iou", sweep::config::Goal::Maximize).unwrap().0;
    let top = trials.iter().map(value).fold(f64::MIN, f64::max);
    // A tie goes to the lower trial number.
    let best = trials.iter().filter(|t| value(t) == top).min_by_key(|t| t.seq).unwrap();
    for t in &trials {
        let epochs: Vec<i64> = s.metrics(&t.id).unwrap().iter().filter(|m| m.split == "val" && m.name == "full_iou").map(|m| m.epoch).collect();
        assert_eq!(epochs, [1, 2], "{}: val_full_iou recorded every epoch", t.id);
    }
    common::sweep(runs.path())
        .args(["best", "--json"])
        .assert()
        .success()
        .stdout(contains("\"metric\": \"val_full_iou\"").and(contains(format!("\"run\": \"{}\"", best.id))));
    common::sweep(runs.path()).args(["best", "--metric", "full_dice"]).assert().success().stdout(contains("val_full_dice"));
    let listed = common::sweep(runs.path()).args(["ls", "--where", "val_full_iou >= 0", "--sort", "val_full_iou", "--csv"]).assert().success();
    let listed = String::from_utf8(listed.get_output().stdout.clone()).unwrap();
    assert_eq!(listed.lines().count(), 3, "a header and both trials: {listed}");
    assert!(listed.lines().nth(1).unwrap().contains(&best.id), "the best first: {listed}");
    common::sweep(runs.path()).args(["show", &best.id]).assert().success().stdout(contains("val_full_iou").and(contains("val_full_fg_iou")));
    assert!(runs.path().join("full/plots/curves_val_full_iou.png").is_file(), "the objective's own learning curves");

    // Ranking by it without measuring it is refused where the file says so.
    let without = text.replace("eval_full_resolution = true\n", "");
    common::sweep(runs.path())
        .args(["run", "--dry-run"])
        .arg({
            let f = runs.path().join("without.toml");
            std::fs::write(&f, without).unwrap();
            f
        })
        .assert()
        .code(2)
        .stderr(contains("without.toml:").and(contains("data.eval_full_resolution = true")));
}

/// Issue 29: `--set KEY=VALUE` overrides a setting of every trial, checked as the file is, and
/// kept with the sweep in the tracker so that workers asking a sampler for new trials see it too.
#[test]
fn set_overrides_a_setting_for_every_trial_and_bad_flags_are_named() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("lazy.toml");
    let text = common::tiny_sweep("lazy", 3, &[0.0])
        .replace("method = \"grid\"", "method = \"random\"\nrun_cap = 3")
        .replace("\"augment.hue_delta\" = { values = [0.0] }", "\"augment.hue_delta\" = { distribution = \"uniform\", min = 0.0, max = 0.3 }");
    std::fs::write(&file, text).unwrap();
    let run = |args: &[&str]| common::sweep(runs.path()).arg("run").arg(&file).args(args).assert();
    run(&["--set", "train.epochs=1", "--set", "train.optimizer=sgd", "--plain", "--no-plot", "--workers", "2"]).success();
    let s = store(runs.path());
    let trials = s.trials(&TrialFilter::default()).unwrap();
    assert_eq!(trials.len(), 3);
    for t in &trials {
        let config = s.trial_config(&t.id).unwrap();
        assert_eq!((config.train.epochs, config.train.optimizer), (1, sweep::config::OptimizerKind::Sgd), "{}", t.id);
        assert_eq!(t.epochs(), 1);
    }
    let stored = &s.sweeps().unwrap()[0].spec;
    assert!(stored.starts_with("# set on the command line: --set train.epochs=1 --set train.optimizer=sgd"), "{stored}");

    run(&["--set", "train.epochs=many", "--dry-run"]).code(2).stderr(contains("--set train.epochs=many: train.epochs must be"));
    run(&["--set", "train.epochs", "--dry-run"]).code(2).stderr(contains("--set train.epochs: expected KEY=VALUE"));
    run(&["--set", "augment.hue_delta=0.1", "--dry-run"]).code(2).stderr(contains("swept in [parameters]"));
}

/// Issue 29, item 4: `repeats = N` trains each configuration of a grid or random search N times,
/// `train.seed` = the base seed, + 1, ... (recorded as a swept value, so each repeat is its own
/// trial); run_cap counts configurations. With bayes, with a swept train.seed, or out of range,
/// it is an error at its line.
#[test]
fn repeats_trains_each_configuration_with_consecutive_seeds() {
    let s = parse(
        r#"name = "rep"
repeats = 3
[train]
seed = 7
[parameters]
"augment.hue_delta" = { values = [0.0, 0.2] }
"#,
    )
    .unwrap();
    let got: Vec<(f32, u64, serde_json::Value)> =
        s.trials(None).iter().map(|t| (t.config.augment.hue_delta, t.config.train.seed, t.params["train.seed"].clone())).collect();
    let want: Vec<(f32, u64, serde_json::Value)> =
        [(0.0, 7), (0.0, 8), (0.0, 9), (0.2, 7), (0.2, 8), (0.2, 9)].into_iter().map(|(h, s)| (h, s, serde_json::json!(s))).collect();
    assert_eq!(got, want);

    let random = parse(
        "name = \"r\"\nmethod = \"random\"\nrun_cap = 4\nrepeats = 2\n[parameters]\n\"train.learning_rate\" = { distribution = \"log_uniform_values\", min = 0.0001, max = 0.01 }\n",
    )
    .unwrap();
    let trials = random.trials(None);
    assert_eq!(trials.len(), 8, "run_cap = 4 configurations, each twice");
    for pair in trials.chunks(2) {
        assert_eq!(pair[0].params["train.learning_rate"], pair[1].params["train.learning_rate"]);
        assert_ne!(pair[0].config.train.seed, pair[1].config.train.seed);
    }
    let unrepeated = parse("name = \"g\"\n[parameters]\n\"augment.hue_delta\" = { values = [0.0] }\n").unwrap();
    assert!(!unrepeated.trials(None)[0].params.contains_key("train.seed"), "no seed parameter without repeats");

    for (text, line, fragment) in [
        ("name = \"b\"\nmethod = \"bayes\"\nrun_cap = 4\nrepeats = 2\n[parameters]\n\"augment.hue_delta\" = { min = 0.0, max = 0.3 }\n", 4, "grid"),
        ("name = \"s\"\nrepeats = 2\n[parameters]\n\"train.seed\" = { values = [1, 2] }\n", 2, "both set the seeds"),
        ("name = \"z\"\nrepeats = 0\n", 2, "1 to 100 times"),
        ("name = \"z\"\nrepeats = 101\n", 2, "1 to 100 times"),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(&format!("sweeps/test.toml:{line}:")) && err.contains(fragment), "{text}\n{err}");
    }
}

/// Issue 29, item 4: seed groups from a real sweep with `repeats = 2`. `ls --group` ranks the
/// configurations by the mean of their trials' best objective values, with the sample standard
/// deviation and n, each equal to what the trials' own values give by hand; `best` is the best
/// trial of the best group; `show --json`, `ls --csv` and the CSV export carry the group; the
/// sweep page shows the groups.
#[test]
fn seed_groups_aggregate_repeats_and_rank_by_their_mean() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = dir.path().join("seeds.toml");
    let text = common::tiny_sweep("seeds", 2, &[0.0, 0.3]).replace("seed = 3\n", "seed = 3\nrepeats = 3\n");
    std::fs::write(&file, text).unwrap();
    common::sweep(&runs).arg("run").arg(&file).args(["--workers", "2", "--plain"]).assert().success();

    let trials = ls_json(&runs, &["ls", "--json"]);
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 6);
    // By hand: each configuration's trials' best val_iou, their mean and sample deviation.
    let mut by_hue: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for t in trials {
        let hue = t["params"]["augment.hue_delta"].to_string();
        by_hue.entry(hue).or_default().push((t["id"].as_str().unwrap().to_string(), t["metrics"]["val_iou"]["max"].as_f64().unwrap()));
    }
    let stats = |values: &[(String, f64)]| {
        let n = values.len() as f64;
        let mean = values.iter().map(|v| v.1).sum::<f64>() / n;
        let std = (values.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        (mean, std)
    };
    let mut expected: Vec<(String, f64, f64, Vec<String>)> = by_hue
        .values()
        .map(|members| {
            let (mean, std) = stats(members);
            (members[0].0.clone(), mean, std, members.iter().map(|m| m.0.clone()).collect())
        })
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1));

    let listed = ls_json(&runs, &["ls", "--group", "--json"]);
    assert_eq!((listed["sweep"].as_str(), listed["metric"].as_str()), (Some("seeds"), Some("val_iou")));
    let groups = listed["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for (g, (id, mean, std, members)) in groups.iter().zip(&expected) {
        assert_eq!(g["id"].as_str(), Some(id.as_str()));
        assert!((g["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{g} vs {mean}");
        assert!((g["std"].as_f64().unwrap() - std).abs() < 1e-12, "{g} vs {std}");
        assert_eq!(g["values"].as_array().unwrap().len(), 3);
        let got: Vec<&str> = g["trials"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(got, members.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(g["params"].get("train.seed").is_none(), "the group's values leave the seed out: {g}");
    }
    let table = String::from_utf8(common::sweep(&runs).args(["ls", "--group"]).output().unwrap().stdout).unwrap();
    assert!(table.contains("val_iou mean ± std (n)") && table.contains("(n=3)"), "{table}");

    // best: the best trial of the best group (by mean), which need not be the best trial.
    let best = ls_json(&runs, &["best", "--json"]);
    let winners = &by_hue.values().find(|m| m[0].0 == expected[0].0).unwrap();
    let top = winners.iter().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0))).unwrap();
    assert_eq!(best["run"].as_str(), Some(top.0.as_str()), "{best}");
    assert_eq!(best["group"]["id"].as_str(), Some(expected[0].0.as_str()));
    assert_eq!(best["group"]["n"], 3);

    // The group travels with each trial.
    let second = &expected[1].3[1];
    assert_eq!(ls_json(&runs, &["show", second, "--json"])["group"].as_str(), Some(expected[1].0.as_str()));
    let csv = String::from_utf8(common::sweep(&runs).args(["export", "--format", "csv"]).output().unwrap().stdout).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "group").expect("a group column");
    let row = csv.lines().find(|l| l.starts_with(&format!("{second},"))).unwrap();
    assert_eq!(row.split(',').nth(at), Some(expected[1].0.as_str()));
    let page = std::fs::read_to_string(runs.join("seeds/plots/index.html")).unwrap();
    assert!(page.contains("<h3>Seed groups</h3>") && page.contains("± "), "the sweep page shows the groups");
    let chart = image::open(runs.join("seeds/plots/seed_groups.png")).expect("seed_groups.png decodes");
    assert_eq!((chart.width(), chart.height()), (1000, 600));
    assert!(page.contains("seed_groups.png"), "the page shows the chart");
    // The charts' best trial is best's: the best group's best trial.
    assert!(runs.join(format!("seeds/plots/run_{}.png", top.0)).is_file(), "the best trial's own chart");
}

fn ls_json(runs: &Path, args: &[&str]) -> serde_json::Value {
    let out = common::sweep(runs).args(args).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

#[test]
fn best_of_a_sweep_of_several_objectives_is_its_pareto_front_over_the_tracker() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("mo.toml");
    let text = common::tiny_sweep("mo", 1, &[0.0, 0.3]).replace(
        "[metric]\nname = \"val_iou\"\ngoal = \"maximize\"\n",
        "[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"params\"\ngoal = \"minimize\"\n",
    );
    let text = text.replace("[parameters]\n", "[parameters]\n\"model.base_filters\" = { values = [2, 4, 6] }\n");
    std::fs::write(&file, text).unwrap();
    let run = common::sweep(runs.path()).arg("run").arg(&file).args(["--workers", "2", "--plain"]).assert().success();
    let printed = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert!(printed.contains("Pareto front of sweep mo: ") && !printed.contains("rank  run"), "the run ends with its front: {printed}");

    // The front by brute force over what the tracker holds: trials no other beats by both.
    let store = store(runs.path());
    let trials = store.trials(&TrialFilter { sweep: Some("mo".into()), status: Some(TrialStatus::Completed) }).unwrap();
    assert_eq!(trials.len(), 6);
    let value = |t: &sweep::store::TrialRow| (t.best("val_iou", sweep::config::Goal::Maximize).unwrap().0, t.last("params").unwrap());
    let beats = |a: (f64, f64), b: (f64, f64)| a.0 >= b.0 && a.1 <= b.1 && (a.0 > b.0 || a.1 < b.1);
    let mut expected: Vec<(f64, i64, String)> =
        trials.iter().filter(|t| !trials.iter().any(|o| beats(value(o), value(t)))).map(|t| (value(t).0, t.seq, t.id.clone())).collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let expected: Vec<String> = expected.into_iter().map(|(_, _, id)| id).collect();
    assert!(!expected.is_empty());

    let out = common::sweep(runs.path()).args(["best", "--sweep", "mo", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let front: Vec<String> = v["front"].as_array().unwrap().iter().map(|m| m["run"].as_str().unwrap().to_string()).collect();
    assert_eq!(front, expected, "{v:#}");
    assert_eq!(v["objectives"][1], serde_json::json!({"name": "params", "goal": "minimize"}));
    assert_eq!(v["completed_judged"], 6);
    for m in v["front"].as_array().unwrap() {
        let t = trials.iter().find(|t| t.id == m["run"].as_str().unwrap()).unwrap();
        assert_eq!((m["values"]["val_iou"].as_f64().unwrap(), m["values"]["params"].as_f64().unwrap()), value(t));
    }
    // The smallest model is always on the front (nothing has fewer parameters, and of its two
    // trials the better IoU is kept); the text names the objectives and every member.
    let text = common::sweep(runs.path()).args(["best", "--sweep", "mo"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "Pareto front of sweep mo: {} of 6 completed trials; objectives val_iou (maximize), params (minimize)",
            expected.len()
        )),
        "{text}"
    );
    assert!(expected.iter().all(|id| text.contains(id.as_str())), "{text}");
    let header = text.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(header, ["trial", "val_iou", "params", "swept"], "the swept settings' column is not a second `params`: {text}");
    // `ls --pareto`: the front of the listed trials, with --where narrowing what is listed.
    let listed = |args: &[&str]| -> Vec<String> {
        let out = common::sweep(runs.path()).args(["ls", "--sweep", "mo", "--pareto", "--json"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids: Vec<String> = v.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(listed(&[]), sorted);
    let biggest = trials.iter().map(|t| value(t).1).fold(0.0, f64::max);
    let among_big: Vec<&sweep::store::TrialRow> = trials.iter().filter(|t| value(t).1 == biggest).collect();
    let best_big = among_big.iter().max_by(|a, b| value(a).0.total_cmp(&value(b).0).then(b.seq.cmp(&a.seq))).unwrap();
    assert_eq!(listed(&["--where", &format!("params >= {biggest}")]), std::slice::from_ref(&best_big.id), "among the largest models, the best IoU");
    // One objective by --metric, as for any sweep; --eval needs one.
    let smallest = trials.iter().min_by(|a, b| value(a).1.total_cmp(&value(b).1).then(a.seq.cmp(&b.seq))).unwrap();
    common::sweep(runs.path())
        .args(["best", "--sweep", "mo", "--metric", "params"])
        .assert()
        .success()
        .stdout(contains(format!("best trial   {} ", smallest.id)));
    // --eval: every member's best checkpoint evaluated again; it scores what the tracker recorded
    // for that epoch (validation and eval share one pass).
    let out = common::sweep(runs.path()).args(["best", "--sweep", "mo", "--eval", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = v["front"].as_array().unwrap();
    assert_eq!(members.len(), expected.len());
    for m in members {
        let eval = &m["eval"];
        assert_eq!(eval["checkpoint_epoch"], 1, "{m}");
        let recorded = m["values"]["val_iou"].as_f64().unwrap();
        assert!((eval["iou"].as_f64().unwrap() - recorded).abs() < 1e-4, "{} re-evaluated {eval} against {recorded}", m["run"]);
        let pooled = eval["original_size"]["pooled"]["iou"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&pooled), "{eval}");
    }
    let text = common::sweep(runs.path()).args(["best", "--sweep", "mo", "--eval"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    let table = text.split("re-evaluated each member's best checkpoint").nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(expected.iter().all(|id| table.contains(id.as_str())), "{text}");

    // Importance for each objective: the parameter count depends on base_filters alone.
    let out = common::sweep(runs.path()).args(["importance", "mo", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let each = v["objectives"].as_array().unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!((each[0]["objective"].as_str(), each[1]["objective"].as_str()), (Some("val_iou"), Some("params")));
    let top = &each[1]["importances"][0];
    assert_eq!(top["parameter"], "model.base_filters", "{v:#}");
    assert!(top["importance"].as_f64().unwrap() > 0.9, "{v:#}");
    let text = common::sweep(runs.path()).args(["importance", "mo"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("parameter importance for val_iou (maximize)") && text.contains("parameter importance for params (minimize)"), "{text}");
    // Its charts, one per objective, decoded, and the index page that shows both.
    common::sweep(runs.path()).args(["plot", "mo"]).assert().success();
    for file in ["importance.png", "importance_params.png"] {
        let png = image::open(runs.path().join("mo/plots").join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(png.width() > 100 && png.height() > 100);
    }
    let index = std::fs::read_to_string(runs.path().join("mo/plots/index.html")).unwrap();
    assert!(index.contains("<h3>For val_iou (maximize)</h3>") && index.contains("<h3>For params (minimize)</h3>"), "{index}");
    assert!(index.contains("src=\"importance_params.png\""), "the chart in its section");
}

#[test]
fn asha_over_several_objectives_judges_each_rung_by_pareto_rank_with_the_costs_known_up_front() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("mop.toml");
    let text = common::tiny_sweep("mop", 3, &[0.0, 0.3]).replace(
        "[metric]\nname = \"val_iou\"\ngoal = \"maximize\"\n",
        "[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"infer_ms\"\ngoal = \"minimize\"\n[early_terminate]\ntype = \"asha\"\nmin_iter = 1\neta = 2\n",
    );
    let text = text.replace("[parameters]\n", "[parameters]\n\"model.base_filters\" = { values = [2, 4, 8] }\n");
    std::fs::write(&file, text).unwrap();
    common::sweep(runs.path()).arg("run").arg(&file).args(["--workers", "1", "--plain"]).assert().success();
    let store = store(runs.path());
    let trials = store.trials(&TrialFilter { sweep: Some("mop".into()), status: None }).unwrap();
    assert_eq!(trials.len(), 6);
    let pruned: Vec<_> = trials.iter().filter(|t| t.status == TrialStatus::Pruned).collect();
    assert!(!pruned.is_empty(), "ASHA at eta 2 stops someone: {trials:?}");
    // Each reason ranks the trial by its IoU at the rung together with gflops, which stands in
    // for infer_ms (measured only when a trial completes).
    for t in &pruned {
        let reason = t.error.as_deref().unwrap_or_default();
        assert!(reason.contains("gflops (for infer_ms)") && reason.contains("Pareto front"), "{}: {reason}", t.id);
    }
    // One worker, in order: the first trial reaches every rung first, with nothing to compare
    // with, and continues.
    assert_eq!(trials[0].status, TrialStatus::Completed, "{:?}", trials[0]);
}

#[test]
fn a_constraint_on_a_cost_stops_a_trial_before_training_and_one_broken_at_the_end_is_never_best() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("c.toml");
    // The model of base 4 and below is allowed; base 8 breaks the bound before its first epoch.
    let limit = sweep::config::UNetConfig { base_filters: 4, depth: 2, ..Default::default() }.cost(32, 32).params;
    let text = common::tiny_sweep("c", 2, &[0.0]).replace(
        "[parameters]\n",
        &format!("[[constraints]]\nmetric = \"params\"\nmax = {limit}\n[parameters]\n\"model.base_filters\" = {{ values = [2, 4, 8] }}\n"),
    );
    std::fs::write(&file, text).unwrap();
    common::sweep(runs.path()).arg("run").arg(&file).args(["--workers", "1", "--plain"]).assert().success();
    let store = store(runs.path());
    let trials = store.trials(&TrialFilter { sweep: Some("c".into()), status: None }).unwrap();
    let by_filters = |f: i64| trials.iter().find(|t| t.params["model.base_filters"] == serde_json::json!(f)).unwrap();
    let big = by_filters(8);
    assert_eq!(big.status, TrialStatus::Infeasible, "{big:?}");
    assert!(big.error.as_deref().unwrap().contains(&format!("is above max = {limit} ([[constraints]]); no epoch was trained")), "{:?}", big.error);
    assert!(store.metrics(&big.id).unwrap().is_empty(), "no epoch");
    assert!(big.last("params").unwrap() > limit as f64, "its cost is recorded");
    assert_eq!((by_filters(2).status, by_filters(4).status), (TrialStatus::Completed, TrialStatus::Completed));
    // Samplers rank it by how far it is off: its parameters' excess over the bound, relative to it.
    let mut tracker = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    let study = sweep::runner::study::Study::load(&tracker, "c").unwrap().unwrap();
    let history = study.sampled_history(&mut tracker).unwrap();
    let seen = history.trials.iter().find(|t| t.state == sweep::study::history::SearchState::Infeasible).unwrap();
    let excess = (big.last("params").unwrap() - limit as f64) / limit as f64;
    assert!((seen.violation - excess).abs() < 1e-12 && excess > 0.0, "{} against {excess}", seen.violation);
    assert!(history.trials.iter().filter(|t| t.state != sweep::study::history::SearchState::Infeasible).all(|t| t.violation == 0.0));
    // The same sweep bounding IoU from below where no trial gets: each completes its epochs and
    // ends infeasible, keeping them; none is best.
    let file = runs.path().join("d.toml");
    let text =
        common::tiny_sweep("d", 2, &[0.0, 0.3]).replace("[parameters]\n", "[[constraints]]\nmetric = \"val_iou\"\nmin = 0.999\n[parameters]\n");
    std::fs::write(&file, text).unwrap();
    common::sweep(runs.path()).arg("run").arg(&file).args(["--workers", "1", "--plain"]).assert().success();
    for t in store.trials(&TrialFilter { sweep: Some("d".into()), status: None }).unwrap() {
        assert_eq!(t.status, TrialStatus::Infeasible, "{t:?}");
        assert!(t.error.as_deref().unwrap().starts_with("infeasible: val_iou ") && t.error.as_deref().unwrap().contains("is below min = 0.999"));
        assert_eq!(store.metrics(&t.id).unwrap().iter().map(|m| m.epoch).max(), Some(2), "its epochs are kept");
    }
    // Each ranks by its IoU at the last epoch, the one judged, short of the bound.
    let study = sweep::runner::study::Study::load(&tracker, "d").unwrap().unwrap();
    for seen in study.sampled_history(&mut tracker).unwrap().trials {
        let last = seen.last().unwrap().1;
        assert!((seen.violation - (0.999 - last) / 0.999).abs() < 1e-12, "{} at IoU {last}", seen.violation);
    }
    common::sweep(runs.path()).args(["best", "--sweep", "d"]).assert().code(1).stderr(contains("no completed trial"));
    common::sweep(runs.path()).args(["best", "--sweep", "c"]).assert().success();
}
