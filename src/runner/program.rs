//! Running a user's training program for one trial (`[program]`): the command with its macros
//! expanded, in its own process group, with the trial's `SWEEP_*` variables; its reports read as
//! they come ([`super::protocol`]) from standard output and `$SWEEP_METRICS`; ended (SIGTERM to
//! the group, a grace period, then SIGKILL) when the trial is pruned, stopped, out of time, or
//! reports something that is not a report.
//!
//! The program's other output is its log: written to this worker's standard error (the trial's
//! log under `sweep run`), the last lines kept for the message of a trial that fails.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{self, Line, Report};
use crate::config::{ProgramConfig, TrialConfig};
use crate::train::StopRequest;

/// A line longer than this is cut (a report never is; a log line may be a progress bar's).
const MAX_LINE: usize = 1 << 20;
/// How many of the program's last output lines a failure message quotes.
const TAIL_LINES: usize = 20;
/// How long a program's output may stay open after it exited (a child it left behind).
const DRAIN: Duration = Duration::from_secs(2);

/// The environment variables every trial's program gets.
pub const TRIAL_ID: &str = "SWEEP_TRIAL_ID";
pub const TRIAL_DIR: &str = "SWEEP_TRIAL_DIR";
pub const PARAMS: &str = "SWEEP_PARAMS";
pub const RESUME_EPOCH: &str = "SWEEP_RESUME_EPOCH";
pub const EPOCHS: &str = "SWEEP_EPOCHS";
pub const SEED: &str = "SWEEP_SEED";
pub const METRICS: &str = "SWEEP_METRICS";

/// What the worker does with what the program reports.
pub trait Reports {
    /// An epoch the program reported: record it, and judge it when `judge` (an epoch the trial
    /// resumed from was judged before). An error ends the program and fails the trial with it.
    fn epoch(&mut self, report: &Report, judge: bool) -> Result<(), String>;
    /// Whether the program should end now (pruned, diverged, stopped, the lease lost).
    fn stop_request(&self) -> StopRequest;
}

/// How a run of the program ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// It exited with status 0.
    Exited,
    /// It was ended because `stop_request` asked.
    Stopped,
    /// It could not start, exited otherwise, ran out of time or reported something that is not a
    /// report: why, with its last lines of output.
    Failed(String),
}

/// One trial's run of its program.
pub struct Run<'a> {
    pub trial: &'a str,
    pub config: &'a TrialConfig,
    pub program: &'a ProgramConfig,
    pub trial_dir: &'a Path,
    /// The last epoch the tracker holds for the trial (0 at the first start).
    pub resume_epoch: usize,
}

impl Run<'_> {
    /// Writes the parameters file, starts the program and follows it to its end.
    pub fn run(&self, reports: &mut dyn Reports) -> Ended {
        match self.start() {
            Ok((child, paths)) => follow(child, &paths, self, reports),
            Err(message) => Ended::Failed(message),
        }
    }

    fn start(&self) -> Result<(Child, Paths), String> {
        let argv = self.program.argv().map_err(|e| format!("program.command: {e}"))?;
        std::fs::create_dir_all(self.trial_dir).map_err(|e| format!("cannot create {}: {e}", self.trial_dir.display()))?;
        let trial_dir = std::path::absolute(self.trial_dir).unwrap_or_else(|_| self.trial_dir.to_path_buf());
        let paths = Paths { params: trial_dir.join("params.json"), metrics: trial_dir.join("metrics.jsonl") };
        let params = serde_json::to_vec_pretty(&self.program.params).expect("parameters serialise");
        crate::util::atomic_write(&paths.params, &params).map_err(|e| format!("cannot write {}: {e}", paths.params.display()))?;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(&self.program.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a prune ends the program's children too, and a Ctrl-C at the
            // terminal reaches the worker, which ends the program as it decides.
            .process_group(0);
        // Python buffers a pipe's output: reports would come at exit, too late to prune.
        if std::env::var_os("PYTHONUNBUFFERED").is_none() {
            command.env("PYTHONUNBUFFERED", "1");
        }
        command
            .envs(&self.program.env)
            .env(TRIAL_ID, self.trial)
            .env(TRIAL_DIR, &trial_dir)
            .env(PARAMS, &paths.params)
            .env(RESUME_EPOCH, self.resume_epoch.to_string())
            .env(EPOCHS, self.config.train.epochs.to_string())
            .env(SEED, self.config.train.seed.to_string())
            .env(METRICS, &paths.metrics);
        // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
        #[cfg(target_os = "linux")]
        unsafe {
            // A worker killed outright (the OOM killer, SIGKILL) takes its program with it, so a
            // resumed trial never runs beside its previous attempt.
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            format!("cannot start {:?} in {}: {e} (program.command, program.workdir)", argv[0], Path::new(&self.program.workdir).display())
        })?;
        Ok((child, paths))
    }
}

