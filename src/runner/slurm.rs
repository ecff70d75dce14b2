//! The SLURM launcher: a sweep's workers as one job array.
//!
//! `sweep run FILE --launcher slurm --workers N` registers the sweep in the tracker like a local
//! run, then writes an sbatch script (an array of N tasks, each running `sweep worker` for the
//! sweep) under `runs/<sweep>/slurm/`, submits it, and records the job id in the tracker so that
//! `sweep status` can show SLURM's view beside the tracker's. Workers find their trials through
//! the tracker, so nothing else needs to reach the compute nodes but the store (a `postgres://`
//! URL, or a SQLite file on a local disk for a one-node cluster) and the shared runs directory.
//!
//! The script asks SLURM to requeue preempted tasks and to send SIGTERM two minutes before the
//! time limit; a worker stops at SIGTERM, gives its trial back, and the trial resumes from its
//! last checkpoint in whichever task claims it next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::store::{JobRow, Store, TrialFilter, TrialRow, TrialStatus};
use crate::train::device::DeviceSpec;

/// How to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    pub workers: usize,
    pub partition: Option<String>,
    pub gpus_per_worker: u32,
    pub cpus_per_worker: Option<usize>,
    /// Time limit per task, HH:MM:SS (or any form sbatch takes).
    pub time: Option<String>,
    /// Extra `#SBATCH` arguments, passed as given.
    pub sbatch_args: Vec<String>,
    pub device: DeviceSpec,
    pub leases: super::Leases,
}

/// SLURM could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{command} not found: --launcher slurm needs SLURM's client commands (sbatch, squeue, scancel) on PATH")]
    Missing { command: String },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("--sbatch-arg {arg:?}: {reason}")]
    BadArgument { arg: String, reason: &'static str },
}

/// Quotes a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The sbatch script for a sweep's workers.
pub fn script(sweep: &str, store: &str, runs_dir: &Path, exe: &Path, workdir: &Path, options: &SlurmOptions) -> Result<String, SlurmError> {
    for arg in &options.sbatch_args {
        if !arg.starts_with('-') || arg.contains('\n') {
            return Err(SlurmError::BadArgument { arg: arg.clone(), reason: "must be one sbatch option such as --account=proj or --qos=low" });
        }
    }
    let log_dir = runs_dir.join(sweep).join("slurm");
    let mut s = String::from("#!/bin/bash\n");
    let mut directive = |line: String| {
        s.push_str("#SBATCH ");
        s.push_str(&line);
        s.push('\n');
    };
    directive(format!("--job-name=sweep-{sweep}"));
    directive(format!("--array=0-{}", options.workers.max(1) - 1));
    directive(format!("--output={}", log_dir.join("%A_%a.log").display()));
    directive("--ntasks=1".into());
    if let Some(cpus) = options.cpus_per_worker {
        directive(format!("--cpus-per-task={cpus}"));
    }
    if let Some(p) = &options.partition {
        directive(format!("--partition={p}"));
    }
    if options.gpus_per_worker > 0 {
        directive(format!("--gres=gpu:{}", options.gpus_per_worker));
    }
    if let Some(t) = &options.time {
        directive(format!("--time={t}"));
    }
    // Preempted tasks come back; the batch shell (replaced by the worker) gets SIGTERM two
    // minutes before the time limit, so that the worker can give its trial back in time.
    directive("--requeue".into());
    directive("--signal=B:TERM@120".into());
    for arg in &options.sbatch_args {
        directive(arg.clone());
    }
    // With --gres SLURM exposes the task's GPUs as devices 0..G.
    let device = if options.gpus_per_worker > 0 { options.device.with_index(0) } else { options.device };
    s.push_str("set -eu\n");
    s.push_str(&format!("cd {}\n", shell_quote(&workdir.display().to_string())));
    // Values go as `--flag=value`, so that none can read as an option; the store's password
    // never goes into the script (the workers get it from the environment sbatch passes on).
    s.push_str(&format!(
        "exec {} --runs-dir={} --store={} worker --sweep={} --device={} --threads=\"${{SLURM_CPUS_PER_TASK:-1}}\" --events=human {}\n",
        shell_quote(&exe.display().to_string()),
        shell_quote(&runs_dir.display().to_string()),
        shell_quote(&crate::store::redact_url(store)),
        shell_quote(sweep),
        device,
        options.leases.worker_flags().join(" "),
    ));
    Ok(s)
}

fn run(command: &str, args: &[&str]) -> Result<String, SlurmError> {
    run_with_env(command, args, &[])
}

