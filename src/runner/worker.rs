//! A worker: claims trials from the tracker until none is left, trains each one, heartbeats while
//! it does, and reports what happens as [`Event`]s (JSON lines for a supervising `sweep run`,
//! readable lines for a person or a SLURM log).
//!
//! Each trial runs inside `catch_unwind`, so a panic fails that trial and the worker goes on with
//! the next. When nothing is left to claim but other workers still hold runs, a worker waits
//! rather than exiting, so that a run given back by a worker that dies or is preempted is picked
//! up; it exits once every run of the sweep has ended. A worker that is killed outright leaves its run `running` with a heartbeat that goes
//! stale; the supervisor that started it requeues it at once, and on other machines the next
//! claim reclaims it once the heartbeat is older than `stale_after`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{ProgramConfig, Split};
use crate::runner::TrackerMark;
use crate::runner::study::Study;
use crate::runner::{program, protocol};
use crate::store::{
    self, CheckpointRow, Claim, EpochLog, Intervention, Lease, MetricValue, Reclaim, Store, StoreError, TrialFilter, TrialStatus, WorkerInfo,
};
use crate::study::pruner::Decision;
use crate::train::checkpoint::{EpochSummary, TrialDir};
use crate::train::device::{DeviceSpec, panic_message};
use crate::train::{self, Faults, Observer, Outcome, SavedCheckpoint, StepProgress, StopRequest, TrialContext};

/// What a worker reports, one JSON object per line on stdout in `--events json` mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Claimed {
        run: String,
        attempt: i64,
        params: BTreeMap<String, serde_json::Value>,
        resumed: bool,
        epochs: usize,
    },
    Step {
        run: String,
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    Epoch {
        run: String,
        epoch: usize,
        epochs: usize,
        train_loss: f64,
        val_loss: f64,
        val_dice: f64,
        val_iou: f64,
        seconds: f64,
    },
    Finished {
        run: String,
        status: TrialStatus,
        error: Option<String>,
        seconds: f64,
    },
    /// The worker gave its run back to the queue (a stop was requested).
    Released {
        run: String,
    },
    /// No trial left to claim (or the requested number done): the worker exits.
    Idle {
        trials: usize,
    },
}

/// How events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// One JSON object per line (for `sweep run`, which supervises its workers).
    Json,
    /// Readable lines (for a terminal or a SLURM log).
    Human,
}

/// Everything a worker needs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The tracker: a SQLite path or a postgres:// URL.
    pub store: String,
    /// Only claim this sweep's trials.
    pub sweep: Option<String>,
    pub runs_dir: PathBuf,
    pub device: DeviceSpec,
    pub max_trials: Option<usize>,
    /// When a `running` run whose worker died is taken over, and when it fails instead.
    pub reclaim: Reclaim,
    pub heartbeat_every: f64,
    pub events: EventFormat,
    pub faults: Faults,
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub trials: usize,
    pub failed: usize,
    pub stopped: bool,
}

struct Events {
    format: EventFormat,
}

