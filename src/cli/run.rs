//! `sweep run` and `sweep worker`: register a sweep's trials and train them, locally in worker
//! processes or as a SLURM job array; or be one of those workers.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::Result;
use clap::{Args, ValueEnum};

use super::{ComputeArgs, Global, limits, usage};
use crate::report;
use crate::runner::worker::{self, EventFormat, WorkerOptions};
use crate::runner::{self, DryRun, Leases, LocalOptions, Sweep, Verdict, slurm};
use crate::store::{self, Reclaim, SweepRegistration, TrialRow};
use crate::study::spec::{Method, SweepSpec};
use crate::train::device::{DeviceSpec, set_cpu_threads};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep file (TOML).
    pub file: PathBuf,
    /// Trials trained at once, each in its own process (1 to 1024). Once 5 workers died within
    /// 2 s of starting, no more are started (the message names the trial they held).
    #[arg(long, default_value_t = 1, value_parser = limits::workers)]
    pub workers: usize,
    /// GPU indices, one worker each (e.g. 0,1); sets CUDA_VISIBLE_DEVICES per worker.
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<usize>>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// A Carvana-layout directory that replaces data.source in every trial.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A setting for every trial, over the file's (e.g. --set train.epochs=3); repeatable. Checked
    /// as the file's keys are, and kept with the sweep file in the tracker.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the expanded trial table and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the trials as JSON instead of a table.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Run failed trials again (they resume from their last checkpoint).
    #[arg(long)]
    pub retry_failed: bool,
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Log lines instead of progress bars.
    #[arg(long)]
    pub plain: bool,
    /// Do not draw the charts at the end.
    #[arg(long)]
    pub no_plot: bool,
    /// Where the workers run: `local` processes, or a `slurm` job array.
    #[arg(long, value_enum, default_value = "local")]
    pub launcher: Launcher,
    /// SLURM: the partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// SLURM: GPUs per worker (`--gres=gpu:G`).
    #[arg(long, default_value_t = 0)]
    pub gpus_per_worker: u32,
    /// SLURM: time limit per worker, HH:MM:SS.
    #[arg(long)]
    pub time: Option<String>,
    /// SLURM: an extra sbatch option, e.g. --sbatch-arg=--account=proj (repeatable).
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// SLURM: wait for the job, showing progress, then print the leaderboard.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Launcher {
    /// Worker processes on this machine.
    Local,
    /// A SLURM job array, one task per worker.
    Slurm,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Only claim trials of this sweep.
    #[arg(long)]
    pub sweep: Option<String>,
    /// Stop after this many trials (at least 1).
    #[arg(long, value_parser = limits::max_trials)]
    pub max_trials: Option<usize>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// How to report progress: human (readable lines) or json (one object per line, for `sweep run`).
    #[arg(long, value_enum, default_value = "human")]
    pub events: EventFormat,
    #[command(flatten)]
    pub lease: LeaseArgs,
}

/// The lease flags `sweep run` passes on to its workers and `sweep worker` takes.
#[derive(Debug, Clone, Copy, Args)]
pub struct LeaseArgs {
    /// A trial whose worker dies this many times in a row, without finishing a new epoch, fails
    /// (1 to 1000).
    #[arg(long, default_value_t = Reclaim::DEFAULT_MAX_ATTEMPTS, value_parser = limits::max_attempts)]
    pub max_attempts: i64,
    /// Seconds without a heartbeat after which a running trial is reclaimed, at once when its
    /// worker's pid is gone on this host (1 to 604800, at least twice --heartbeat-every).
    #[arg(long, default_value_t = 60.0, value_parser = limits::stale_after)]
    pub stale_after: f64,
    /// Seconds between heartbeats (0.1 to 3600).
    #[arg(long, default_value_t = 5.0, value_parser = limits::heartbeat_every)]
    pub heartbeat_every: f64,
}

impl LeaseArgs {
    /// The rules, once `--stale-after` is checked against `--heartbeat-every`.
    fn leases(&self) -> Result<Leases> {
        limits::check_heartbeat(self.stale_after, self.heartbeat_every).map_err(usage)?;
        Ok(Leases { max_attempts: self.max_attempts, stale_after: self.stale_after, heartbeat_every: self.heartbeat_every })
    }
}

