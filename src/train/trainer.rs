//! The training loop of one run: data, model and optimiser from a [`TrialConfig`], epochs of
//! training and validation, checkpoints, and reports to an [`Observer`] (the tracker, progress).
//!
//! Guarantees:
//! - The same config, seed and backend give the same metrics: weights are drawn from the seeded
//!   device, and every shuffle and augmentation from seeds derived from (seed, epoch, sample).
//! - A run resumed from `last` ends with the same metrics as an uninterrupted one: the checkpoint
//!   holds the model (with BatchNorm's running statistics), the optimiser state and the epoch.
//!   So does a trial whose epoch target rose ([`TrialConfig::continues`]): it goes on from `last`
//!   and ends as one trained straight through to the new target.
//! - An epoch is reported to the observer only after its `last` checkpoint is on disk, and the
//!   checkpoint remembers every epoch's metrics, so an observer that missed a report (the process
//!   died in between) gets it again on resume through [`Observer::replay`]. `best` is written
//!   only after its epoch is reported, so it never holds an epoch the tracker has not recorded
//!   (see `save_and_record`).
//! - A NaN or infinite loss ends the run as [`Outcome::Diverged`] with the epoch and step; the
//!   optimiser never applies that step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, RmsPropConfig, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor};

use crate::config::ModelError;
use crate::config::{Objective, OptimizerKind, Problem, TrainConfig, TrialConfig};
use crate::data::{self, DataError, Loader, Sample};
use crate::train::batch_tensors;
use crate::train::checkpoint::{BestSoFar, CheckpointError, CheckpointKind, EpochSummary, TrainState, TrialDir};
use crate::train::device::DeviceError;
use crate::train::metrics::{Confusion, MetricAccumulator, SplitMetrics, bce_dice_loss, confusion_counts};
use crate::train::model::UNet;
use crate::train::ops::adam::FusedAdam;
use crate::train::scoring::{self, Tta};

/// Why a run could not train.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {}: {}", p.key, p.message)).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Problem>),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A model asked of a trial that has not saved one: the user named it too early.
    #[error(
        "{}: the trial has no `{kind}` checkpoint yet (it has not finished an epoch); wait until it has, or name a trial that has (`sweep ls`)",
        path.display()
    )]
    NoCheckpoint { path: PathBuf, kind: &'static str },
    /// A model asked of a trial that the user's own program trained (`[program]`).
    #[error(
        "{}: this trial was trained by the sweep's own program ([program]), whose model sweep cannot load; \
         evaluate its checkpoints (in the trial directory) with that program. `sweep best` without --eval, ls, show and the charts work as for any trial",
        path.display()
    )]
    ProgramTrial { path: PathBuf },
    #[error(
        "{}: this run directory belongs to another configuration (hash {found}, expected {expected}); \
         use another run directory or delete this one",
        path.display()
    )]
    ConfigMismatch { path: PathBuf, expected: String, found: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The observer (the tracker) failed to record an epoch.
    #[error("recording the epoch failed: {0}")]
    Observer(String),
}

impl TrainError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            TrainError::Data(e) => e.is_bad_input(),
            TrainError::Model(_)
            | TrainError::Device(_)
            | TrainError::Config(_)
            | TrainError::ConfigMismatch { .. }
            | TrainError::NoCheckpoint { .. }
            | TrainError::ProgramTrial { .. } => true,
            TrainError::Checkpoint(_) | TrainError::Io { .. } | TrainError::Observer(_) => false,
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
        move |source| TrainError::Io { path: path.to_path_buf(), source }
    }
}

/// How a run ended (errors aside).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every epoch ran.
    Completed { epochs: usize, best: Option<BestSoFar>, cost: TrainedCost },
    /// The loss became NaN or infinite at `step` (1-based) of `epoch` (1-based).
    Diverged { epoch: usize, step: usize, value: f64 },
    /// The observer asked to stop; `epochs_done` epochs are checkpointed.
    Stopped { epochs_done: usize },
}