impl Events {
    fn emit(&self, event: &Event) {
        let line = match self.format {
            EventFormat::Json => serde_json::to_string(event).expect("events serialise"),
            EventFormat::Human => human(event),
        };
        if line.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        // A supervisor that went away is not a reason to stop training: ignore write errors.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn human(event: &Event) -> String {
    use crate::report::fmt_num;
    match event {
        Event::Claimed { run, attempt, params, resumed, .. } => {
            let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", crate::report::fmt_param(v))).collect();
            format!("[{run}] {} (attempt {attempt}) {}", if *resumed { "resumed" } else { "started" }, p.join(" "))
        }
        Event::Step { .. } => String::new(),
        Event::Epoch { run, epoch, epochs, train_loss, val_loss, val_dice, val_iou, seconds } => format!(
            "[{run}] epoch {epoch}/{epochs}  train loss {}  val loss {}  dice {}  iou {}  ({})",
            fmt_num(*train_loss),
            fmt_num(*val_loss),
            fmt_num(*val_dice),
            fmt_num(*val_iou),
            crate::util::format_duration(*seconds)
        ),
        Event::Finished { run, status, error, seconds } => match error {
            Some(e) => format!("[{run}] {} after {}: {e}", status.as_str(), crate::util::format_duration(*seconds)),
            None => format!("[{run}] {} in {}", status.as_str(), crate::util::format_duration(*seconds)),
        },
        Event::Released { run } => format!("[{run}] stopped; it resumes from its last checkpoint next time"),
        Event::Idle { trials } => format!("worker done: {trials} trial(s)"),
    }
}

/// Claims and trains trials until none is left, `max_trials` are done, or a stop is requested.
pub fn run(options: &WorkerOptions) -> crate::Result<WorkerSummary> {
    crate::runner::signals::install();
    let mut store = store::open(&options.store, false)?;
    let device = options.device.open().map_err(crate::train::TrainError::from)?;
    let events = Events { format: options.events };
    let worker = WorkerInfo::this_process();
    let mark = TrackerMark::of(store.as_ref())?;
    if let Some(sweep) = &options.sweep {
        // A misspelt sweep is an error (exit 2, with the closest name), not a worker that finds
        // nothing to do and succeeds: under SLURM that would be jobs that train nothing.
        store::find_sweep(store.as_ref(), sweep)?;
        mark.check_sweep_dir(&options.runs_dir, sweep)?;
    }
    // The sweep's sampler and pruner, read back from the tracker (a worker of any sweep only
    // trains what is queued).
    let study = match &options.sweep {
        Some(sweep) => Study::load(store.as_ref(), sweep)?,
        None => None,
    };
    let mut summary = WorkerSummary::default();
    loop {
        if options.max_trials.is_some_and(|m| summary.trials >= m) || crate::runner::signals::stop_request() != StopRequest::Continue {
            break;
        }
        let Some(claim) = store.claim(options.sweep.as_deref(), &worker, &options.reclaim)? else {
            // Nothing queued: a lazily sampled sweep asks its sampler for the next trial.
            if let Some(study) = study.as_ref().filter(|s| s.spec().is_lazy())
                && study.ask(store.as_mut())?.is_some()
            {
                continue;
            }
            // Nothing to claim. While other workers still hold runs, wait: one of them may die or
            // be preempted, and its run come back (released, or stale after `stale_after`).
            let others = store.trials(&TrialFilter { sweep: options.sweep.clone(), status: Some(TrialStatus::Running) })?;
            if others.is_empty() {
                break;
            }
            let wait = Instant::now();
            while wait.elapsed() < Duration::from_secs_f64(options.heartbeat_every.clamp(0.2, 2.0)) {
                if crate::runner::signals::stop_request() != StopRequest::Continue {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        };
        summary.trials += 1;
        let study = study.as_ref().filter(|s| s.spec().name == claim.sweep);
        let status = run_trial(options, store.as_mut(), &claim, &mark, &device, &events, study)?;
        match status {
            None => {
                summary.stopped = true;
                break;
            }
            Some(TrialStatus::Failed | TrialStatus::Diverged) => summary.failed += 1,
            Some(_) => {}
        }
    }
    events.emit(&Event::Idle { trials: summary.trials });
    Ok(summary)
}

/// Trains one claimed trial. Returns its final status, or None if it was given back (stopped).
fn run_trial(
    options: &WorkerOptions,
    store: &mut dyn Store,
    claim: &Claim,
    mark: &TrackerMark,
    device: &burn::tensor::Device,
    events: &Events,
    study: Option<&Study>,
) -> crate::Result<Option<TrialStatus>> {
    let started = Instant::now();
    let run = claim.lease.trial.clone();
    // What this process writes to standard error from here on (its log under `sweep run`) is
    // this trial's, up to the next marker: the dashboard's trial page shows it.
    crate::util::write_ignoring_errors(true, format_args!("{}\n", crate::report::logs::trial_marker(&run, claim.lease.attempt)));
    let run_dir = TrialDir::of(&options.runs_dir, &claim.sweep, &run);
    if let Err(e) = mark.claim(&run_dir) {
        // Another tracker's trial of the same name: not this trial's fault. Give it back.
        let _ = store.release(&claim.lease);
        return Err(e);
    }
    events.emit(&Event::Claimed {
        run: run.clone(),
        attempt: claim.lease.attempt,
        params: claim.params.clone(),
        resumed: claim.resumed,
        epochs: claim.config.train.epochs,
    });
    if claim.config.program.is_none() {
        // What the built-in network costs is known from its settings: recorded before training,
        // so that a trial that fails or is pruned still says it.
        let [height, width] = claim.config.data.image_size;
        let cost = claim.config.model.cost(height, width);
        let known = [("params", cost.params as f64), ("gflops", cost.flops / 1e9)];
        if let Err(e) = store.log_epoch(&claim.lease, &cost_log(0, &known)) {
            let _ = store.release(&claim.lease);
            return Err(e.into());
        }
        // A bound on what is known now is checked now: an infeasible model costs no epoch.
        let constraints = study.map(|s| s.spec().constraints.as_slice()).unwrap_or_default();
        let broken = constraints
            .iter()
            .filter(|c| c.before_training())
            .find_map(|c| known.iter().find(|(name, _)| *name == c.metric).and_then(|(_, value)| c.broken(*value)));
        if let Some(why) = broken {
            let error = format!("infeasible before training: {why} ([[constraints]]); no epoch was trained");
            store.finish(&claim.lease, TrialStatus::Infeasible, Some(&error))?;
            events.emit(&Event::Finished { run, status: TrialStatus::Infeasible, error: Some(error), seconds: started.elapsed().as_secs_f64() });
            return Ok(Some(TrialStatus::Infeasible));
        }
    }
    let lease_lost = Arc::new(AtomicBool::new(false));
    let asked = Asked::default();
    let heartbeat = Heartbeat::start(options, claim.lease.clone(), lease_lost.clone(), asked.clone());
    let ctx = TrialContext { trial_dir: run_dir, runs_root: &options.runs_dir, device: device.clone(), faults: options.faults.clone() };
    let mut observer = TrialObserver {
        store,
        lease: claim.lease.clone(),
        events,
        lease_lost: lease_lost.clone(),
        last_step: None,
        epochs: claim.config.train.epochs,
        study,
        pruned: None,
        asked: asked.clone(),
        store_failure: None,
        objective: study.map(|s| s.spec().metric.name.clone()).unwrap_or_else(|| claim.config.metric.name.clone()),
        diverged: None,
        epoch_started: Instant::now(),
    };
    let result = match &claim.config.program {
        Some(program) => Trained::Program(run_program(claim, program, &ctx.trial_dir, &mut observer)),
        None => Trained::BuiltIn(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train::train(&claim.config, &ctx, &mut observer)))),
    };
    heartbeat.stop();
    let store = observer.store;
    let pruned = observer.pruned;
    let diverged = observer.diverged;
    if let Some(failure) = observer.store_failure {
        // Not the trial's fault: give it back (its checkpoint is on disk) if the tracker still
        // takes that write, and stop this worker with the tracker's error. If even that write
        // fails, the trial stays `running` under this pid, which the next claim on this host
        // takes over at once.
        if store.release(&claim.lease).is_ok() {
            events.emit(&Event::Released { run });
        }
        return Err(failure.into());
    }
    let stopped = || match (&pruned, asked.get()) {
        (Some(reason), _) => (Some(TrialStatus::Pruned), Some(reason.clone())),
        // A person stopped or pruned it (the heartbeat read the request): it ends as asked.
        (None, Some(intervention)) => (Some(intervention.ends_as()), Some(intervention.reason(&run))),
        // A signal: given back.
        (None, None) => (None, None),
    };
    let trained_cost = match &result {
        Trained::BuiltIn(Ok(Ok(Outcome::Completed { epochs, cost, .. }))) => Some((*epochs, *cost)),
        _ => None,
    };
    let (status, error) = match result {
        Trained::Program(Ok(program::Ended::Exited)) => match unreported(&*store, &run, &observer.objective) {
            Ok(None) => (Some(TrialStatus::Completed), None),
            Ok(Some(why)) => (Some(TrialStatus::Failed), Some(why)),
            Err(e) => return Err(e),
        },
        Trained::Program(_) if diverged.is_some() => (Some(TrialStatus::Diverged), diverged),
        Trained::Program(Ok(program::Ended::Stopped)) => stopped(),
        Trained::Program(Ok(program::Ended::Failed(why))) => (Some(TrialStatus::Failed), Some(why)),
        Trained::Program(Err(e)) => return Err(e),
        Trained::BuiltIn(result) => match result {
            Ok(Ok(Outcome::Completed { .. })) => (Some(TrialStatus::Completed), None),
            Ok(Ok(Outcome::Diverged { epoch, step, value })) => (
                Some(TrialStatus::Diverged),
                Some(format!("the loss became {} at epoch {epoch}, step {step}; lower train.learning_rate", crate::report::fmt_num(value))),
            ),
            Ok(Ok(Outcome::Stopped { .. })) => stopped(),
            Ok(Err(e)) => (Some(TrialStatus::Failed), Some(e.to_string())),
            Err(panic) => (Some(TrialStatus::Failed), Some(format!("panicked: {}", panic_message(&*panic)))),
        },
    };
    if lease_lost.load(Ordering::SeqCst) {
        // Another worker holds the run now: it is theirs to finish.
        crate::errln!("warning: {run}: lease lost to another worker; leaving the trial to it");
        return Ok(status);
    }
    // What only training tells of its cost, at its last epoch (an extended trial's grows). A
    // program's model is its own: only its epochs' time is known.
    let costs = match (&claim.config.program, status) {
        (None, _) => {
            trained_cost.map(|(epochs, cost)| cost_log(epochs as i64, &[("train_seconds", cost.train_seconds), ("infer_ms", cost.infer_ms)]))
        }
        (Some(_), Some(TrialStatus::Completed)) => program_seconds(&*store, &run)?.map(|(epoch, total)| cost_log(epoch, &[("train_seconds", total)])),
        (Some(_), _) => None,
    };
    let constraints = study.map(|s| s.spec().constraints.as_slice()).unwrap_or_default();
    let (mut status, mut error) = (status, error);
    let recorded = match status {
        Some(s) => costs.map_or(Ok(()), |costs| store.log_epoch(&claim.lease, &costs)).and_then(|()| {
            // A completed trial that breaks a bound (as recorded: a cost, or a metric's last
            // value) is infeasible: it keeps its epochs and checkpoints, and is never best.
            if s == TrialStatus::Completed
                && !constraints.is_empty()
                && let Some(why) = broken_constraint(&store.trial(&run)?, constraints)
            {
                status = Some(TrialStatus::Infeasible);
                error = Some(format!("infeasible: {why} ([[constraints]])"));
            }
            store.finish(&claim.lease, status.unwrap_or(s), error.as_deref())
        }),
        None => store.release(&claim.lease),
    };
    match recorded {
        Ok(()) => {}
        Err(StoreError::LeaseLost { .. }) => crate::errln!("warning: {run}: lease lost to another worker; leaving the trial to it"),
        Err(e) => return Err(e.into()),
    }
    match status {
        Some(s) => events.emit(&Event::Finished { run, status: s, error, seconds: started.elapsed().as_secs_f64() }),
        None => events.emit(&Event::Released { run }),
    }
    Ok(status)
}

/// The first of `constraints` that `trial` breaks, as recorded (a cost's value, a metric's value
/// at its last epoch; a bounded metric it never recorded breaks it), and why.
fn broken_constraint(trial: &crate::store::TrialRow, constraints: &[crate::config::Constraint]) -> Option<String> {
    constraints.iter().find_map(|c| match trial.metrics.get(&c.metric) {
        Some(summary) => c.broken(summary.last),
        None => Some(format!("{} was never recorded, and [[constraints]] bounds it", c.metric)),
    })
}

/// How a trial was trained: by the built-in trainer (which may panic), or by the user's program.
enum Trained {
    BuiltIn(std::thread::Result<Result<Outcome, crate::train::TrainError>>),
    Program(crate::Result<program::Ended>),
}

/// Runs a trial's program: from the last epoch the tracker holds (judged again first, as a
/// resumed built-in trial's is), its config written into the trial directory.
fn run_program(claim: &Claim, program: &ProgramConfig, trial_dir: &TrialDir, observer: &mut TrialObserver) -> crate::Result<program::Ended> {
    let run = &claim.lease.trial;
    let resume_epoch = observer.store.metrics(run)?.iter().map(|m| m.epoch).max().unwrap_or(0).max(0) as usize;
    if let Err(e) = trial_dir.write_config(&claim.config) {
        return Ok(program::Ended::Failed(format!("cannot write {}: {e}", trial_dir.config_path().display())));
    }
    if resume_epoch > 0 {
        if let Err(e) = observer.judge(resume_epoch) {
            crate::errln!("warning: {run}: cannot judge epoch {resume_epoch} again: {e}");
        }
        if observer.pruned.is_some() {
            return Ok(program::Ended::Stopped);
        }
    }
    let run = program::Run { trial: run, config: &claim.config, program, trial_dir: &trial_dir.root, resume_epoch };
    Ok(run.run(observer))
}

/// Why a program that exited 0 did not complete its trial: it never reported the sweep's
/// objective. None when it did.
fn unreported(store: &dyn Store, run: &str, objective: &str) -> crate::Result<Option<String>> {
    let metrics = store.metrics(run)?;
    if metrics.iter().any(|m| m.key() == objective) {
        return Ok(None);
    }
    // What the program reported (the worker times its epochs itself).
    let names: std::collections::BTreeSet<String> = metrics.iter().map(|m| m.key()).filter(|k| k != "train_seconds").collect();
    Ok(Some(if names.is_empty() {
        format!(
            "the program exited without reporting an epoch: print one JSON object per epoch on a line of its own, e.g. {{\"epoch\": 1, \"{objective}\": 0.9}} (README: Your own training program)"
        )
    } else {
        format!(
            "the program exited without reporting {objective}, the sweep's [metric]; it reported {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )
    }))
}

impl program::Reports for TrialObserver<'_> {
    fn epoch(&mut self, report: &protocol::Report, judge: bool) -> Result<(), String> {
        let mut metrics = report.metrics.clone();
        // The epoch's duration, as the built-in trainer records it (unless the program says).
        if report.value("train_seconds").is_none() {
            metrics.push(MetricValue { split: Split::Train, name: "seconds".into(), value: self.epoch_started.elapsed().as_secs_f64() });
        }
        let log = EpochLog { epoch: report.epoch as i64, wall: crate::util::now_unix(), metrics, checkpoints: Vec::new() };
        self.record(&log)?;
        let value = |key: &str| report.value(key).unwrap_or(f64::NAN);
        self.events.emit(&Event::Epoch {
            run: self.lease.trial.clone(),
            epoch: report.epoch,
            epochs: self.epochs,
            train_loss: value("train_loss"),
            val_loss: value("val_loss"),
            val_dice: value("val_dice"),
            val_iou: report.value("val_iou").or(report.value(&self.objective)).unwrap_or(f64::NAN),
            seconds: self.epoch_started.elapsed().as_secs_f64(),
        });
        // A loss or the objective that is no number: the trial diverged.
        let bad = report.metrics.iter().find(|m| {
            let key = format!("{}_{}", m.split.as_str(), m.name);
            !m.value.is_finite() && (m.name.ends_with("loss") || key == self.objective)
        });
        if let Some(m) = bad {
            self.diverged = Some(format!(
                "{}_{} became {} at epoch {} (reported by the program)",
                m.split.as_str(),
                m.name,
                crate::report::fmt_num(m.value),
                report.epoch
            ));
            return Ok(());
        }
        let judged = if judge { self.judge(report.epoch) } else { Ok(()) };
        // The next epoch's time starts now: the pruner's reads are not the program's.
        self.epoch_started = Instant::now();
        judged
    }

    fn stop_request(&self) -> StopRequest {
        if self.diverged.is_some() {
            return StopRequest::Now;
        }
        Observer::stop_request(self)
    }
}

/// Records epochs in the tracker and turns training steps into events.
struct TrialObserver<'a> {
    store: &'a mut dyn Store,
    lease: Lease,
    events: &'a Events,
    lease_lost: Arc<AtomicBool>,
    last_step: Option<Instant>,
    epochs: usize,
    /// The sweep's study, when its pruner judges this trial after each epoch.
    study: Option<&'a Study>,
    /// Why the pruner stopped this trial.
    pruned: Option<String>,
    /// What a person asked of the trial, as the heartbeat read it.
    asked: Asked,
    /// The tracker could not record an epoch (a full disk, a server gone for good): the trial is
    /// not at fault, and is given back rather than failed.
    store_failure: Option<StoreError>,
    /// The sweep's objective (`val_iou`).
    objective: String,
    /// A program reported a loss or the objective that is no number: why.
    diverged: Option<String>,
    /// When the epoch being trained started (a program's epochs are timed between reports).
    epoch_started: Instant,
}