/// `sweep run FILE`: validate, register, then train (or print the dry-run table).
pub fn run(g: &Global, args: &RunArgs) -> Result<ExitCode> {
    let leases = args.lease.leases()?;
    let sweep = Sweep::load(&args.file, &args.set, args.data.as_deref(), g.store_location(), g.runs_dir())?;
    let spec = &sweep.spec;
    if let Some(note) = spec.shortfall(sweep.trials.len()) {
        // Beside JSON, on standard error: standard output stays one JSON document.
        if args.json { crate::errln!("note: {note}") } else { crate::outln!("note: {note}") }
    }
    if args.dry_run {
        // A tracker that is not there yet (or holds no such sweep) knows no trial.
        let store = g.open_store().ok();
        let DryRun { known, plan } = sweep.plan(store.as_deref())?;
        if args.json {
            crate::outln!("{}", serde_json::to_string_pretty(&report::dry_run_json(spec, &sweep.trials, &known, &plan))?);
        } else if spec.is_lazy() {
            let cap = spec.run_cap.unwrap_or(0);
            let (setting, asked_from) = match spec.method {
                Method::Nsga2 => ("nsga2.population", "NSGA-II"),
                _ => ("bayes.startup_trials", "TPE"),
            };
            let random = match spec.startup_trials().min(cap) {
                n if n == cap => format!("all {n} are drawn at random ({setting} = {} is not below run_cap)", spec.startup_trials()),
                n => format!("the first {n} are drawn at random"),
            };
            crate::outln!(
                "sweep {} ({}, {}): up to {cap} trials, each asked from {asked_from} when a worker frees up; {random}",
                spec.name,
                spec.method.as_str(),
                report::objectives_said(spec),
            );
            let (extended, kept) = report::continuations(&plan);
            crate::out!("{}", report::extension_notes(&extended, &kept, true, spec.early_terminate.as_ref().map(|e| e.kind())));
        } else {
            crate::out!("{}", report::dry_run(spec, &sweep.trials, &known, &plan));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let device = device_of(args)?;
    // Under SLURM the GPUs are on the compute nodes, not here: the device is checked there.
    let reg = sweep.register((args.launcher == Launcher::Local).then_some(device), args.retry_failed)?;
    let shown = store::redact_url(&sweep.store);
    match &reg.registration {
        SweepRegistration::New if spec.is_lazy() => {
            crate::outln!("sweep {}: {} search of up to {} trials registered in {shown}", spec.name, spec.method.as_str(), spec.run_cap.unwrap_or(0))
        }
        SweepRegistration::New => crate::outln!("sweep {}: {} trials registered in {shown}", spec.name, reg.added.len()),
        SweepRegistration::Unchanged => {
            crate::outln!("sweep {}: {} trials known; resuming ({} new)", spec.name, reg.existing + reg.added.len(), reg.added.len())
        }
        SweepRegistration::SpecChanged { .. } => crate::outln!(
            "sweep {}: the sweep file changed since the last run; {} new trial(s) added ({} already known)",
            spec.name,
            reg.added.len(),
            reg.existing
        ),
    }
    crate::out!("{}", report::extension_notes(&reg.extended, &reg.kept, false, spec.early_terminate.as_ref().map(|e| e.kind())));
    version_note(g, spec);
    if reg.requeued > 0 {
        crate::outln!("retrying {} failed trial(s)", reg.requeued);
    }
    if args.launcher == Launcher::Slurm {
        return run_on_slurm(g, args, &sweep, device, leases);
    }
    let local =
        LocalOptions { workers: args.workers, device, devices: args.devices.clone(), threads: args.compute.threads, leases, plain: args.plain };
    let outcome = sweep.run_local(&local)?;
    if outcome.nothing_ran() {
        crate::outln!("nothing to run: every trial of {} has finished{}", spec.name, outcome.retry_hint());
    }
    let counts: Vec<String> = outcome.counts().iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect();
    crate::outln!("\nsweep {} finished in {}: {}", spec.name, crate::util::format_duration(outcome.elapsed.as_secs_f64()), counts.join(", "));
    for e in &outcome.worker_errors {
        crate::errln!("error: {e}");
    }
    version_note(g, spec);
    if let Some(note) = sweep.cap_note(&outcome) {
        crate::outln!("note: {note}");
    }
    finish(g, args, &sweep, &outcome.trials, sweep.verdict(&outcome))
}

/// Says so when the tracker holds another version of the sweep than this run's file: another
/// `sweep run` of the same name registered a different file since. The workers follow the
/// tracker's version (the last registered), so that is the one named.
fn version_note(g: &Global, spec: &SweepSpec) {
    let Ok(store) = g.open_store() else { return };
    let Ok(info) = store::find_sweep(store.as_ref(), &spec.name) else { return };
    if info.spec_hash == crate::util::sha256_hex(spec.text.as_bytes()) {
        return;
    }
    let cap = crate::study::spec::stored(&info).ok().and_then(|other| other.run_cap).map(|n| format!(", run_cap {n}")).unwrap_or_default();
    crate::errln!(
        "note: another `sweep run` registered a different version of sweep {} (spec {}{cap}) after this one, from another file or an \
         edit of {}: the workers follow that version from then on, not this file; `sweep status {}` shows the sweep as it is",
        spec.name,
        &info.spec_hash[..12.min(info.spec_hash.len())],
        spec.path.display(),
        spec.name
    );
}

/// The device the workers use: `--devices` implies CUDA unless `--device` names a GPU.
fn device_of(args: &RunArgs) -> Result<DeviceSpec> {
    if let Some(devices) = &args.devices {
        if devices.is_empty() {
            return Err(usage("--devices needs at least one GPU index, e.g. --devices 0,1"));
        }
        if !args.compute.device.is_gpu() && args.compute.device != DeviceSpec::Cpu {
            return Err(usage("--devices needs a GPU --device (cuda or vulkan)"));
        }
    }
    Ok(match (&args.devices, args.compute.device) {
        (Some(_), DeviceSpec::Cpu) => DeviceSpec::Cuda(0),
        (_, d) => d,
    })
}

/// The end of a sweep: leaderboard, charts, what kept trials from completing, and the exit code
/// (1 when a trial did not complete or the sweep was interrupted).
fn finish(g: &Global, args: &RunArgs, sweep: &Sweep, runs: &[TrialRow], verdict: Verdict) -> Result<ExitCode> {
    let spec = &sweep.spec;
    if spec.objectives.len() > 1 {
        // Several objectives: the front, as `sweep best` prints it.
        let front = report::front::front_of(runs, &spec.objectives, Some(&spec.name));
        let text = if front.members.is_empty() { format!("{}\n", front.none_reason()) } else { front.text(None) };
        crate::outln!("\n{}", text.trim_end());
    } else {
        crate::outln!("\n{}", report::leaderboard(runs, &spec.metric.name, spec.metric.goal, 10));
    }
    if !args.no_plot && runs.iter().any(|r| r.epochs() > 0) {
        draw_charts(g, &spec.name)?;
    }
    match verdict {
        Verdict::Completed => Ok(ExitCode::SUCCESS),
        Verdict::Interrupted => {
            crate::outln!("interrupted: run the same command to resume");
            Ok(ExitCode::from(1))
        }
        Verdict::Failed(problems) => {
            for p in &problems {
                crate::errln!("{p}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// The sweep's charts at the end of `sweep run`; a chart that cannot be drawn is a warning, not
/// a failure of the sweep.
fn draw_charts(g: &Global, sweep: &str) -> Result<()> {
    let store = g.open_store()?;
    match runner::draw_charts(store.as_ref(), sweep, &g.runs_dir()) {
        Ok(w) => {
            crate::outln!("charts: {}", w.dir.join("index.html").display());
            for e in &w.errors {
                crate::errln!("warning: a chart could not be drawn: {e}");
            }
        }
        Err(e) => crate::errln!("warning: the charts could not be drawn: {e}"),
    }
    Ok(())
}

/// `--launcher slurm`: submit a job array of workers, record it, and with `--wait` follow it.
fn run_on_slurm(g: &Global, args: &RunArgs, sweep: &Sweep, device: DeviceSpec, leases: Leases) -> Result<ExitCode> {
    let spec = &sweep.spec;
    if !store::is_postgres(&sweep.store) {
        crate::errln!(
            "note: the tracker is the SQLite file {}; workers on other nodes need a shared store: \
             use --store postgres://user@host/db for a multi-node cluster",
            sweep.store
        );
    }
    let options = slurm::SlurmOptions {
        workers: args.workers,
        partition: args.partition.clone(),
        gpus_per_worker: args.gpus_per_worker,
        cpus_per_worker: args.compute.threads,
        time: args.time.clone(),
        sbatch_args: args.sbatch_args.clone(),
        device,
        leases,
    };
    let job = sweep.submit(&options)?;
    crate::outln!("submitted slurm job {}: {} worker task(s) for sweep {} ({})", job.job, job.workers, spec.name, job.script.display());
    if !args.wait {
        crate::outln!("follow it with `sweep status {}`", spec.name);
        return Ok(ExitCode::SUCCESS);
    }
    let waited = sweep.wait(&job, |line| crate::outln!("{line}"))?;
    if waited.interrupted {
        crate::outln!("stopped waiting; the job goes on (cancel it with scancel {})", job.job);
        return Ok(ExitCode::from(1));
    }
    finish(g, args, sweep, &waited.trials, sweep.verdict_of_job(&waited.trials))
}

/// `sweep worker`: claim and train trials until none is left.
pub fn worker(g: &Global, args: &WorkerArgs) -> Result<ExitCode> {
    let leases = args.lease.leases()?;
    let threads = args.compute.threads.unwrap_or_else(crate::util::available_cores);
    set_cpu_threads(threads);
    let faults = match std::env::var("SWEEP_FAULT") {
        Ok(spec) => crate::train::Faults::parse(&spec).map_err(usage)?,
        Err(_) => Default::default(),
    };
    let options = WorkerOptions {
        store: g.store_location(),
        sweep: args.sweep.clone(),
        runs_dir: g.runs_dir(),
        device: args.compute.device,
        max_trials: args.max_trials,
        reclaim: leases.reclaim(),
        heartbeat_every: leases.heartbeat_every,
        events: args.events,
        faults,
    };
    let summary = worker::run(&options)?;
    Ok(if summary.failed > 0 || summary.stopped { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
