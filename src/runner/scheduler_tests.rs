//! The supervisor's rules, each with scripted workers ([`FakeLauncher`]) on a real SQLite
//! tracker: what it starts, where, what it records when a worker dies, and when it stops.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::store::{Reclaim, Store, WorkerInfo};

/// What a scripted worker does, in order, before it closes its output.
#[derive(Debug, Clone)]
enum Step {
    /// Claims the next trial, as a worker does (emitting Claimed).
    Claim,
    /// Claims and completes every trial it can, then reports Idle.
    CompleteAll,
    /// Gives its trial back (Released), as a worker asked to stop does.
    Release,
    /// Reports that it ran out of trials.
    Idle,
    /// Appends a line to its log.
    Log(&'static str),
    Sleep(Duration),
    /// A person presses Ctrl-C at the supervisor.
    Interrupt,
    /// The supervisor receives SIGTERM.
    Terminate,
    /// Waits until the supervisor signals it.
    AwaitSignal,
}

/// The next worker the supervisor starts: a script and how its process ends, or a failed start.
enum Fake {
    Worker(Vec<Step>, ExitStatus),
    FailsToStart,
}

fn exits(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code << 8)
}

fn killed(signal: i32) -> ExitStatus {
    ExitStatus::from_raw(signal)
}

/// One start, as the supervisor asked for it, and what the worker saw.
#[derive(Debug, Clone)]
struct Launch {
    slot: usize,
    index: usize,
    device: Option<usize>,
    threads: usize,
    log: PathBuf,
    /// Signals the supervisor sent it.
    signals: Vec<libc::c_int>,
    /// Trials it claimed.
    claimed: Vec<String>,
}

#[derive(Default)]
struct Stops {
    interrupts: AtomicUsize,
    terminated: AtomicBool,
}

/// Starts scripted workers, in order; panics if the supervisor starts more than were scripted.
struct FakeLauncher {
    store: String,
    sweep: String,
    fakes: VecDeque<Fake>,
    launches: Arc<Mutex<Vec<Launch>>>,
    stops: Arc<Stops>,
}

impl Launcher for FakeLauncher {
    fn launch(&mut self, start: &Start, tx: &mpsc::Sender<Message>) -> crate::Result<Box<dyn Running>> {
        let steps = match self.fakes.pop_front() {
            Some(Fake::Worker(steps, exit)) => (steps, exit),
            Some(Fake::FailsToStart) => return Err(crate::Error::io("sweep worker", std::io::Error::from(std::io::ErrorKind::NotFound))),
            None => panic!("the supervisor started worker {} (slot {}), which the test did not script", start.index + 1, start.slot),
        };
        let (steps, exit) = steps;
        let record = {
            let mut launches = self.launches.lock().unwrap();
            launches.push(Launch {
                slot: start.slot,
                index: start.index,
                device: start.device,
                threads: start.threads,
                log: start.log.to_path_buf(),
                signals: Vec::new(),
                claimed: Vec::new(),
            });
            launches.len() - 1
        };
        // As a worker process's log: a header for this start, then what the worker writes.
        drop(open_log(start.log, &self.sweep, start.index + 1)?);
        let (signals, received) = mpsc::channel();
        let worker = FakeWorker {
            store: self.store.clone(),
            sweep: self.sweep.clone(),
            slot: start.slot,
            log: start.log.to_path_buf(),
            tx: tx.clone(),
            record,
            launches: self.launches.clone(),
            stops: self.stops.clone(),
            received,
        };
        let thread = std::thread::spawn(move || worker.run(steps));
        Ok(Box::new(FakeRunning { record, launches: self.launches.clone(), signals, exit, thread: Some(thread) }))
    }

    fn stop_requests(&self) -> (usize, bool) {
        (self.stops.interrupts.load(Ordering::SeqCst), self.stops.terminated.load(Ordering::SeqCst))
    }
}