impl TrialObserver<'_> {
    /// Asks the sweep's pruner about the recorded `epoch` (not the last: a trial that reached its
    /// target is complete), keeping the reason when it prunes.
    fn judge(&mut self, epoch: usize) -> Result<(), String> {
        if let Some(study) = self.study
            && epoch < self.epochs
            && let Decision::Prune { reason } = study.judge(&*self.store, &self.lease.trial, epoch).map_err(|e| e.to_string())?
        {
            self.pruned = Some(reason);
        }
        Ok(())
    }

    fn log(&mut self, summary: &EpochSummary, checkpoints: &[SavedCheckpoint]) -> Result<(), String> {
        self.record(&epoch_log(summary, checkpoints))
    }

    /// Writes to the tracker under the trial's lease. A lost lease stops training; any other
    /// failure of the tracker (a full disk) is kept aside: it is not the trial's fault.
    fn record(&mut self, log: &EpochLog) -> Result<(), String> {
        match self.store.log_epoch(&self.lease, log) {
            Ok(()) => Ok(()),
            Err(e @ StoreError::LeaseLost { .. }) => {
                self.lease_lost.store(true, Ordering::SeqCst);
                Err(e.to_string())
            }
            Err(e) => {
                let message = e.to_string();
                self.store_failure = Some(e);
                Err(message)
            }
        }
    }
}