/// A request from outside to stop training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    Continue,
    /// Finish the current epoch, checkpoint it, then stop.
    AfterEpoch,
    /// Stop at the next step; the last checkpoint stays as it is.
    Now,
}

/// Where one training step stands, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepProgress {
    /// 1-based epoch and step.
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    pub learning_rate: f64,
}

/// A checkpoint written at the end of an epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedCheckpoint {
    pub kind: CheckpointKind,
    pub epoch: usize,
    pub path: PathBuf,
    /// The objective's value at that epoch.
    pub metric_value: f64,
}

/// Receives what training does. Every method but `on_epoch` has a default that ignores it.
pub trait Observer {
    /// Training starts (or resumes) at 0-based epoch `start_epoch`.
    fn on_start(&mut self, _start_epoch: usize, _steps_per_epoch: usize) {}
    /// One optimiser step finished.
    fn on_step(&mut self, _progress: &StepProgress) {}
    /// An epoch finished and its checkpoints are on disk: record it. An error ends training.
    fn on_epoch(&mut self, summary: &EpochSummary, checkpoints: &[SavedCheckpoint]) -> Result<(), String>;
    /// A checkpoint written after its epoch was recorded: the `best` one, which is written only
    /// once the tracker holds its epoch. Record it.
    fn on_checkpoint(&mut self, saved: &SavedCheckpoint) -> Result<(), String> {
        let _ = saved;
        Ok(())
    }
    /// On resume: every epoch the checkpoint remembers, with its checkpoints, so that an observer
    /// can record any it missed. Recording one twice must be harmless.
    fn replay(&mut self, history: &[EpochSummary], checkpoints: &[SavedCheckpoint]) -> Result<(), String> {
        let _ = (history, checkpoints);
        Ok(())
    }
    /// Polled before every step.
    fn stop_request(&self) -> StopRequest {
        StopRequest::Continue
    }
}

/// An observer that records nothing (tests, benchmarks).
pub struct NullObserver;

impl Observer for NullObserver {
    fn on_epoch(&mut self, _: &EpochSummary, _: &[SavedCheckpoint]) -> Result<(), String> {
        Ok(())
    }
}

/// Faults to inject, for testing what happens when things go wrong (set through `SWEEP_FAULT` in
/// the CLI; never used in normal runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Replace the loss of this (epoch, step), both 1-based, with NaN.
    pub nan_loss_at: Option<(usize, usize)>,
    /// Panic at this (epoch, step).
    pub panic_at: Option<(usize, usize)>,
    /// Panic once the n-th checkpoint file of this epoch is on disk: (epoch, n), both 1-based.
    /// A crash between two writes of an epoch's bookkeeping.
    pub crash_after_write: Option<(usize, usize)>,
    /// Kill the process with SIGKILL at this (epoch, step), as the OOM killer would.
    pub kill_at: Option<(usize, usize)>,
    /// Kill the process with SIGKILL once the n-th checkpoint file of this epoch is on disk:
    /// (epoch, n). A worker's death between recording an epoch and saving what followed it.
    pub kill_after_write: Option<(usize, usize)>,
}

