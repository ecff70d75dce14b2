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
//! completed trials are skipped and interrupted ones resume.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::device::DeviceSpec;
use crate::progress::Progress;
use crate::spec::{SweepSpec, Trial};
use crate::store::{self, Lease, NewTrial, RunFilter, RunRow, RunStatus, SweepRegistration};
use crate::worker::Event;

/// How to run a sweep locally.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub store: String,
    pub runs_dir: PathBuf,
    pub workers: usize,
    pub device: DeviceSpec,
    /// GPU indices: one worker per device (overrides `workers`).
    pub devices: Option<Vec<usize>>,
    /// CPU threads per worker (default: the cores divided among the workers).
    pub threads: Option<usize>,
    pub retry_failed: bool,
    /// A worker death counts against a run this many times in a row before it is failed.
    pub max_attempts: i64,
    pub stale_after: f64,
    pub heartbeat_every: f64,
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
}

/// How a local sweep ended.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    pub runs: Vec<RunRow>,
    pub interrupted: bool,
    pub elapsed: Duration,
    /// Messages of workers that could not start at all.
    pub worker_errors: Vec<String>,
}

impl SweepOutcome {
    /// Runs of the sweep by status.
    pub fn counts(&self) -> BTreeMap<RunStatus, usize> {
        let mut counts = BTreeMap::new();
        for r in &self.runs {
            *counts.entry(r.status).or_default() += 1;
        }
        counts
    }

    /// Whether any trial failed or diverged (the exit code is then 1).
    pub fn any_failed(&self) -> bool {
        self.runs.iter().any(|r| matches!(r.status, RunStatus::Failed | RunStatus::Diverged)) || !self.worker_errors.is_empty()
    }
}

/// Registers the sweep and enqueues its trials (idempotent).
pub fn register(spec: &SweepSpec, trials: &[Trial], store_location: &str, retry_failed: bool) -> crate::Result<Registration> {
    let mut store = store::open(store_location, true)?;
    let registration = store.register_sweep(&spec.name, &spec.text)?;
    let new: Vec<NewTrial> = trials.iter().map(|t| NewTrial { config: t.config.clone(), params: t.params.clone() }).collect();
    let report = store.enqueue(&spec.name, &new)?;
    let requeued = if retry_failed { store.requeue_failed(&spec.name)? } else { 0 };
    Ok(Registration { registration, added: report.added, existing: report.existing, requeued })
}

/// Makes sure every dataset the trials use exists (generating the synthetic one once, here,
/// rather than in every worker at the same time) and is readable: every image and mask opens and
/// each mask has its image's size (checked from the file headers).
pub fn prepare_data(trials: &[Trial], runs_dir: &Path) -> crate::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for t in trials {
        let key = serde_json::to_string(&t.config.data).unwrap_or_default();
        if !seen.insert(key) {
            continue;
        }
        let dir = crate::train::dataset_dir(&t.config, runs_dir)?;
        let files = crate::data::scan(&dir)?;
        if !t.config.data.is_synthetic() {
            crate::data::check_headers(&files)?;
        }
    }
    Ok(())
}

struct WorkerProcess {
    child: Child,
    /// The run it holds, from its last Claimed event.
    lease: Option<Lease>,
    index: usize,
}

enum Message {
    Event(usize, Event),
    Closed(usize),
}