/// Runs a SLURM client command with extra environment variables (never shown in errors).
fn run_with_env(command: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, SlurmError> {
    let out = Command::new(command).args(args).envs(env.iter().copied()).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SlurmError::Missing { command: command.to_string() },
        _ => SlurmError::Failed { command: command.to_string(), stderr: e.to_string() },
    })?;
    if !out.status.success() {
        return Err(SlurmError::Failed {
            command: format!("{command} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Writes the script next to the sweep's runs and submits it; returns (job id, script path).
/// The store's `password`, if any, goes to sbatch in its environment (`PGPASSWORD`), which sbatch
/// passes on to the job's tasks (its default `--export=ALL`): never into the script.
pub fn submit(sweep: &str, script_text: &str, runs_dir: &Path, password: Option<&str>) -> Result<(String, PathBuf), crate::Error> {
    let dir = runs_dir.join(sweep).join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    let path = dir.join(format!("sweep-{sweep}-{}.sbatch", crate::util::now_unix() as u64));
    crate::util::atomic_write(&path, script_text.as_bytes()).map_err(|e| crate::Error::io(&path, e))?;
    let env: Vec<(&str, &str)> = password.map(|p| (crate::store::credentials::PASSWORD_ENV, p)).into_iter().collect();
    let out = run_with_env("sbatch", &["--parsable", &path.display().to_string()], &env).map_err(|e| crate::Error::Usage(e.to_string()))?;
    // --parsable prints "jobid" or "jobid;cluster".
    let job = out.trim().split(';').next().unwrap_or("").to_string();
    if job.is_empty() {
        return Err(crate::Error::Usage(format!("sbatch printed no job id (output: {out:?})")));
    }
    Ok((job, path))
}

/// Submits the script and records the job in the tracker, so that `sweep status` can ask SLURM
/// about it; returns (job id, script path). `store_url` is where the workers find the tracker:
/// its password, if any, reaches them through the environment (see [`submit`]).
pub fn submit_and_record(
    store: &mut dyn Store,
    store_url: &str,
    sweep: &str,
    script_text: &str,
    runs_dir: &Path,
    workers: usize,
) -> crate::Result<(String, PathBuf)> {
    let (_, password) = crate::store::credentials::split_password(store_url);
    let (job, path) = submit(sweep, script_text, runs_dir, password.as_deref())?;
    store.record_job(&JobRow {
        sweep: sweep.to_string(),
        launcher: "slurm".into(),
        job_id: job.clone(),
        workers: workers as i64,
        script: path.display().to_string(),
        submitted: crate::util::now_unix(),
    })?;
    Ok((job, path))
}

/// How waiting for a job ended.
#[derive(Debug, Clone)]
pub struct Waited {
    /// The sweep's trials when the wait ended.
    pub trials: Vec<TrialRow>,
    /// Ctrl-C stopped the wait (the job goes on).
    pub interrupted: bool,
}

/// Follows a submitted job until it leaves SLURM's queue (or Ctrl-C), calling `report` with a
/// progress line whenever it changes: trials done and running, and the array tasks' states.
pub fn wait(store: &dyn Store, sweep: &str, job: &str, mut report: impl FnMut(&str)) -> crate::Result<Waited> {
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let runs = store.trials(&TrialFilter { sweep: Some(sweep.to_string()), status: None })?;
        let states = job_states(job).map_err(|e| crate::Error::Usage(e.to_string()))?;
        let done = runs.iter().filter(|r| r.status.is_final()).count();
        let running = runs.iter().filter(|r| r.status == TrialStatus::Running).count();
        let slurm: Vec<String> = states.iter().map(|(s, n)| format!("{n} {}", s.to_lowercase())).collect();
        let line = format!(
            "[{}] {done}/{} trials done, {running} running; slurm: {}",
            crate::util::format_duration(started.elapsed().as_secs_f64()),
            runs.len(),
            if slurm.is_empty() { "finished".to_string() } else { slurm.join(", ") }
        );
        if line != last {
            report(&line);
            last = line;
        }
        if states.is_empty() {
            return Ok(Waited { trials: runs, interrupted: false });
        }
        if crate::runner::signals::interrupts() > 0 {
            return Ok(Waited { trials: runs, interrupted: true });
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// The states of a job's array tasks still known to the scheduler, with how many are in each
/// (e.g. RUNNING: 2, PENDING: 1). Empty once the job has left the queue.
pub fn job_states(job: &str) -> Result<BTreeMap<String, usize>, SlurmError> {
    let out = run("squeue", &["--noheader", "--array", "--jobs", job, "--format=%T"]).or_else(|e| match e {
        // squeue refuses ids it no longer knows.
        SlurmError::Failed { ref stderr, .. } if stderr.contains("Invalid job id") => Ok(String::new()),
        other => Err(other),
    })?;
    let mut states = BTreeMap::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *states.entry(line.to_string()).or_default() += 1;
    }
    Ok(states)
}

/// One line describing a job for `sweep status`.
pub fn describe(job: &str) -> String {
    match job_states(job) {
        Ok(states) if states.is_empty() => format!("slurm job {job}: no longer in the queue"),
        Ok(states) => {
            let parts: Vec<String> = states.iter().map(|(s, n)| format!("{n} {}", s.to_lowercase())).collect();
            format!("slurm job {job}: {}", parts.join(", "))
        }
        Err(e) => format!("slurm job {job}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_one_worker_per_array_task() {
        let options = SlurmOptions {
            workers: 3,
            partition: Some("gpu".into()),
            gpus_per_worker: 1,
            cpus_per_worker: Some(4),
            time: Some("02:00:00".into()),
            sbatch_args: vec!["--account=vision".into()],
            device: DeviceSpec::Cuda(0),
            leases: crate::runner::Leases { stale_after: 60.0, heartbeat_every: 5.0, max_attempts: 4 },
        };
        let s =
            script("hue", "postgres://u@db:5432/sweeps", Path::new("/shared/runs"), Path::new("/opt/sweep"), Path::new("/home/u/exp dir"), &options)
                .unwrap();
        for line in [
            "#SBATCH --array=0-2",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --time=02:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --account=vision",
            "#SBATCH --requeue",
            "#SBATCH --output=/shared/runs/hue/slurm/%A_%a.log",
            "cd '/home/u/exp dir'",
        ] {
            assert!(s.contains(line), "{line} in\n{s}");
        }
        assert!(s.contains("exec /opt/sweep --runs-dir=/shared/runs --store=postgres://u@db:5432/sweeps worker --sweep=hue --device=cuda:0"), "{s}");
        let bad = SlurmOptions { sbatch_args: vec!["x\n#SBATCH --evil".into()], ..options };
        assert!(script("hue", "s", Path::new("/r"), Path::new("/e"), Path::new("/w"), &bad).is_err());
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a/b"), "/a/b");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
    }
}