struct Paths {
    params: PathBuf,
    metrics: PathBuf,
}

/// What the output threads send.
enum Output {
    Stdout(String),
    Closed,
}

/// The program's last lines of output, shared by the threads that read it.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        let mut kept: String = line.chars().take(300).collect();
        if kept.len() < line.len() {
            kept.push_str(" ...");
        }
        lines.push_back(kept);
    }

    fn quoted(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.is_empty() {
            return " (it wrote nothing)".into();
        }
        format!("; its last lines:\n{}", lines.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n"))
    }
}

/// Writes a line of the program's log to this process's standard error and keeps it in the tail.
fn log(tail: &Tail, line: &str) {
    tail.push(line);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Reads `reader` line by line (at most [`MAX_LINE`] bytes a line, the rest dropped), as text.
fn lines(mut reader: impl BufRead, mut each: impl FnMut(String)) {
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        cut |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.unwrap_or(buf.len());
        reader.consume(used);
        if newline.is_some() {
            let mut text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if cut {
                text.push_str(" ... (line cut)");
            }
            each(text);
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() {
        each(String::from_utf8_lossy(&line).into_owned());
    }
}

/// Follows the started program to its end.
fn follow(mut child: Child, paths: &Paths, run: &Run, reports: &mut dyn Reports) -> Ended {
    let started = Instant::now();
    let group = child.id() as i32;
    let tail = Tail::default();
    let (tx, rx) = channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        lines(std::io::BufReader::new(stdout), |line| {
            let _ = tx.send(Output::Stdout(line));
        });
        let _ = tx.send(Output::Closed);
    });
    let err_tail = tail.clone();
    let (err_done, err_closed) = channel::<()>();
    // Neither reader is joined: a process that left the group (setsid) may hold the pipes open
    // for ever. Each is waited for up to DRAIN after the program exits.
    std::thread::spawn(move || {
        lines(std::io::BufReader::new(stderr), |line| log(&err_tail, &line));
        let _ = err_done.send(());
    });
    let mut metrics = MetricsFile { path: paths.metrics.clone(), offset: 0, partial: Vec::new(), lines_before: 0 };
    let mut follower = Follower { reports, resume_epoch: run.resume_epoch, stdout_line: 0 };
    let timeout = run.program.timeout.map(Duration::from_secs_f64);
    let grace = Duration::from_secs_f64(run.program.grace);
    let ended = loop {
        // Every line that came, then the metrics file, then whether to go on.
        let closed = match follower.drain(&rx, &tail, Duration::from_millis(50)) {
            Ok(closed) => closed,
            Err(message) => break end(&mut child, group, grace, Ended::Failed(format!("{message}{}", tail.quoted()))),
        };
        if let Err(message) = metrics.read(&mut follower) {
            break end(&mut child, group, grace, Ended::Failed(format!("{message}{}", tail.quoted())));
        }
        if follower.reports.stop_request() != StopRequest::Continue {
            break end(&mut child, group, grace, Ended::Stopped);
        }
        if let Some(limit) = timeout.filter(|t| started.elapsed() > *t) {
            let message = format!(
                "ran past its timeout of {} (program.timeout) and was ended{}",
                crate::util::format_duration(limit.as_secs_f64()),
                tail.quoted()
            );
            break end(&mut child, group, grace, Ended::Failed(message));
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                // Whatever it left running in its group goes with it; then the rest of its output.
                kill_group(group, libc::SIGKILL);
                let mut closed = closed;
                let until = Instant::now() + DRAIN;
                while !closed && Instant::now() < until {
                    match follower.drain(&rx, &tail, Duration::from_millis(50)) {
                        Ok(c) => closed = c,
                        Err(message) => return Ended::Failed(format!("{message}{}", tail.quoted())),
                    }
                }
                if let Err(message) = metrics.read(&mut follower) {
                    return Ended::Failed(format!("{message}{}", tail.quoted()));
                }
                let _ = err_closed.recv_timeout(DRAIN);
                break exited(status, &tail);
            }
            // Its output closed but it has not exited yet: wait for it without spinning.
            Ok(None) if closed => std::thread::sleep(Duration::from_millis(1)),
            Ok(None) => {}
            Err(e) => break end(&mut child, group, grace, Ended::Failed(format!("cannot wait for the program: {e}"))),
        }
    };
    drop(rx);
    ended
}