impl Faults {
    /// Parses `nan@E:S`, `panic@E:S`, `kill@E:S` (epoch E, step S), `write@E:N` and
    /// `killwrite@E:N` (after the N-th checkpoint file of epoch E), comma-separated.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, at) = part.split_once('@').ok_or_else(|| format!("fault {part:?}: expected kind@epoch:step"))?;
            let (e, s) = at.split_once(':').ok_or_else(|| format!("fault {part:?}: expected epoch:step"))?;
            let at = (e.parse().map_err(|_| format!("fault {part:?}: bad epoch"))?, s.parse().map_err(|_| format!("fault {part:?}: bad step"))?);
            match kind {
                "nan" => faults.nan_loss_at = Some(at),
                "panic" => faults.panic_at = Some(at),
                "write" => faults.crash_after_write = Some(at),
                "kill" => faults.kill_at = Some(at),
                "killwrite" => faults.kill_after_write = Some(at),
                _ => return Err(format!("fault {part:?}: kind must be nan, panic, kill, write or killwrite")),
            }
        }
        Ok(faults)
    }

    /// Called after the `n`-th checkpoint file of (1-based) `epoch` is on disk.
    fn written(&self, epoch: usize, n: usize) {
        if self.crash_after_write == Some((epoch, n)) {
            panic!("injected fault: crash after checkpoint write {n} of epoch {epoch}");
        }
        if self.kill_after_write == Some((epoch, n)) {
            // SAFETY: raise has no memory effects; the process ends here.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    }
}

/// Everything a run needs besides its config.
pub struct TrialContext<'a> {
    pub trial_dir: TrialDir,
    /// The runs root, where the synthetic dataset is cached.
    pub runs_root: &'a Path,
    pub device: Device,
    pub faults: Faults,
}

/// The dataset directory a config points at, generating the synthetic set if needed.
pub fn dataset_dir(config: &TrialConfig, runs_root: &Path) -> Result<PathBuf, DataError> {
    if config.data.is_synthetic() { data::synth::ensure(runs_root, &config.data.synth_spec()) } else { Ok(PathBuf::from(&config.data.source)) }
}

/// The decoded dataset of a config and its split: indices into `samples`.
pub struct DataSplit {
    pub samples: Arc<Vec<Sample>>,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// The decoded dataset of a config, and its (train, validation) split.
pub fn load_split(config: &TrialConfig, runs_root: &Path) -> Result<DataSplit, DataError> {
    let dir = dataset_dir(config, runs_root)?;
    let [h, w] = config.data.image_size;
    let samples = data::cached(&dir, Some((h as u32, w as u32)))?;
    let ids: Vec<String> = samples.iter().map(|s| s.id.clone()).collect();
    let (train, val) = data::split_for(&ids, &config.data)?;
    Ok(DataSplit { samples, train, val })
}

/// Builds the optimiser a config asks for.
pub fn optimizer(t: &TrainConfig) -> ModuleOptimizer {
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer {
        OptimizerKind::Adam => {
            FusedAdam::init(t.beta1 as f32, t.beta2 as f32, t.epsilon as f32, (t.weight_decay > 0.0).then_some(t.weight_decay as f32))
        }
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_beta_1(t.beta1 as f32)
            .with_beta_2(t.beta2 as f32)
            .with_epsilon(t.epsilon as f32)
            .with_weight_decay(t.weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((t.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(t.momentum).with_dampening(0.0).with_nesterov(t.nesterov)))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Rmsprop => RmsPropConfig::new()
            .with_alpha(t.rho as f32)
            .with_momentum(t.momentum as f32)
            .with_epsilon(t.epsilon as f32)
            .with_weight_decay(decay)
            .init(),
    }
}

/// One batch's loss, dice and confusion matrix, read back from the device in two transfers.
fn batch_results(loss: Tensor<1>, dice: Tensor<1>, logits: Tensor<4>, masks: Tensor<4>) -> (f64, f64, Confusion) {
    let pixels = logits.shape().num_elements() as u64;
    let scalars: Vec<f64> = Tensor::cat(vec![loss, dice], 0).into_data().iter::<f64>().collect();
    let counts: Vec<i64> = confusion_counts(logits, masks).into_data().iter::<i64>().collect();
    let confusion = Confusion::from_counts(counts[0] as u64, counts[1] as u64, counts[2] as u64, pixels);
    (scalars[0], scalars[1], confusion)
}

/// Evaluates `model` (in eval mode: BatchNorm uses its running statistics) on `loader`'s batches,
/// over the whole split: the loss and dice are the split's, whatever the batch size.
pub fn evaluate(model: &UNet, loader: &Loader, device: &Device) -> SplitMetrics {
    scoring::evaluate_split(model, loader, device, None, Tta::None).metrics
}

/// Rebuilds a run's model from its directory alone (config.json and a checkpoint).
pub fn load_model(run: &TrialDir, kind: CheckpointKind, device: &Device) -> Result<(TrialConfig, UNet, TrainState), TrainError> {
    let config = run.read_config()?;
    if config.program.is_some() {
        return Err(TrainError::ProgramTrial { path: run.root.clone() });
    }
    let checkpoint = run.load(kind)?.ok_or_else(|| TrainError::NoCheckpoint { path: run.checkpoint_path(kind), kind: kind.as_str() })?;
    let model = restore(config.model.init(device, 0), checkpoint.model, &run.checkpoint_path(kind))?;
    Ok((config, model, checkpoint.state))
}

/// Loads a checkpoint's model record into `model` (built from the run's config).
fn restore(model: UNet, record: burn::tensor::Bytes, path: &Path) -> Result<UNet, CheckpointError> {
    let bad = |reason: String| CheckpointError { path: path.to_path_buf(), reason };
    let record = ModuleRecord::from_bytes(record).map_err(|e| bad(format!("the model record cannot be read: {e}")))?;
    model.try_load_record(record).map_err(|e| bad(format!("the model record does not fit the trial's config: {e}")))
}

/// Trains one run to completion, divergence or a stop request. When it starts and when it ends,
/// the temporary files of writers killed in the trial directory are removed.
pub fn train(config: &TrialConfig, ctx: &TrialContext, observer: &mut dyn Observer) -> Result<Outcome, TrainError> {
    remove_stale_temp_files(&ctx.trial_dir);
    let outcome = train_trial(config, ctx, observer);
    remove_stale_temp_files(&ctx.trial_dir);
    outcome
}

/// Cleaning up is best effort: a leftover costs disk space, never correctness.
fn remove_stale_temp_files(run: &TrialDir) {
    if let Err(e) = run.remove_stale_temp_files() {
        eprintln!("warning: {}: cannot remove leftover temporary files: {e}", run.root.display());
    }
}

fn train_trial(config: &TrialConfig, ctx: &TrialContext, observer: &mut dyn Observer) -> Result<Outcome, TrainError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(TrainError::Config(problems));
    }
    let config_hash = config.hash();
    let run = &ctx.trial_dir;
    write_or_check_config(run, config, &config_hash)?;