/// A scripted worker's thread.
struct FakeWorker {
    store: String,
    sweep: String,
    slot: usize,
    log: PathBuf,
    tx: mpsc::Sender<Message>,
    record: usize,
    launches: Arc<Mutex<Vec<Launch>>>,
    stops: Arc<Stops>,
    received: mpsc::Receiver<libc::c_int>,
}

impl FakeWorker {
    /// Plays the script, then closes its output (always, so that a failed script cannot hang
    /// the supervisor); a failure is the thread's result, which `wait` reports.
    fn run(self, steps: Vec<Step>) -> Result<(), String> {
        let played = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.play(steps)));
        let _ = self.tx.send(Message::Closed(self.slot));
        match played {
            Ok(result) => result,
            Err(panic) => Err(crate::train::device::panic_message(&*panic)),
        }
    }

    fn play(&self, steps: Vec<Step>) -> Result<(), String> {
        let mut store = store::open(&self.store, false).map_err(|e| e.to_string())?;
        let mut lease = None;
        for step in steps {
            match step {
                Step::Claim => lease = self.claim(store.as_mut())?,
                Step::CompleteAll => {
                    let mut trials = 0;
                    while let Some(claimed) = self.claim(store.as_mut())? {
                        store.finish(&claimed, TrialStatus::Completed, None).map_err(|e| e.to_string())?;
                        let finished = Event::Finished { run: claimed.trial, status: TrialStatus::Completed, error: None, seconds: 0.0 };
                        self.send(finished);
                        trials += 1;
                    }
                    self.send(Event::Idle { trials });
                }
                Step::Release => {
                    let lease = lease.take().ok_or("nothing to release")?;
                    store.release(&lease).map_err(|e| e.to_string())?;
                    self.send(Event::Released { run: lease.trial });
                }
                Step::Idle => self.send(Event::Idle { trials: 0 }),
                Step::Log(line) => {
                    use std::io::Write;
                    let mut log = std::fs::OpenOptions::new().append(true).open(&self.log).map_err(|e| e.to_string())?;
                    writeln!(log, "{line}").map_err(|e| e.to_string())?;
                }
                Step::Sleep(d) => std::thread::sleep(d),
                Step::Interrupt => {
                    self.stops.interrupts.fetch_add(1, Ordering::SeqCst);
                }
                Step::Terminate => self.stops.terminated.store(true, Ordering::SeqCst),
                Step::AwaitSignal => {
                    self.received.recv_timeout(Duration::from_secs(10)).map_err(|_| "no signal came")?;
                }
            }
        }
        Ok(())
    }

    /// Claims the next queued trial as a worker does, and says so.
    fn claim(&self, store: &mut dyn Store) -> Result<Option<Lease>, String> {
        let reclaim = Reclaim { stale_after: 3600.0, max_attempts: Reclaim::DEFAULT_MAX_ATTEMPTS };
        let Some(claim) = store.claim(Some(&self.sweep), &WorkerInfo::this_process(), &reclaim).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        self.launches.lock().unwrap()[self.record].claimed.push(claim.lease.trial.clone());
        self.send(Event::Claimed {
            run: claim.lease.trial.clone(),
            attempt: claim.lease.attempt,
            params: claim.params,
            resumed: claim.resumed,
            epochs: claim.config.train.epochs,
        });
        Ok(Some(claim.lease))
    }

    fn send(&self, event: Event) {
        let _ = self.tx.send(Message::Event(self.slot, event));
    }
}