/// What an exit status means for the trial.
fn exited(status: ExitStatus, tail: &Tail) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ended::Exited,
        (Some(code), _) => Ended::Failed(format!("the program exited with status {code}{}", tail.quoted())),
        (None, Some(signal)) => Ended::Failed(format!("the program was killed by signal {signal}{}", tail.quoted())),
        (None, None) => Ended::Failed(format!("the program ended with {status}{}", tail.quoted())),
    }
}

/// Ends the program's process group: SIGTERM, up to `grace` for it to exit, then SIGKILL.
fn end(child: &mut Child, group: i32, grace: Duration, ended: Ended) -> Ended {
    kill_group(group, libc::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_group(group, libc::SIGKILL);
    let _ = child.wait();
    ended
}

fn kill_group(group: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Hands reports to the worker: every one is recorded; an epoch at or before the one the trial
/// resumed from was judged already, and is only recorded (once: recording is idempotent).
struct Follower<'a> {
    reports: &'a mut dyn Reports,
    resume_epoch: usize,
    stdout_line: usize,
}

impl Follower<'_> {
    fn report(&mut self, report: &Report) -> Result<(), String> {
        self.reports.epoch(report, report.epoch > self.resume_epoch)
    }

    /// Takes what the output thread sent within `wait`; true once standard output is closed.
    fn drain(&mut self, rx: &Receiver<Output>, tail: &Tail, wait: Duration) -> Result<bool, String> {
        let mut next = rx.recv_timeout(wait);
        loop {
            match next {
                Ok(Output::Stdout(line)) => {
                    self.stdout_line += 1;
                    match protocol::stdout_line(&line) {
                        Ok(Line::Log) => log(tail, &line),
                        Ok(Line::Report(report)) => {
                            tail.push(&line);
                            self.report(&report)?;
                        }
                        Err(e) => {
                            return Err(format!("line {} of the program's standard output is a malformed report: {e}: {line}", self.stdout_line));
                        }
                    }
                    if self.reports.stop_request() != StopRequest::Continue {
                        return Ok(false);
                    }
                }
                Ok(Output::Closed) | Err(RecvTimeoutError::Disconnected) => return Ok(true),
                Err(RecvTimeoutError::Timeout) => return Ok(false),
            }
            next = rx.try_recv().map_err(|e| match e {
                std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            });
        }
    }
}

/// `$SWEEP_METRICS`, read as the program appends to it: complete lines only.
struct MetricsFile {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    lines_before: usize,
}

impl MetricsFile {
    fn read(&mut self, follower: &mut Follower) -> Result<(), String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return Ok(()) };
        let Ok(meta) = file.metadata() else { return Ok(()) };
        if meta.len() <= self.offset {
            return Ok(());
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(self.offset)).map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let mut bytes = Vec::new();
        file.take(meta.len() - self.offset).read_to_end(&mut bytes).map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else { return Ok(()) };
        let complete: Vec<u8> = self.partial.drain(..=last).collect();
        let text = String::from_utf8_lossy(&complete);
        // Line numbers count from the file's start.
        let before = self.lines_before;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let report = protocol::metrics_line(line)
                .map_err(|e| format!("line {} of {} ($SWEEP_METRICS) is a malformed report: {e}: {line}", before + i + 1, self.path.display()))?;
            follower.report(&report)?;
        }
        self.lines_before += text.lines().count();
        Ok(())
    }
}