    let DataSplit { samples, train: train_idx, val: val_idx } = load_split(config, ctx.runs_root)?;
    // Scoring at full size every epoch needs the validation masks at their own size: decoded once.
    let truth = match config.data.eval_full_resolution {
        true => Some(scoring::load_truth(&dataset_dir(config, ctx.runs_root)?, &samples, &val_idx)?),
        false => None,
    };
    let t = &config.train;
    let train_loader = Loader::train(samples.clone(), train_idx, t.batch_size, config.augment, t.seed);
    let val_loader = Loader::eval(samples, val_idx, t.batch_size, config.augment.rescale);
    let steps = train_loader.batches_per_epoch();

    let device = &ctx.device;
    let train_device = device.clone().autodiff();
    let fresh = Trained { model: config.model.init(&train_device, t.seed), optim: optimizer(t), state: TrainState::new(config_hash.clone()) };
    let (mut trained, resumed) = resume(run, config, &config_hash, fresh)?;
    if resumed {
        let last = last_checkpoint(run, &config.metric, &trained.state);
        observer.replay(&trained.state.history, &last).map_err(TrainError::Observer)?;
        settle_best(run, &mut trained, observer)?;
        // The replay may have decided the trial stops here (a pruning decision its last run
        // died before saving): no epoch more.
        if trained.state.epochs_done < t.epochs && observer.stop_request() != StopRequest::Continue {
            return Ok(Outcome::Stopped { epochs_done: trained.state.epochs_done });
        }
    }