struct FakeRunning {
    record: usize,
    launches: Arc<Mutex<Vec<Launch>>>,
    signals: mpsc::Sender<libc::c_int>,
    exit: ExitStatus,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running for FakeRunning {
    fn signal(&mut self, signal: libc::c_int) {
        self.launches.lock().unwrap()[self.record].signals.push(signal);
        let _ = self.signals.send(signal);
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(thread) = self.thread.take() {
            let played = thread.join().expect("the fake worker's thread ends");
            if let Err(e) = played {
                panic!("fake worker {} failed: {e}", self.record + 1);
            }
        }
        Ok(self.exit)
    }
}

/// Rules for the tests: every death is quick (none takes a minute) unless a test says otherwise.
const RULES: Rules = Rules { quick_death: Duration::from_secs(60), quick_deaths_allowed: 5, poll: Duration::from_millis(5) };

/// The two-trial `quick` sweep registered in a fresh SQLite tracker.
struct Sweep {
    dir: tempfile::TempDir,
    spec: SweepSpec,
    options: SweepOptions,
}

impl Sweep {
    fn new(workers: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::study::spec::parse(include_str!("../../sweeps/quick.toml"), Path::new("sweeps/quick.toml")).unwrap();
        let options = SweepOptions {
            store: dir.path().join("tracker.db").display().to_string(),
            runs_dir: dir.path().join("runs"),
            local: LocalOptions {
                workers,
                device: DeviceSpec::Cpu,
                devices: None,
                threads: None,
                leases: crate::runner::Leases { max_attempts: 3, stale_after: 3600.0, heartbeat_every: 1.0 },
                plain: true,
            },
        };
        register(&spec, &spec.trials(None), &options.store, &options.runs_dir, false).unwrap();
        Self { dir, spec, options }
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("runs").join("quick").join("logs")
    }

    /// Supervises the sweep with these workers: the outcome, and the starts with what each
    /// worker saw.
    fn supervise(&self, rules: Rules, fakes: Vec<Fake>) -> (crate::Result<SweepOutcome>, Vec<Launch>) {
        let mut launcher = FakeLauncher {
            store: self.options.store.clone(),
            sweep: self.spec.name.clone(),
            fakes: fakes.into(),
            launches: Arc::default(),
            stops: Arc::default(),
        };
        let outcome = supervise(&self.spec, &self.options, &mut launcher, rules);
        assert!(launcher.fakes.is_empty(), "{} scripted worker(s) were not started", launcher.fakes.len());
        let launches = launcher.launches.lock().unwrap().clone();
        (outcome, launches)
    }

    /// The sweep's trials as the tracker holds them now.
    fn trials(&self) -> Vec<TrialRow> {
        store::open(&self.options.store, false).unwrap().trials(&TrialFilter { sweep: Some("quick".into()), status: None }).unwrap()
    }

    fn statuses(&self) -> Vec<TrialStatus> {
        self.trials().iter().map(|t| t.status).collect()
    }
}

fn worker(steps: &[Step], exit: ExitStatus) -> Fake {
    Fake::Worker(steps.to_vec(), exit)
}

/// (slot, index) of each start.
fn starts(launches: &[Launch]) -> Vec<(usize, usize)> {
    launches.iter().map(|l| (l.slot, l.index)).collect()
}

#[test]
fn the_quick_deaths_message_names_the_trial_that_keeps_killing_its_worker() {
    let held = |t: &str| Some(t.to_string());
    let message = quick_deaths_message(&[held("s-4"), None, held("s-4"), held("s-2"), held("s-4")], QUICK_DEATH);
    assert!(message.contains("after 5 of them died within 2s of starting"), "{message}");
    assert!(message.contains("3 of them held trial s-4, which keeps killing its worker (`sweep show s-4`)"), "{message}");
    assert!(quick_deaths_message(&[None, None], QUICK_DEATH).ends_with("before claiming a trial"));
    // Issue 27, item 10: a trial held in 1 of 5 deaths (it had ended pruned normally) was blamed.
    let message = quick_deaths_message(&[held("s-1"), None, None, None, None], QUICK_DEATH);
    assert!(message.ends_with("with no trial in common (the workers die whatever they train: see the worker logs)"), "{message}");
    assert!(!quick_deaths_message(&[held("s-1"), held("s-2"), held("s-1"), held("s-2")], QUICK_DEATH).contains("keeps killing"));
}

#[test]
fn nothing_to_run_starts_no_worker() {
    let mut sweep = Sweep::new(1);
    let (outcome, launches) = sweep.supervise(RULES, vec![worker(&[Step::CompleteAll], exits(0))]);
    assert_eq!(outcome.unwrap().trials.len(), 2);
    assert_eq!(sweep.statuses(), [TrialStatus::Completed; 2]);
    // Both trials have ended: a second run has nothing to do.
    sweep.options.local.workers = 4;
    let (outcome, launches_again) = sweep.supervise(RULES, vec![]);
    let outcome = outcome.unwrap();
    assert_eq!(launches.len(), 1);
    assert!(launches_again.is_empty());
    assert!(outcome.nothing_ran());
    assert_eq!((outcome.pending, outcome.workers_started), (0, 0));
    assert!(!outcome.any_failed() && outcome.gave_up.is_none() && outcome.worker_errors.is_empty());
}

#[test]
fn workers_are_capped_by_the_trials_left_and_devices_give_one_slot_each() {
    let cores = crate::util::available_cores();
    let sweep = Sweep::new(8);
    let done = || worker(&[Step::CompleteAll], exits(0));
    let (outcome, launches) = sweep.supervise(RULES, vec![done(), done()]);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.workers_started, 2);
    let seen: Vec<_> = launches.iter().map(|l| (l.slot, l.index, l.device, l.threads)).collect();
    assert_eq!(seen, [(0, 0, None, (cores / 2).max(1)), (1, 1, None, (cores / 2).max(1))]);
    assert_eq!(launches[1].log, sweep.log_dir().join("worker-2.log"));
    assert!(launches[1].log.exists());
    assert_eq!(sweep.statuses(), [TrialStatus::Completed; 2]);