impl Observer for TrialObserver<'_> {
    fn on_step(&mut self, p: &StepProgress) {
        // Progress displays need a few updates a second, not one per step.
        let due = self.last_step.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) || p.step == p.steps;
        if due && self.events.format == EventFormat::Json {
            self.last_step = Some(Instant::now());
            self.events.emit(&Event::Step {
                run: self.lease.trial.clone(),
                epoch: p.epoch,
                epochs: p.epochs,
                step: p.step,
                steps: p.steps,
                loss: p.loss,
            });
        }
    }

    fn on_epoch(&mut self, summary: &EpochSummary, checkpoints: &[SavedCheckpoint]) -> Result<(), String> {
        self.log(summary, checkpoints)?;
        self.events.emit(&Event::Epoch {
            run: self.lease.trial.clone(),
            epoch: summary.epoch,
            epochs: self.epochs,
            train_loss: summary.train.loss,
            val_loss: summary.val.loss,
            val_dice: summary.val.dice,
            val_iou: summary.val.iou,
            seconds: summary.seconds,
        });
        self.judge(summary.epoch)
    }

    fn on_checkpoint(&mut self, saved: &SavedCheckpoint) -> Result<(), String> {
        // The epoch's metrics are recorded already: this adds the checkpoint row alone.
        self.record(&EpochLog {
            epoch: saved.epoch as i64,
            wall: crate::util::now_unix(),
            metrics: Vec::new(),
            checkpoints: vec![checkpoint_row(saved)],
        })
    }

    fn replay(&mut self, history: &[EpochSummary], checkpoints: &[SavedCheckpoint]) -> Result<(), String> {
        for (i, summary) in history.iter().enumerate() {
            let rows: Vec<SavedCheckpoint> = if i + 1 == history.len() { checkpoints.to_vec() } else { Vec::new() };
            self.log(summary, &rows)?;
        }
        // A worker that died between recording an epoch and saving the pruner's decision on it
        // (the window holds the `best` checkpoint's write) left that decision unsaved: judge the
        // last epoch again, as `on_epoch` would have, so the trial stops where it was pruned.
        if let Some(last) = history.last() {
            self.judge(last.epoch)?;
        }
        Ok(())
    }

    fn stop_request(&self) -> StopRequest {
        if self.lease_lost.load(Ordering::SeqCst) {
            return StopRequest::Now;
        }
        if self.pruned.is_some() {
            // The epoch is recorded and checkpointed: stop there.
            return StopRequest::AfterEpoch;
        }
        if self.asked.get().is_some() {
            // Stopped or pruned by hand: at once, the last checkpoint as it is (a resumed trial
            // continues from it).
            return StopRequest::Now;
        }
        crate::runner::signals::stop_request()
    }
}

