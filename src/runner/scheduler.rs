//! `sweep run`: register a sweep and its trials in the tracker, then run them in parallel worker
//! processes on this machine and supervise them.
//!
//! Each worker is a `sweep worker` child process in its own process group, so a crash (a panic
//! that escapes, an abort, a segfault, the OOM killer) takes down one worker and never the
//! others or the supervisor. The supervisor reads the workers' JSON events for the progress
//! display, requeues the run of a worker that died (it resumes from its last checkpoint) and
//! starts a replacement, forwards Ctrl-C to the workers (once: finish the epoch and stop; twice:
//! stop now), and prints the leaderboard at the end.
//!
//! Trials are identified by their config hash, so running the same file again adds nothing twice:
//! completed trials are skipped and interrupted ones resume. A file that only raises
//! `train.epochs` continues its trials to the new count ([`store::plan_registration`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::runner::progress::Progress;
use crate::runner::worker::Event;
use crate::store::{self, KnownTrial, Lease, NewTrial, Registering, SweepRegistration, TrialFilter, TrialRow, TrialStatus};
use crate::study::spec::{SweepSpec, Trial};
use crate::train::device::DeviceSpec;

/// How to run a sweep locally: the tracker, the runs directory, and the workers.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub store: String,
    pub runs_dir: PathBuf,
    pub local: LocalOptions,
}

/// How to run the workers on this machine.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub workers: usize,
    pub device: DeviceSpec,
    /// GPU indices: one worker per device (overrides `workers`).
    pub devices: Option<Vec<usize>>,
    /// CPU threads per worker (default: the cores divided among the workers).
    pub threads: Option<usize>,
    /// When a trial counts as abandoned, and how many deaths in a row fail it.
    pub leases: super::Leases,
    /// Plain log lines even on a terminal.
    pub plain: bool,
}

/// What registering a sweep did.
#[derive(Debug, Clone)]
pub struct Registration {
    pub registration: SweepRegistration,
    pub added: Vec<String>,
    pub existing: usize,
    pub requeued: usize,
    /// Trials whose epoch target rose: they continue from their last checkpoint.
    pub extended: Vec<store::Extension>,
    /// Trials the file asks for with another epoch target, left as they are.
    pub kept: Vec<store::Kept>,
}

/// A worker that dies within this long of its start died quickly: it may not be able to start at
/// all, or its trial kills it at once.
pub const QUICK_DEATH: Duration = Duration::from_secs(2);

/// After this many quick deaths in one `sweep run`, the supervisor starts no more workers (the
/// crash rule fails a trial that kills its worker sooner, after `--max-attempts`; this bounds
/// workers that cannot even claim a trial).
pub const QUICK_DEATHS_ALLOWED: usize = 5;

/// How a local sweep ended.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The sweep's trials when it ended.
    pub trials: Vec<TrialRow>,
    pub interrupted: bool,
    pub elapsed: Duration,
    /// Messages of workers that could not start at all.
    pub worker_errors: Vec<String>,
    /// Worker processes started (none when every trial had already ended).
    pub workers_started: usize,
    /// Trials that were not final when the sweep started, by the tracker (0: nothing to run).
    pub pending: usize,
    /// Why the supervisor stopped starting workers before every trial ended, if it did.
    pub gave_up: Option<String>,
}

impl SweepOutcome {
    /// Runs of the sweep by status.
    pub fn counts(&self) -> BTreeMap<TrialStatus, usize> {
        let mut counts = BTreeMap::new();
        for r in &self.trials {
            *counts.entry(r.status).or_default() += 1;
        }
        counts
    }

    /// Whether any trial failed or diverged (the exit code is then 1).
    pub fn any_failed(&self) -> bool {
        self.trials.iter().any(|r| r.status.is_unsuccessful()) || !self.worker_errors.is_empty()
    }

    /// Whether there was nothing to do: the tracker held no trial left to run when this sweep
    /// started.
    pub fn nothing_ran(&self) -> bool {
        self.pending == 0
    }

    /// How to run the failed trials again, when there are any.
    pub fn retry_hint(&self) -> String {
        let failed = self.trials.iter().filter(|r| r.status == TrialStatus::Failed).count();
        if failed > 0 { format!(" ({failed} failed: --retry-failed runs them again)") } else { String::new() }
    }