    // `--devices` gives one slot per device, however many trials are left.
    let mut sweep = Sweep::new(1);
    sweep.options.local.devices = Some(vec![3, 5, 6]);
    let (outcome, launches) = sweep.supervise(RULES, vec![done(), done(), done()]);
    assert_eq!(outcome.unwrap().workers_started, 3);
    let seen: Vec<_> = launches.iter().map(|l| (l.slot, l.device, l.threads)).collect();
    let threads = (cores / 3).max(1);
    assert_eq!(seen, [(0, Some(3), threads), (1, Some(5), threads), (2, Some(6), threads)]);

    // `--threads` is given to every worker as it is.
    let mut sweep = Sweep::new(2);
    sweep.options.local.threads = Some(7);
    let (_, launches) = sweep.supervise(RULES, vec![done(), done()]);
    assert!(launches.iter().all(|l| l.threads == 7));
}

#[test]
fn a_worker_that_finishes_its_trials_is_not_replaced() {
    let sweep = Sweep::new(1);
    let (outcome, launches) = sweep.supervise(RULES, vec![worker(&[Step::CompleteAll], exits(0))]);
    let outcome = outcome.unwrap();
    assert_eq!(starts(&launches), [(0, 0)]);
    assert_eq!(launches[0].claimed.len(), 2);
    assert_eq!(sweep.statuses(), [TrialStatus::Completed; 2]);
    assert!(!outcome.any_failed() && !outcome.interrupted && !outcome.nothing_ran());
    assert!(outcome.worker_errors.is_empty() && outcome.gave_up.is_none());
    assert!(outcome.problems(&sweep.log_dir()).is_empty());
}

#[test]
fn a_clean_exit_or_an_idle_worker_exiting_with_1_is_no_error_and_not_replaced() {
    // Trials are still queued, but a worker that exits 0, or says it is idle and exits 1 (some
    // of its trials failed, which the tracker records), is not replaced.
    let sweep = Sweep::new(2);
    let (outcome, launches) = sweep.supervise(RULES, vec![worker(&[], exits(0)), worker(&[Step::Idle], exits(1))]);
    let outcome = outcome.unwrap();
    assert_eq!(starts(&launches), [(0, 0), (1, 1)]);
    assert!(outcome.worker_errors.is_empty() && !outcome.any_failed(), "{:?}", outcome.worker_errors);
    assert_eq!(sweep.statuses(), [TrialStatus::Queued; 2]);
    assert!(outcome.gave_up.is_none());
}