/// The tracker rows of one epoch: every split's metrics, the learning rate and duration, and the
/// checkpoints written for it.
pub fn epoch_log(summary: &EpochSummary, checkpoints: &[SavedCheckpoint]) -> EpochLog {
    let mut metrics = Vec::new();
    for (split, values) in [(Split::Train, &summary.train), (Split::Val, &summary.val)] {
        for (name, value) in values.named() {
            metrics.push(MetricValue { split, name: name.to_string(), value });
        }
    }
    for (name, value) in summary.val_full.iter().flat_map(|f| f.named()) {
        metrics.push(MetricValue { split: Split::Val, name: name.to_string(), value });
    }
    metrics.push(MetricValue { split: Split::Train, name: "lr".into(), value: summary.learning_rate });
    metrics.push(MetricValue { split: Split::Train, name: "seconds".into(), value: summary.seconds });
    EpochLog { epoch: summary.epoch as i64, wall: summary.wall, metrics, checkpoints: checkpoints.iter().map(checkpoint_row).collect() }
}

/// A program trial's `train_seconds`: its recorded epochs' durations summed (those of earlier
/// runs of a resumed trial included), with its last epoch; None without one.
fn program_seconds(store: &dyn Store, run: &str) -> Result<Option<(i64, f64)>, StoreError> {
    let seconds: BTreeMap<i64, f64> =
        store.metrics(run)?.into_iter().filter(|m| m.split == Split::Train.as_str() && m.name == "seconds").map(|m| (m.epoch, m.value)).collect();
    let last = seconds.keys().next_back().copied();
    Ok(last.map(|epoch| (epoch, seconds.values().filter(|s| s.is_finite()).sum())))
}