    /// What kept trials from completing, one message each kind, for a sweep whose worker logs are
    /// in `log_dir`: trials that did not run to the end, and trials that failed or diverged.
    pub fn problems(&self, log_dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        let unfinished: Vec<&str> = self.trials.iter().filter(|r| !r.status.is_final()).map(|r| r.id.as_str()).collect();
        if !unfinished.is_empty() {
            let why = self.gave_up.clone().unwrap_or_else(|| "the workers stopped early".to_string());
            problems.push(format!(
                "{} trial(s) did not run to the end ({}): {why}; see {}",
                unfinished.len(),
                unfinished.join(", "),
                log_dir.display()
            ));
        }
        let failed: Vec<String> =
            self.trials.iter().filter(|r| r.status.is_unsuccessful()).map(|r| format!("{} ({})", r.id, r.status.as_str())).collect();
        if !failed.is_empty() {
            problems.push(format!("{} trial(s) did not complete: {}; see `sweep show RUN`", failed.len(), failed.join(", ")));
        }
        problems
    }
}

/// Registers the sweep and enqueues its trials (idempotent), once it is sure that the sweep's
/// directory under `runs_dir` holds no other tracker's trials.
pub fn register(spec: &SweepSpec, trials: &[Trial], store_location: &str, runs_dir: &Path, retry_failed: bool) -> crate::Result<Registration> {
    let mut store = store::open(store_location, true)?;
    crate::runner::TrackerMark::of(store.as_ref())?.check_sweep_dir(runs_dir, &spec.name)?;
    if !spec.warm_start.is_empty() {
        let known: Vec<String> = store.sweeps()?.into_iter().map(|s| s.name).collect();
        if let Some(missing) = spec.warm_start.iter().find(|w| !known.contains(w)) {
            return Err(crate::Error::Usage(format!(
                "{}: [bayes] warm_start names {missing:?}, which this tracker ({}) does not have; its sweeps: {}",
                spec.path.display(),
                store.location(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
        // Says what TPE will learn from, before any worker asks.
        crate::runner::study::Study::of(spec.clone()).warm_trials(store.as_ref())?;
    }
    let registration = store.register_sweep(&spec.name, &spec.text)?;
    // `[[enqueue]]` first, so that a new sweep numbers them first; each is added once.
    if !spec.enqueue.is_empty() {
        let study = crate::runner::study::Study::of(spec.clone());
        for (i, fixed) in spec.enqueue.iter().enumerate() {
            if let crate::runner::study::Enqueued::Exhausted | crate::runner::study::Enqueued::Refused(_) =
                study.enqueue(store.as_mut(), fixed, &format!("[[enqueue]] {}", i + 1))?
            {
                crate::errln!(
                    "warning: sweep {}: [[enqueue]] {} ({}) added no trial: no such configuration is left",
                    spec.name,
                    i + 1,
                    serde_json::json!(fixed)
                );
            }
        }
    }
    let report = if spec.is_lazy() {
        // A sampler adds the trials one at a time; the ones it has asked for take the file's
        // epoch target.
        let asked = asked_trials(spec, store.as_ref())?;
        store.extend(&spec.name, &asked)?
    } else {
        let new: Vec<NewTrial> = trials.iter().map(|t| NewTrial { config: t.config.clone(), params: t.params.clone() }).collect();
        store.enqueue(&spec.name, &new)?
    };
    let requeued = if retry_failed { store.requeue_failed(&spec.name)? } else { 0 };
    Ok(Registration { registration, added: report.added, existing: report.existing, requeued, extended: report.extended, kept: report.kept })
}

/// What [`register`] would do with `trials` (for a sampled sweep: the trials asked so far, under
/// the file as it is now), for the dry run: the sweep's trials as the tracker holds them, the
/// trials looked at, and how each would register. An empty tracker holds no trial.
pub fn plan(spec: &SweepSpec, trials: &[Trial], store: Option<&dyn store::Store>) -> crate::Result<(Vec<TrialRow>, Vec<NewTrial>, Vec<Registering>)> {
    let filter = TrialFilter { sweep: Some(spec.name.clone()), status: None };
    let known_rows = match store {
        Some(store) => store.trials(&filter)?,
        None => Vec::new(),
    };
    let looked_at = match store {
        Some(store) if spec.is_lazy() => asked_trials(spec, store)?,
        _ => trials.iter().map(|t| NewTrial { config: t.config.clone(), params: t.params.clone() }).collect(),
    };
    let mut known = Vec::new();
    for row in &known_rows {
        let config = store.expect("rows come from a store").trial_config(&row.id)?;
        known.push(KnownTrial { id: row.id.clone(), seq: row.seq, status: row.status, config_hash: row.config_hash.clone(), config });
    }
    let plan = store::plan_registration(&looked_at, &known);
    Ok((known_rows, looked_at, plan))
}

/// The points a lazily sampled sweep has asked for so far, each resolved under the file as it
/// is now (a point the file no longer allows is left out).
fn asked_trials(spec: &SweepSpec, store: &dyn store::Store) -> crate::Result<Vec<NewTrial>> {
    let rows = store.trials(&TrialFilter { sweep: Some(spec.name.clone()), status: None })?;
    Ok(rows.iter().filter_map(|r| spec.trial_of(&r.params).ok()).map(|t| NewTrial { config: t.config, params: t.params }).collect())
}

/// Makes sure every dataset the trials use exists (generating the synthetic one once, here,
/// rather than in every worker at the same time), can be split into training and validation,
/// and is readable: every image and mask opens and each mask has its image's size (checked from
/// the file headers).
pub fn prepare_data(trials: &[Trial], runs_dir: &Path) -> crate::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for t in trials {
        let key = serde_json::to_string(&t.config.data).unwrap_or_default();
        if !seen.insert(key) {
            continue;
        }
        let dir = crate::train::dataset_dir(&t.config, runs_dir)?;
        let files = crate::data::scan(&dir)?;
        let ids: Vec<String> = files.iter().map(|f| f.id.clone()).collect();
        crate::data::split_for(&ids, &t.config.data)?;
        if !t.config.data.is_synthetic() {
            crate::data::check_headers(&files)?;
        }
    }
    Ok(())
}

struct WorkerProcess {
    child: Box<dyn Running>,
    /// The run it holds, from its last Claimed event.
    lease: Option<Lease>,
    /// The trial it held last (for the quick-death message).
    last_trial: Option<String>,
    /// It reported that it ran out of trials (Idle): an exit code of 1 then only says that some
    /// of its trials failed or it was stopped, which the tracker records.
    done: bool,
    index: usize,
    started: Instant,
}

enum Message {
    Event(usize, Event),
    Closed(usize),
}

/// What the supervisor asks of a new worker.
struct Start<'a> {
    slot: usize,
    /// Workers started before this one in this `sweep run` (its log is `worker-{index + 1}.log`).
    index: usize,
    /// The GPU index of the slot, if any.
    device: Option<usize>,
    threads: usize,
    log: &'a Path,
}

/// How the supervisor starts workers and learns of stop requests: `sweep worker` processes and
/// the signal handler in [`run`], scripted workers in the unit tests.
trait Launcher {
    /// Starts a worker; its events, then one `Message::Closed(slot)`, go to `tx`.
    fn launch(&mut self, start: &Start, tx: &mpsc::Sender<Message>) -> crate::Result<Box<dyn Running>>;
    /// The Ctrl-Cs received so far, and whether SIGTERM was.
    fn stop_requests(&self) -> (usize, bool);
}

/// A started worker, as the supervisor handles it.
trait Running: Send {
    fn signal(&mut self, signal: libc::c_int);
    fn wait(&mut self) -> std::io::Result<ExitStatus>;
}

impl Running for Child {
    fn signal(&mut self, signal: libc::c_int) {
        // SAFETY: kill has no memory effects; the pid is our own child's.
        unsafe { libc::kill(self.id() as libc::pid_t, signal) };
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        Child::wait(self)
    }
}

/// The supervisor's timings and bounds.
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// [`QUICK_DEATH`].
    quick_death: Duration,
    /// [`QUICK_DEATHS_ALLOWED`].
    quick_deaths_allowed: usize,
    /// How often stop requests are looked at while no worker reports.
    poll: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self { quick_death: QUICK_DEATH, quick_deaths_allowed: QUICK_DEATHS_ALLOWED, poll: Duration::from_millis(100) }
    }
}

/// The log file of the worker started `index`-th (from 0) in a sweep's `log_dir`.
fn log_path(log_dir: &Path, index: usize) -> PathBuf {
    log_dir.join(format!("worker-{}.log", index + 1))
}

/// Runs the sweep's queued trials in worker processes until the queue is empty or a stop.
pub fn run(spec: &SweepSpec, options: &SweepOptions) -> crate::Result<SweepOutcome> {
    crate::runner::signals::install();
    supervise(spec, options, &mut ProcessLauncher { spec, options }, Rules::default())
}

/// [`run`] with the workers that `launcher` starts.
fn supervise(spec: &SweepSpec, options: &SweepOptions, launcher: &mut dyn Launcher, rules: Rules) -> crate::Result<SweepOutcome> {
    let store = store::open(&options.store, false)?;
    let runs = store.trials(&TrialFilter { sweep: Some(spec.name.clone()), status: None })?;
    // A lazily sampled sweep (TPE) has trials yet to be asked for, up to its run_cap.
    let to_ask = if spec.is_lazy() { spec.run_cap.unwrap_or(0).saturating_sub(runs.len()) } else { 0 };
    let pending = runs.iter().filter(|r| !r.status.is_final()).count() + to_ask;
    let slots: Vec<Option<usize>> = match &options.local.devices {
        Some(devices) => devices.iter().map(|&d| Some(d)).collect(),
        None => vec![None; options.local.workers.clamp(1, pending.max(1))],
    };
    let log_dir = options.runs_dir.join(&spec.name).join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| crate::Error::io(&log_dir, e))?;
    let (tx, rx) = mpsc::channel::<Message>();
    let mut supervisor = Supervisor {
        spec,
        options,
        launcher,
        rules,
        threads: options.local.threads.unwrap_or_else(|| (crate::util::available_cores() / slots.len()).max(1)),
        progress: Progress::new(&spec.name, slots.len(), runs.len() + to_ask, runs.len() + to_ask - pending, options.local.plain),
        slots,
        log_dir,
        tx,
        store,
        workers: HashMap::new(),
        worker_errors: Vec::new(),
        spawned: 0,
        forwarded: 0,
        interrupted: false,
        quick_deaths: Vec::new(),
        gave_up: None,
    };
    if pending > 0 {
        for slot in 0..supervisor.slots.len() {
            supervisor.spawn(slot)?;
        }
    }
    while !supervisor.workers.is_empty() {
        supervisor.forward_interrupts();
        match rx.recv_timeout(rules.poll) {
            Ok(Message::Event(slot, event)) => supervisor.on_event(slot, event),
            Ok(Message::Closed(slot)) => supervisor.on_exit(slot)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let elapsed = supervisor.progress.finish();
    let runs = supervisor.store.trials(&TrialFilter { sweep: Some(spec.name.clone()), status: None })?;
    Ok(SweepOutcome {
        trials: runs,
        interrupted: supervisor.interrupted,
        elapsed,
        worker_errors: supervisor.worker_errors,
        workers_started: supervisor.spawned,
        pending,
        gave_up: supervisor.gave_up,
    })
}

/// The supervisor of a local sweep: its worker processes, one per slot, and what it has seen.
struct Supervisor<'a> {
    spec: &'a SweepSpec,
    options: &'a SweepOptions,
    launcher: &'a mut dyn Launcher,
    rules: Rules,
    /// One entry per worker slot: the GPU index it uses, if any.
    slots: Vec<Option<usize>>,
    threads: usize,
    log_dir: PathBuf,
    tx: mpsc::Sender<Message>,
    store: Box<dyn store::Store>,
    progress: Progress,
    workers: HashMap<usize, WorkerProcess>,
    worker_errors: Vec<String>,
    /// Worker processes started so far (names their log files).
    spawned: usize,
    /// Ctrl-C / SIGTERM signals already forwarded to the workers.
    forwarded: usize,
    interrupted: bool,
    /// Workers that died within [`QUICK_DEATH`] of starting, each with the trial it held last.
    /// Respawns are bounded ([`QUICK_DEATHS_ALLOWED`]): a worker that cannot even start would
    /// otherwise loop forever.
    quick_deaths: Vec<Option<String>>,
    /// Why no more workers were started, once the quick deaths reached the bound.
    gave_up: Option<String>,
}

impl Supervisor<'_> {
    /// Starts a worker process in `slot`.
    fn spawn(&mut self, slot: usize) -> crate::Result<()> {
        let device = self.slots.get(slot).copied().flatten();
        let log = log_path(&self.log_dir, self.spawned);
        let start = Start { slot, index: self.spawned, device, threads: self.threads, log: &log };
        let child = self.launcher.launch(&start, &self.tx)?;
        let worker = WorkerProcess { child, lease: None, last_trial: None, done: false, index: self.spawned, started: Instant::now() };
        self.spawned += 1;
        self.workers.insert(slot, worker);
        Ok(())
    }

    /// Forwards each new Ctrl-C to every worker (they are in their own process groups).
    fn forward_interrupts(&mut self) {
        let (interrupts, terminated) = self.launcher.stop_requests();
        while self.forwarded < interrupts + usize::from(terminated) {
            self.forwarded += 1;
            self.interrupted = true;
            let signal = if terminated { libc::SIGTERM } else { libc::SIGINT };
            for w in self.workers.values_mut() {
                w.child.signal(signal);
            }
            self.progress.println(if self.forwarded == 1 {
                "stopping: the running trials finish their epoch and checkpoint (Ctrl-C again to stop now)"
            } else {
                "stopping now"
            });
        }
    }

    /// Whether trials are left for a replacement worker: queued ones, or (TPE) ones not yet
    /// asked for below the run_cap.
    fn more_to_run(&self) -> crate::Result<bool> {
        let trials = self.store.trials(&TrialFilter { sweep: Some(self.spec.name.clone()), status: None })?;
        let queued = trials.iter().any(|t| t.status == TrialStatus::Queued);
        Ok(queued || (self.spec.is_lazy() && trials.len() < self.spec.run_cap.unwrap_or(0)))
    }

    /// A worker reported: remember which trial it holds, and show it.
    fn on_event(&mut self, slot: usize, event: Event) {
        if let Some(w) = self.workers.get_mut(&slot) {
            match &event {
                Event::Claimed { run, attempt, .. } => {
                    w.lease = Some(Lease { trial: run.clone(), attempt: *attempt });
                    w.last_trial = Some(run.clone());
                }
                Event::Finished { .. } | Event::Released { .. } => w.lease = None,
                Event::Idle { .. } => w.done = true,
                _ => {}
            }
        }
        self.progress.event(slot, &event);
    }

    /// A worker's output closed: reap it; if it died holding a trial, record the crash (the
    /// trial is requeued, or failed after `max_attempts` crashes in a row); start a replacement
    /// while trials are queued and nobody asked to stop.
    fn on_exit(&mut self, slot: usize) -> crate::Result<()> {
        let Some(mut w) = self.workers.remove(&slot) else { return Ok(()) };
        let status = w.child.wait().map_err(|e| crate::Error::io("worker process", e))?;
        self.progress.worker_exited(slot);
        if (status.success() || w.done) && w.lease.is_none() {
            return Ok(());
        }
        let log = log_path(&self.log_dir, w.index);
        let cause = describe_exit(status);
        // What the worker said before it died, if anything: the reason a user reads.
        let said = log_tail(&log).map(|line| format!(": {line} ({})", log.display())).unwrap_or_default();
        if let Some(lease) = w.lease.take() {
            let message = format!("worker process {cause}{said}");
            match self.store.record_crash(&lease, &message, self.options.local.leases.max_attempts) {
                Ok(TrialStatus::Failed) => self.progress.failed_by_supervisor(&format!("[{}] failed: {message}", lease.trial)),
                Ok(_) => self.progress.requeued(&format!("[{}] worker {cause}; requeued to resume from its last checkpoint", lease.trial)),
                Err(e) => self.progress.println(&format!("[{}] worker {cause}; {e}", lease.trial)),
            }
        } else if said.is_empty() {
            self.worker_errors.push(format!("worker {} {cause} without a message (its log {} says nothing)", w.index + 1, log.display()));
        } else {
            self.worker_errors.push(format!("worker {} {cause}{said}", w.index + 1));
        }
        if w.started.elapsed() < self.rules.quick_death {
            self.quick_deaths.push(w.last_trial.clone());
        }
        let (interrupts, terminated) = self.launcher.stop_requests();
        let stopping = self.interrupted || interrupts > 0 || terminated;
        if stopping || !self.more_to_run()? {
            return Ok(());
        }
        if self.quick_deaths.len() >= self.rules.quick_deaths_allowed {
            if self.gave_up.is_none() {
                self.gave_up = Some(quick_deaths_message(&self.quick_deaths, self.rules.quick_death));
                self.progress.println(&format!("stopping: {}", self.gave_up.as_deref().unwrap_or_default()));
            }
            return Ok(());
        }
        self.spawn(slot)
    }
}