#[test]
fn a_worker_killed_holding_a_trial_is_replaced_and_its_trial_requeued() {
    let sweep = Sweep::new(1);
    let fakes = vec![worker(&[Step::Claim, Step::Log("epoch 1/2")], killed(libc::SIGKILL)), worker(&[Step::CompleteAll], exits(0))];
    let (outcome, launches) = sweep.supervise(RULES, fakes);
    let outcome = outcome.unwrap();
    // The replacement takes the same slot, with the next index (its own log).
    assert_eq!(starts(&launches), [(0, 0), (0, 1)]);
    assert_eq!(launches[1].log, sweep.log_dir().join("worker-2.log"));
    let trials = sweep.trials();
    let first = &trials[0];
    assert_eq!(launches[0].claimed, [first.id.as_str()]);
    // Requeued by the supervisor, then resumed (its second attempt) and completed.
    assert_eq!(launches[1].claimed, [first.id.clone(), trials[1].id.clone()]);
    assert_eq!((first.status, first.attempt), (TrialStatus::Completed, 2));
    assert_eq!(trials[1].status, TrialStatus::Completed);
    assert!(!outcome.any_failed() && outcome.worker_errors.is_empty() && outcome.gave_up.is_none());
    assert_eq!(outcome.workers_started, 2);
}

#[test]
fn a_trial_that_kills_its_worker_max_attempts_times_fails_with_the_cause_and_the_log_line() {
    let sweep = Sweep::new(1);
    let dies = || worker(&[Step::Claim, Step::Log("thread 'main' panicked: CUDA out of memory"), Step::Log("")], killed(libc::SIGSEGV));
    let (outcome, launches) = sweep.supervise(RULES, vec![dies(), dies(), dies(), worker(&[Step::CompleteAll], exits(0))]);
    let outcome = outcome.unwrap();
    assert_eq!(starts(&launches), [(0, 0), (0, 1), (0, 2), (0, 3)]);
    let trials = sweep.trials();
    let (first, second) = (&trials[0], &trials[1]);
    assert!(launches[..3].iter().all(|l| l.claimed == [first.id.clone()]));
    assert_eq!(first.status, TrialStatus::Failed);
    let error = first.error.as_deref().unwrap();
    let log = sweep.log_dir().join("worker-3.log");
    let expected = format!(
        "worker process was killed by signal {} (SIGSEGV): thread 'main' panicked: CUDA out of memory ({}) (3 attempts in a row",
        libc::SIGSEGV,
        log.display()
    );
    assert!(error.starts_with(&expected), "{error}");
    assert_eq!(second.status, TrialStatus::Completed);
    assert!(outcome.any_failed() && outcome.worker_errors.is_empty());
    assert!(outcome.retry_hint().contains("1 failed"));
}

#[test]
fn a_worker_that_dies_without_a_trial_is_a_worker_error() {
    let sweep = Sweep::new(1);
    let fakes = vec![
        worker(&[Step::Log("error: the tracker is locked")], exits(2)),
        worker(&[], exits(1)),
        // It gave its trial back (Released) before it died: that is no crash of the trial.
        worker(&[Step::Claim, Step::Release, Step::Log("error: disk full")], exits(1)),
        worker(&[Step::CompleteAll], exits(0)),
    ];
    let (outcome, launches) = sweep.supervise(RULES, fakes);
    let outcome = outcome.unwrap();
    // Trials are queued: each is replaced.
    assert_eq!(starts(&launches), [(0, 0), (0, 1), (0, 2), (0, 3)]);
    let log = |n: usize| sweep.log_dir().join(format!("worker-{n}.log")).display().to_string();
    assert_eq!(
        outcome.worker_errors,
        [
            format!("worker 1 exited with code 2: error: the tracker is locked ({})", log(1)),
            format!("worker 2 exited with code 1 without a message (its log {} says nothing)", log(2)),
            format!("worker 3 exited with code 1: error: disk full ({})", log(3)),
        ]
    );
    let trials = sweep.trials();
    assert_eq!((trials[0].attempt, trials[0].error.as_deref()), (2, None), "released by the third worker, completed by the fourth");
    assert!(outcome.any_failed());
    assert_eq!(sweep.statuses(), [TrialStatus::Completed; 2]);
}