    observer.on_start(trained.state.epochs_done, steps);
    for epoch in trained.state.epochs_done..t.epochs {
        let started = Instant::now();
        let end;
        (trained, end) = train_epoch(trained, epoch, &train_loader, &train_device, ctx, t, observer)?;
        let (acc, learning_rate) = match end {
            EpochEnd::Trained(acc, learning_rate) => (acc, learning_rate),
            EpochEnd::Stopped => return Ok(Outcome::Stopped { epochs_done: trained.state.epochs_done }),
            EpochEnd::Diverged { step, value } => return Ok(Outcome::Diverged { epoch: epoch + 1, step, value }),
        };
        let val = scoring::evaluate_split(&trained.model, &val_loader, device, truth.as_deref(), Tta::None);
        let summary = EpochSummary {
            epoch: epoch + 1,
            train: acc.finish(),
            val: val.metrics,
            val_full: val.full.map(|f| f.metrics()),
            learning_rate,
            seconds: started.elapsed().as_secs_f64(),
            wall: crate::util::now_unix(),
        };
        if !summary.val.loss.is_finite() {
            // Record the epoch that showed it, then stop: the run is diverged.
            trained.state.history.push(summary.clone());
            observer.on_epoch(&summary, &[]).map_err(TrainError::Observer)?;
            return Ok(Outcome::Diverged { epoch: epoch + 1, step: steps, value: summary.val.loss });
        }
        save_and_record(run, &config.metric, &summary, &mut trained, ctx, observer)?;

        if epoch + 1 < t.epochs && observer.stop_request() != StopRequest::Continue {
            return Ok(Outcome::Stopped { epochs_done: trained.state.epochs_done });
        }
    }
    // What the trained model costs: its epochs' time (every run of the trial's, from the
    // checkpointed history: a resumed or extended trial counts each epoch once) and its latency.
    let [height, width] = config.data.image_size;
    let cost = TrainedCost {
        train_seconds: trained.state.history.iter().map(|e| e.seconds).filter(|s| s.is_finite()).sum(),
        infer_ms: scoring::latency_ms(&trained.model, height, width, device),
    };
    Ok(Outcome::Completed { epochs: trained.state.epochs_done, best: trained.state.best, cost })
}

/// The cost metrics of a trained trial that only training tells (`params` and `gflops` are
/// known from its settings: [`crate::config::UNetConfig::cost`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainedCost {
    /// The seconds its epochs took (training and validation), summed over every epoch it trained.
    pub train_seconds: f64,
    /// [`scoring::latency_ms`] of the final model.
    pub infer_ms: f64,
}

/// What training holds between epochs: the model, the optimiser, and where training stands.
struct Trained {
    model: UNet,
    optim: ModuleOptimizer,
    state: TrainState,
}

/// How an epoch's training steps ended.
enum EpochEnd {
    /// Every step ran: the accumulated metrics and the last step's learning rate.
    Trained(MetricAccumulator, f64),
    /// A stop-now request came between two steps.
    Stopped,
    /// A step's loss was NaN or infinite; the optimiser did not apply it.
    Diverged { step: usize, value: f64 },
}

/// Writes the resolved config into the run directory before anything else, so that the
/// directory describes itself; a directory that holds another config is an error, unless this
/// config only raises its epoch target ([`TrialConfig::continues`]): then the trial goes on, and
/// the directory says so.
fn write_or_check_config(run: &TrialDir, config: &TrialConfig, config_hash: &str) -> Result<(), TrainError> {
    match run.read_config() {
        Ok(existing) if existing.hash() == config_hash => Ok(()),
        Ok(existing) if !config.continues(&existing) => {
            Err(TrainError::ConfigMismatch { path: run.config_path(), expected: config_hash.to_string(), found: existing.hash() })
        }
        _ => run.write_config(config).map_err(TrainError::io(&run.root)),
    }
}