/// Why the supervisor stopped starting workers: how many died quickly (within `quick_death` of
/// starting), and the trial they held in most of those deaths (the one that keeps killing its
/// worker), if one was; a trial held in fewer is no culprit (a worker that ended a trial normally
/// and then died names it last).
fn quick_deaths_message(deaths: &[Option<String>], quick_death: Duration) -> String {
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for trial in deaths.iter().flatten() {
        *held.entry(trial.as_str()).or_default() += 1;
    }
    let culprit = held.iter().max_by_key(|&(trial, n)| (*n, std::cmp::Reverse(*trial))).filter(|&(_, n)| 2 * n > deaths.len());
    let base = format!("the supervisor started no more workers after {} of them died within {}s of starting", deaths.len(), quick_death.as_secs());
    match culprit {
        Some((trial, n)) => format!("{base}; {n} of them held trial {trial}, which keeps killing its worker (`sweep show {trial}`)"),
        None if held.is_empty() => format!("{base} before claiming a trial"),
        None => format!("{base}, with no trial in common (the workers die whatever they train: see the worker logs)"),
    }
}

/// Starts `sweep worker` processes of this executable, and reads stop requests from
/// [`crate::runner::signals`].
struct ProcessLauncher<'a> {
    spec: &'a SweepSpec,
    options: &'a SweepOptions,
}