#[test]
fn five_quick_deaths_stop_the_supervisor_starting_workers() {
    let sweep = Sweep::new(1);
    let dies = || worker(&[Step::Log("error: cannot load libtorch")], exits(1));
    let (outcome, launches) = sweep.supervise(RULES, (0..5).map(|_| dies()).collect());
    let outcome = outcome.unwrap();
    assert_eq!(launches.len(), 5);
    assert_eq!(outcome.worker_errors.len(), 5);
    let gave_up = outcome.gave_up.clone().unwrap();
    assert_eq!(gave_up, "the supervisor started no more workers after 5 of them died within 60s of starting before claiming a trial");
    assert_eq!(sweep.statuses(), [TrialStatus::Queued; 2]);
    let problems = outcome.problems(&sweep.log_dir());
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("2 trial(s) did not run to the end (") && problems[0].contains(&gave_up), "{problems:?}");

    // Two slots: the fifth death stops the starts; the other worker's death after it does not
    // change the reason.
    let sweep = Sweep::new(2);
    let (outcome, launches) = sweep.supervise(RULES, (0..6).map(|_| dies()).collect());
    let outcome = outcome.unwrap();
    assert_eq!(launches.len(), 6);
    assert_eq!(outcome.worker_errors.len(), 6);
    assert!(outcome.gave_up.unwrap().contains("after 5 of them died"));
}

#[test]
fn quick_deaths_name_the_trial_that_keeps_killing_its_worker() {
    let mut sweep = Sweep::new(1);
    // Not failed by the crash rule first.
    sweep.options.local.leases.max_attempts = 10;
    let dies = || worker(&[Step::Claim], killed(libc::SIGKILL));
    let (outcome, launches) = sweep.supervise(RULES, (0..5).map(|_| dies()).collect());
    let outcome = outcome.unwrap();
    assert_eq!(launches.len(), 5);
    let trials = sweep.trials();
    let culprit = &trials[0].id;
    assert!(launches.iter().all(|l| l.claimed == [culprit.as_str()]));
    let gave_up = outcome.gave_up.unwrap();
    assert!(gave_up.ends_with(&format!("5 of them held trial {culprit}, which keeps killing its worker (`sweep show {culprit}`)")), "{gave_up}");
    assert_eq!((trials[0].status, trials[0].attempt), (TrialStatus::Queued, 5));
    assert!(trials[0].error.as_deref().unwrap().starts_with("worker process was killed by signal 9 (SIGKILL; out of memory, or killed)"));
}

#[test]
fn slow_deaths_are_not_quick() {
    let sweep = Sweep::new(1);
    // Each worker lives 40 times as long as a quick death: two of those would stop the starts.
    let rules = Rules { quick_death: Duration::from_millis(1), quick_deaths_allowed: 2, ..RULES };
    let dies_slowly = || worker(&[Step::Sleep(Duration::from_millis(40))], exits(1));
    let (outcome, launches) = sweep.supervise(rules, vec![dies_slowly(), dies_slowly(), dies_slowly(), worker(&[Step::CompleteAll], exits(0))]);
    let outcome = outcome.unwrap();
    assert_eq!(launches.len(), 4);
    assert!(outcome.gave_up.is_none());
    assert_eq!(outcome.worker_errors.len(), 3);
    assert_eq!(sweep.statuses(), [TrialStatus::Completed; 2]);
    // The same deaths, quick: the starts stop after two.
    let sweep = Sweep::new(1);
    let rules = Rules { quick_deaths_allowed: 2, ..RULES };
    let (outcome, launches) = sweep.supervise(rules, vec![dies_slowly(), dies_slowly()]);
    assert_eq!(launches.len(), 2);
    assert!(outcome.unwrap().gave_up.is_some());
}