/// Restores model, optimiser and state from the `last` checkpoint, if there is one; says
/// whether it did. A checkpoint written under a lower epoch target of the same trial continues
/// under this one, and carries this config's hash from its next save on.
fn resume(run: &TrialDir, config: &TrialConfig, config_hash: &str, fresh: Trained) -> Result<(Trained, bool), TrainError> {
    let Some(mut last) = run.load(CheckpointKind::Last)? else { return Ok((fresh, false)) };
    let path = run.checkpoint_path(CheckpointKind::Last);
    if last.state.config_hash != config_hash {
        if config.continued_from(&last.state.config_hash, last.state.epochs_done).is_none() {
            return Err(TrainError::ConfigMismatch { path, expected: config_hash.to_string(), found: last.state.config_hash });
        }
        last.state.config_hash = config_hash.to_string();
    }
    let model = restore(fresh.model, last.model, &path)?;
    let optim = match last.optimizer {
        Some(bytes) => fresh
            .optim
            .from_bytes(bytes)
            .map_err(|e| CheckpointError { path: path.clone(), reason: format!("the optimizer record cannot be read: {e}") })?,
        None => fresh.optim,
    };
    Ok((Trained { model, optim, state: last.state }, true))
}

/// One epoch's training steps (0-based `epoch`). Takes the model by value, so that the
/// optimiser can update parameters that nothing else holds in place.
fn train_epoch(
    mut trained: Trained,
    epoch: usize,
    loader: &Loader,
    train_device: &Device,
    ctx: &TrialContext,
    t: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<(Trained, EpochEnd), TrainError> {
    let steps = loader.batches_per_epoch();
    let mut acc = MetricAccumulator::default();
    let mut learning_rate = t.learning_rate;
    for (step, batch) in loader.epoch(epoch).enumerate() {
        let at = (epoch + 1, step + 1);
        if observer.stop_request() == StopRequest::Now {
            return Ok((trained, EpochEnd::Stopped));
        }
        if ctx.faults.panic_at == Some(at) {
            panic!("injected fault: panic at epoch {} step {}", at.0, at.1);
        }
        if ctx.faults.kill_at == Some(at) {
            // SAFETY: raise has no memory effects; the process ends here.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        learning_rate = t.learning_rate_at(epoch, step, steps);
        let n = batch.len;
        let (images, masks) = batch_tensors(batch, train_device);
        let logits = trained.model.forward(images);
        let (loss, dice) = bce_dice_loss(logits.clone(), masks.clone());
        let (mut loss_value, dice_value, confusion) = batch_results(loss.clone().detach(), dice.detach(), logits.detach(), masks);
        if ctx.faults.nan_loss_at == Some(at) {
            loss_value = f64::NAN;
        }
        if !loss_value.is_finite() {
            return Ok((trained, EpochEnd::Diverged { step: at.1, value: loss_value }));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &trained.model);
        trained.model = trained.optim.step(learning_rate, trained.model, grads);
        acc.add_batch(loss_value, dice_value, n, &confusion);
        observer.on_step(&StepProgress { epoch: at.0, epochs: t.epochs, step: at.1, steps, loss: loss_value, learning_rate });
    }
    Ok((trained, EpochEnd::Trained(acc, learning_rate)))
}

/// Ends an epoch on disk and in the tracker, in the one order after which a crash at any point
/// leaves no checkpoint of an epoch the tracker never recorded:
///
/// 1. `last` (model, optimiser, and the state past this epoch, with `best` moved to it if the
///    objective improved);
/// 2. the epoch, with `last`, to the observer (the tracker);
/// 3. if the objective improved, `best` (the same model and state), then its record.
///
/// A crash after 1 or 2 leaves `best` at an older, recorded epoch while `last` already names
/// this one as the best: [`settle_best`] rewrites `best` from `last` on resume.
fn save_and_record(
    run: &TrialDir,
    objective: &Objective,
    summary: &EpochSummary,
    trained: &mut Trained,
    ctx: &TrialContext,
    observer: &mut dyn Observer,
) -> Result<(), TrainError> {
    let epoch = summary.epoch;
    let value = summary.metric(&objective.name).unwrap_or(f64::NAN);
    let state = &mut trained.state;
    let improved = objective.goal.improves(value, state.best.map(|b| b.value));
    if improved {
        state.best = Some(BestSoFar { epoch, value });
    }
    state.epochs_done = epoch;
    state.history.push(summary.clone());
    let model_bytes = model_bytes(&trained.model)?;
    let optim_bytes = trained.optim.into_bytes().map_err(|e| TrainError::Observer(format!("serialising the optimizer: {e}")))?;
    let path = run.save(CheckpointKind::Last, &trained.state, &model_bytes, Some(&optim_bytes)).map_err(TrainError::io(&run.root))?;
    ctx.faults.written(epoch, 1);
    let last = SavedCheckpoint { kind: CheckpointKind::Last, epoch, path, metric_value: value };
    observer.on_epoch(summary, std::slice::from_ref(&last)).map_err(TrainError::Observer)?;
    if improved {
        let best = save_best(run, &trained.state, &model_bytes)?;
        ctx.faults.written(epoch, 2);
        observer.on_checkpoint(&best).map_err(TrainError::Observer)?;
    }
    Ok(())
}

fn model_bytes(model: &UNet) -> Result<burn::tensor::Bytes, TrainError> {
    model.clone().into_record().into_bytes().map_err(|e| TrainError::Observer(format!("serialising the model: {e}")))
}

/// Writes `best` for the epoch `state` ends at, which must be its best epoch.
fn save_best(run: &TrialDir, state: &TrainState, model_bytes: &[u8]) -> Result<SavedCheckpoint, TrainError> {
    let best = state.best.expect("the best epoch is known when best is saved");
    debug_assert_eq!(best.epoch, state.epochs_done);
    let path = run.save(CheckpointKind::Best, state, model_bytes, None).map_err(TrainError::io(&run.root))?;
    Ok(SavedCheckpoint { kind: CheckpointKind::Best, epoch: best.epoch, path, metric_value: best.value })
}

/// On resume, after the history is recorded: makes `best.ckpt` hold the best epoch that `last`
/// names, and records it. A crash between writing `last` and `best` leaves `best` behind; the
/// best epoch is then `last`'s own, and `last` holds its model. A `best` that holds another epoch
/// and cannot be rebuilt (written by an older version in the other order) is not recorded.
fn settle_best(run: &TrialDir, trained: &mut Trained, observer: &mut dyn Observer) -> Result<(), TrainError> {
    let Some(best) = trained.state.best else { return Ok(()) };
    let on_disk = run.read_state(CheckpointKind::Best)?.map(|s| s.epochs_done);
    let saved = if on_disk == Some(best.epoch) {
        SavedCheckpoint { kind: CheckpointKind::Best, epoch: best.epoch, path: run.checkpoint_path(CheckpointKind::Best), metric_value: best.value }
    } else if best.epoch == trained.state.epochs_done {
        save_best(run, &trained.state, &model_bytes(&trained.model)?)?
    } else {
        return Ok(());
    };
    observer.on_checkpoint(&saved).map_err(TrainError::Observer)
}

/// The `last` checkpoint of a resumed run, as the observer should know it.
fn last_checkpoint(run: &TrialDir, objective: &Objective, state: &TrainState) -> Vec<SavedCheckpoint> {
    if state.epochs_done == 0 {
        return Vec::new();
    }
    let value = state.history.last().and_then(|h| h.metric(&objective.name)).unwrap_or(f64::NAN);
    vec![SavedCheckpoint {
        kind: CheckpointKind::Last,
        epoch: state.epochs_done,
        path: run.checkpoint_path(CheckpointKind::Last),
        metric_value: value,
    }]
}