/// Runs the sweep's queued trials in worker processes until the queue is empty or a stop.
pub fn run(spec: &SweepSpec, options: &RunOptions) -> crate::Result<SweepOutcome> {
    crate::signals::install();
    let store = store::open(&options.store, false)?;
    let runs = store.runs(&RunFilter { sweep: Some(spec.name.clone()), status: None })?;
    let pending = runs.iter().filter(|r| !r.status.is_final()).count();
    let done = runs.len() - pending;
    let slots: Vec<Option<usize>> = match &options.devices {
        Some(devices) => devices.iter().map(|&d| Some(d)).collect(),
        None => vec![None; options.workers.clamp(1, pending.max(1))],
    };
    let threads = options.threads.unwrap_or_else(|| (crate::util::available_cores() / slots.len()).max(1));
    let log_dir = options.runs_dir.join(&spec.name).join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| crate::Error::io(&log_dir, e))?;

    let mut progress = Progress::new(&spec.name, slots.len(), runs.len(), done, options.plain);
    let (tx, rx) = mpsc::channel::<Message>();
    let mut workers: HashMap<usize, WorkerProcess> = HashMap::new();
    let mut worker_errors = Vec::new();
    let mut spawned = 0usize;
    let mut forwarded = 0usize;
    let mut interrupted = false;
    // Respawns are bounded: a worker that cannot even start would otherwise loop forever.
    let mut early_deaths = 0usize;

    if pending > 0 {
        for (slot, device) in slots.iter().enumerate() {
            let w = spawn(spec, options, slot, *device, threads, &log_dir, spawned, &tx)?;
            spawned += 1;
            workers.insert(slot, w);
        }
    }
    let mut store = store;
    let mut started_at: HashMap<usize, Instant> = workers.keys().map(|&k| (k, Instant::now())).collect();
    while !workers.is_empty() {
        // Forward each new Ctrl-C to every worker (they are in their own process groups).
        let interrupts = crate::signals::interrupts() + usize::from(crate::signals::terminated());
        while forwarded < interrupts {
            forwarded += 1;
            interrupted = true;
            let signal = if crate::signals::terminated() { libc::SIGTERM } else { libc::SIGINT };
            for w in workers.values() {
                // SAFETY: kill has no memory effects; the pid is our own child's.
                unsafe { libc::kill(w.child.id() as libc::pid_t, signal) };
            }
            progress.println(if forwarded == 1 {
                "stopping: the running trials finish their epoch and checkpoint (Ctrl-C again to stop now)"
            } else {
                "stopping now"
            });
        }
        let message = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match message {
            Message::Event(slot, event) => {
                if let Some(w) = workers.get_mut(&slot) {
                    match &event {
                        Event::Claimed { run, attempt, .. } => w.lease = Some(Lease { run: run.clone(), attempt: *attempt }),
                        Event::Finished { .. } | Event::Released { .. } => w.lease = None,
                        _ => {}
                    }
                }
                progress.event(slot, &event);
            }
            Message::Closed(slot) => {
                let Some(mut w) = workers.remove(&slot) else { continue };
                let status = w.child.wait().map_err(|e| crate::Error::io("worker process", e))?;
                progress.worker_exited(slot);
                let lived = started_at.remove(&slot).map_or(Duration::ZERO, |t| t.elapsed());
                let clean = status.success() && w.lease.is_none();
                if clean {
                    continue;
                }
                let log = log_dir.join(format!("worker-{}.log", w.index + 1));
                let cause = describe_exit(status);
                if let Some(lease) = w.lease.take() {
                    let message = format!("worker process {cause}; see {}", log.display());
                    match store.record_crash(&lease, &message, options.max_attempts) {
                        Ok(RunStatus::Failed) => progress.failed_by_supervisor(&format!("[{}] failed: {message}", lease.run)),
                        Ok(_) => progress.requeued(&format!("[{}] worker {cause}; requeued to resume from its last checkpoint", lease.run)),
                        Err(e) => progress.println(&format!("[{}] worker {cause}; {e}", lease.run)),
                    }
                } else {
                    let tail = log_tail(&log);
                    worker_errors.push(format!("worker {} {cause}: {tail}", w.index + 1));
                }
                if lived < Duration::from_secs(2) {
                    early_deaths += 1;
                }
                let stopping = interrupted || crate::signals::interrupts() > 0 || crate::signals::terminated();
                let more = store.runs(&RunFilter { sweep: Some(spec.name.clone()), status: Some(RunStatus::Queued) })?.len();
                if !stopping && more > 0 && early_deaths < 5 {
                    let device = slots.get(slot).copied().flatten();
                    let replacement = spawn(spec, options, slot, device, threads, &log_dir, spawned, &tx)?;
                    spawned += 1;
                    workers.insert(slot, replacement);
                    started_at.insert(slot, Instant::now());
                }
            }
        }
    }
    let elapsed = progress.finish();
    let runs = store.runs(&RunFilter { sweep: Some(spec.name.clone()), status: None })?;
    Ok(SweepOutcome { runs, interrupted, elapsed, worker_errors })
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    spec: &SweepSpec,
    options: &RunOptions,
    slot: usize,
    device: Option<usize>,
    threads: usize,
    log_dir: &Path,
    index: usize,
    tx: &mpsc::Sender<Message>,
) -> crate::Result<WorkerProcess> {
    let exe = std::env::current_exe().map_err(|e| crate::Error::io("current executable", e))?;
    let log_path = log_dir.join(format!("worker-{}.log", index + 1));
    let log = std::fs::File::create(&log_path).map_err(|e| crate::Error::io(&log_path, e))?;
    // One GPU per worker. With CUDA the worker sees only its own GPU, as device 0.
    let (device_spec, cuda_visible) = match (device, options.device) {
        (Some(d), DeviceSpec::Cuda(_)) => (DeviceSpec::Cuda(0), Some(d)),
        (Some(d), other) => (other.with_index(d), None),
        (None, other) => (other, None),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("--runs-dir")
        .arg(&options.runs_dir)
        .arg("--store")
        .arg(&options.store)
        .args(["worker", "--sweep", &spec.name, "--events", "json"])
        .args(["--device", &device_spec.to_string(), "--threads", &threads.to_string()])
        .args(["--stale-after", &options.stale_after.to_string(), "--heartbeat-every", &options.heartbeat_every.to_string()])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    if let Some(d) = cuda_visible {
        cmd.env("CUDA_VISIBLE_DEVICES", d.to_string());
    }
    {
        use std::os::unix::process::CommandExt;
        // Own process group: Ctrl-C reaches the supervisor only, which forwards it once.
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; it asks the kernel to SIGTERM the worker if the
        // supervisor dies, so no worker outlives a killed `sweep run`.
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
    Ok(WorkerProcess { child, lease: None, index })
}

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

/// The last non-empty line of a worker's log, for a one-line error.
fn log_tail(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
        .unwrap_or_else(|| format!("see {}", path.display()))
}