#[test]
fn an_interrupt_reaches_each_live_worker_once_and_nothing_is_replaced() {
    let sweep = Sweep::new(2);
    let fakes = vec![
        // Gives its trial back on the signal, as a worker does.
        worker(&[Step::Claim, Step::Interrupt, Step::AwaitSignal, Step::Release, Step::Idle], exits(0)),
        // Dies of it, holding its trial.
        worker(&[Step::Claim, Step::AwaitSignal], killed(libc::SIGINT)),
    ];
    let (outcome, launches) = sweep.supervise(RULES, fakes);
    let outcome = outcome.unwrap();
    // Both trials are queued again, and no worker replaces the one that died.
    assert_eq!(starts(&launches), [(0, 0), (1, 1)]);
    assert!(launches.iter().all(|l| l.signals == [libc::SIGINT]), "{launches:?}");
    assert!(outcome.interrupted);
    assert_eq!(sweep.statuses(), [TrialStatus::Queued; 2]);
    let died = sweep.trials().into_iter().find(|t| launches[1].claimed == [t.id.clone()]).unwrap();
    assert_eq!(died.error.as_deref(), Some("worker process was killed by signal 2 (SIGINT)"));
    assert!(outcome.worker_errors.is_empty() && outcome.gave_up.is_none());
}

#[test]
fn each_interrupt_is_forwarded_and_sigterm_when_terminated() {
    let sweep = Sweep::new(2);
    let fakes = vec![
        worker(&[Step::Claim, Step::Interrupt, Step::AwaitSignal, Step::Interrupt, Step::AwaitSignal, Step::Release], exits(0)),
        worker(&[Step::AwaitSignal, Step::AwaitSignal], exits(0)),
    ];
    let (outcome, launches) = sweep.supervise(RULES, fakes);
    assert!(outcome.unwrap().interrupted);
    assert!(launches.iter().all(|l| l.signals == [libc::SIGINT, libc::SIGINT]), "{launches:?}");

    let sweep = Sweep::new(1);
    let (outcome, launches) = sweep.supervise(RULES, vec![worker(&[Step::Claim, Step::Terminate, Step::AwaitSignal], killed(libc::SIGTERM))]);
    let outcome = outcome.unwrap();
    assert_eq!(launches.len(), 1);
    assert_eq!(launches[0].signals, [libc::SIGTERM]);
    assert!(outcome.interrupted);
    assert_eq!(sweep.statuses(), [TrialStatus::Queued; 2]);
    assert_eq!(sweep.trials()[0].error.as_deref(), Some("worker process was killed by signal 15 (SIGTERM)"));

    // A stop that comes as a worker dies holding a trial: no replacement either.
    let sweep = Sweep::new(1);
    let (outcome, launches) = sweep.supervise(RULES, vec![worker(&[Step::Claim, Step::Terminate], killed(libc::SIGKILL))]);
    outcome.unwrap();
    assert_eq!(launches.len(), 1);
    assert_eq!(sweep.statuses(), [TrialStatus::Queued; 2]);
}

#[test]
fn a_failed_start_ends_the_supervisor_with_its_error() {
    let sweep = Sweep::new(1);
    let (outcome, launches) = sweep.supervise(RULES, vec![Fake::FailsToStart]);
    let error = outcome.unwrap_err().to_string();
    assert!(error.starts_with("sweep worker: "), "{error}");
    assert!(launches.is_empty());

    // A replacement that cannot start, too (its predecessor's trial is requeued first).
    let sweep = Sweep::new(1);
    let (outcome, launches) = sweep.supervise(RULES, vec![worker(&[Step::Claim], killed(libc::SIGKILL)), Fake::FailsToStart]);
    assert!(outcome.unwrap_err().to_string().starts_with("sweep worker: "));
    assert_eq!(launches.len(), 1);
    assert_eq!(sweep.statuses(), [TrialStatus::Queued; 2]);
}