impl Launcher for ProcessLauncher<'_> {
    fn stop_requests(&self) -> (usize, bool) {
        (crate::runner::signals::interrupts(), crate::runner::signals::terminated())
    }

    fn launch(&mut self, start: &Start, tx: &mpsc::Sender<Message>) -> crate::Result<Box<dyn Running>> {
        let (spec, options, slot, threads) = (self.spec, self.options, start.slot, start.threads);
        let exe = std::env::current_exe().map_err(|e| crate::Error::io("current executable", e))?;
        let log = open_log(start.log, &spec.name, start.index + 1)?;
        // One GPU per worker. With CUDA the worker sees only its own GPU, as device 0.
        let (device_spec, cuda_visible) = match (start.device, options.local.device) {
            (Some(d), DeviceSpec::Cuda(_)) => (DeviceSpec::Cuda(0), Some(d)),
            (Some(d), other) => (other.with_index(d), None),
            (None, other) => (other, None),
        };
        // Values go as `--flag=value`, so that none can read as an option. A password goes
        // through the environment, never on the command line that `ps` shows.
        let (store, password) = store::credentials::split_password(&options.store);
        let mut runs_dir = std::ffi::OsString::from("--runs-dir=");
        runs_dir.push(&options.runs_dir);
        let mut cmd = Command::new(exe);
        cmd.arg(runs_dir)
            .arg(format!("--store={store}"))
            .args(["worker", &format!("--sweep={}", spec.name), "--events=json"])
            .args([format!("--device={device_spec}"), format!("--threads={threads}")])
            .args(options.local.leases.worker_flags())
            .env("RAYON_NUM_THREADS", threads.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(d) = cuda_visible {
            cmd.env("CUDA_VISIBLE_DEVICES", d.to_string());
        }
        if let Some(password) = password {
            cmd.env(store::credentials::PASSWORD_ENV, password);
        }
        {
            use std::os::unix::process::CommandExt;
            // Own process group: Ctrl-C reaches the supervisor only, which forwards it once.
            cmd.process_group(0);
            // SAFETY: prctl is async-signal-safe; it asks the kernel to SIGTERM the worker if
            // the supervisor dies, so no worker outlives a killed `sweep run`.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| crate::Error::io("sweep worker", e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(event) = serde_json::from_str::<Event>(&line)
                    && tx.send(Message::Event(slot, event)).is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Message::Closed(slot));
        });
        Ok(Box::new(child))
    }
}

/// Opens a worker's log for appending, after a header line for this start: the log keeps what
/// earlier runs' workers wrote (the tracker's errors may point at it), and each start's lines
/// can be told apart.
fn open_log(path: &Path, sweep: &str, number: usize) -> crate::Result<std::fs::File> {
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| crate::Error::io(path, e))?;
    let now = crate::util::now_unix();
    writeln!(log, "{LOG_HEADER} {number} of sweep {sweep} started at unix time {now:.0} ===").map_err(|e| crate::Error::io(path, e))?;
    Ok(log)
}

/// How each start's part of a worker log begins.
const LOG_HEADER: &str = "=== sweep run: worker";

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("was killed by signal {sig} ({})", signal_name(sig)),
        (Some(code), _) => format!("exited with code {code}"),
        _ => "ended".to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL; out of memory, or killed",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

/// The last non-empty line the latest start of a worker wrote to its log, for a one-line error;
/// None when it wrote nothing.
fn log_tail(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    // A trial's marker line is no message of the worker's own.
    let line = text
        .lines()
        .rev()
        .take_while(|l| !l.starts_with(LOG_HEADER))
        .find(|l| !l.trim().is_empty() && !l.starts_with(crate::report::logs::MARKER))?;
    Some(line.to_string())
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