/// The tracker rows of a trial's cost metrics (split `cost`), recorded as of `epoch`.
fn cost_log(epoch: i64, costs: &[(&str, f64)]) -> EpochLog {
    let metrics = costs.iter().map(|&(name, value)| MetricValue { split: Split::Cost, name: name.to_string(), value }).collect();
    EpochLog { epoch, wall: crate::util::now_unix(), metrics, checkpoints: Vec::new() }
}

fn checkpoint_row(c: &SavedCheckpoint) -> CheckpointRow {
    CheckpointRow { kind: c.kind.as_str().to_string(), epoch: c.epoch as i64, path: c.path.display().to_string(), metric_value: c.metric_value }
}

/// What a person asked of the trial being trained ([`Store::intervene`]), shared between the
/// heartbeat thread that reads it and the observer that stops training.
#[derive(Clone, Default)]
struct Asked(Arc<std::sync::Mutex<Option<Intervention>>>);

impl Asked {
    fn get(&self) -> Option<Intervention> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, intervention: Intervention) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(intervention);
    }
}

/// A thread that refreshes the run's heartbeat on its own connection, and reads what a person
/// asked of the trial meanwhile. The connection is opened when the first heartbeat is due (a trial
/// shorter than that needs none), and the thread ends as soon as it is told.
struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(options: &WorkerOptions, lease: Lease, lease_lost: Arc<AtomicBool>, asked: Asked) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let location = options.store.clone();
        let every = Duration::from_secs_f64(options.heartbeat_every.max(0.05));
        let handle = std::thread::Builder::new()
            .name("sweep-heartbeat".into())
            .spawn(move || {
                let mut store: Option<Box<dyn Store>> = None;
                // Told to stop (or the worker gone): end. Otherwise a heartbeat is due.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if store.is_none() {
                        match store::open(&location, false) {
                            Ok(s) => store = Some(s),
                            Err(e) => {
                                crate::errln!("warning: heartbeat: cannot open the tracker: {e}");
                                continue;
                            }
                        }
                    }
                    let Some(store) = store.as_mut() else { continue };
                    match store.heartbeat(&lease) {
                        Ok(None) => {}
                        Ok(Some(intervention)) => asked.set(intervention),
                        Err(StoreError::LeaseLost { .. }) => {
                            lease_lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // A transient failure (a locked or unreachable store): try again later.
                        Err(e) => crate::errln!("warning: heartbeat for {}: {e}", lease.trial),
                    }
                }
            })
            .expect("spawn heartbeat thread");
        Self { stop: Some(stop), handle: Some(handle) }
    }

    fn stop(mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
