//! The command line: clap definitions, and one library call per subcommand.
//!
//! This is the edge where typed library errors get their context (`anyhow`), and where results
//! are printed. Each subcommand parses its arguments and calls into the library.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::checkpoint::{CheckpointKind, RunDir};
use crate::config::{Objective, Split};
use crate::data::{self, Augment, show::ShowOptions, synth::SynthSpec};
use crate::device::{DeviceSpec, set_cpu_threads};
use crate::metrics::Goal;
use crate::report;
use crate::scheduler::{self, RunOptions};
use crate::store::{self, RunFilter, RunStatus, Store, StoreError, query::Filter};
use crate::worker::{self, EventFormat, WorkerOptions};

#[derive(Debug, Parser)]
#[command(name = "sweep", version, about = "Hyperparameter sweeps and experiment tracking for U-Net segmentation")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Where runs, checkpoints, plots and the cached synthetic dataset go.
    #[arg(long, global = true, env = "SWEEP_RUNS", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The tracker: a SQLite file (default: <runs-dir>/sweep.db) or a postgres://user@host/db URL.
    #[arg(long, global = true, env = "SWEEP_STORE")]
    pub store: Option<String>,
}

impl Global {
    /// The runs directory as an absolute path: workers and stored checkpoint paths use it.
    fn runs_dir(&self) -> PathBuf {
        std::path::absolute(&self.runs_dir).unwrap_or_else(|_| self.runs_dir.clone())
    }

    fn store_location(&self) -> String {
        self.store.clone().unwrap_or_else(|| self.runs_dir().join("sweep.db").display().to_string())
    }

    fn open_store(&self) -> Result<Box<dyn Store>> {
        Ok(store::open(&self.store_location(), false)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Expand a sweep file into trials and train them in parallel workers (resumable).
    Run(RunArgs),
    /// Claim and train trials from the tracker until none is left (what `run` starts per worker).
    Worker(WorkerArgs),
    /// Counts per status, the running trials and the best so far.
    Status(StatusArgs),
    /// List runs.
    Ls(LsArgs),
    /// One run: parameters, per-epoch metrics, checkpoints, error.
    Show(ShowRunArgs),
    /// The best run by a metric.
    Best(BestArgs),
    /// Runs side by side: the parameters that differ, then their metrics.
    Compare(CompareArgs),
    /// Every run with its parameters and per-epoch metrics, as CSV or JSON.
    Export(ExportArgs),
    /// Rebuild a run's model from its directory and evaluate it.
    Eval(EvalArgs),
    /// Predict masks for images with a run's model.
    Predict(PredictArgs),
    /// Draw a sweep's charts (PNG) and an index.html, or one run's two-panel chart.
    Plot(PlotArgs),
    /// Generate and inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// cpu, cuda[:K] (needs the `cuda` feature) or vulkan[:K] (needs the `vulkan` feature).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// CPU threads for tensor operations (default: all cores, divided among workers).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep file (TOML).
    pub file: PathBuf,
    /// Trials trained at once, each in its own process.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// GPU indices, one worker each (e.g. 0,1); sets CUDA_VISIBLE_DEVICES per worker.
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<usize>>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// A Carvana-layout directory that replaces data.source in every trial.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print the expanded trial table and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Run failed trials again (they resume from their last checkpoint).
    #[arg(long)]
    pub retry_failed: bool,
    /// A trial whose worker dies this many times in a row, without finishing an epoch, fails.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: i64,
    /// Seconds without a heartbeat after which a running trial is reclaimed.
    #[arg(long, default_value_t = 60.0)]
    pub stale_after: f64,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5.0)]
    pub heartbeat_every: f64,
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
    Local,
    Slurm,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Only claim trials of this sweep.
    #[arg(long)]
    pub sweep: Option<String>,
    /// Stop after this many trials.
    #[arg(long)]
    pub max_trials: Option<usize>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[arg(long, value_enum, default_value = "human")]
    pub events: EventFormat,
    #[arg(long, default_value_t = 60.0)]
    pub stale_after: f64,
    #[arg(long, default_value_t = 5.0)]
    pub heartbeat_every: f64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A sweep name (default: every sweep).
    pub sweep: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(long)]
    pub sweep: Option<String>,
    /// queued, running, completed, failed, pruned or diverged.
    #[arg(long)]
    pub status: Option<String>,
    /// Sort by a metric (best first) or a field, e.g. val_iou or train.learning_rate.
    #[arg(long)]
    pub sort: Option<String>,
    /// A filter, e.g. "train.learning_rate < 0.01 and val_iou > 0.9".
    #[arg(long = "where")]
    pub filter: Option<String>,
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct ShowRunArgs {
    pub run: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GoalArg {
    Max,
    Min,
}

#[derive(Debug, Args)]
pub struct BestArgs {
    /// loss, dice, iou or fg_iou (val_ unless --split or a split_ prefix says otherwise).
    #[arg(long, default_value = "iou")]
    pub metric: String,
    #[arg(long)]
    pub sweep: Option<String>,
    /// train or val.
    #[arg(long)]
    pub split: Option<String>,
    /// Override the direction inferred from the name (loss: min; dice, iou, fg_iou: max).
    #[arg(long, value_enum)]
    pub goal: Option<GoalArg>,
    /// Reload the best checkpoint and evaluate it again.
    #[arg(long)]
    pub eval: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub sweep: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run id (e.g. hue-3) or a run directory.
    pub run: String,
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Evaluate on every image of this Carvana-layout directory instead of the run's validation split.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A run id (e.g. hue-3) or a run directory.
    pub run: String,
    /// Images to segment.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output directory for <name>_mask.png and <name>_overlay.png.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The sweep (default: the only one, or the most recent).
    pub sweep: Option<String>,
    /// Output directory (default: <runs-dir>/<sweep>/plots).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only the tutorial's two-panel chart (dice loss and loss, train vs validation) of this run.
    #[arg(long)]
    pub run: Option<String>,
    /// Validation images in the prediction grid.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the deterministic synthetic dataset in the Carvana layout.
    Synth(SynthArgs),
    /// Write a PNG of samples, masks, overlays and augmentations, and print dataset statistics.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory (must not exist yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = SynthSpec::default().count)]
    pub count: usize,
    /// Image size: WIDTHxHEIGHT (e.g. 240x160) or one side for square images.
    #[arg(long, default_value = "240x160", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Generator seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A directory in the Carvana layout, or `synthetic` for the embedded set.
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    /// Where to write the PNG (default: <runs-dir>/data/show.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How many samples to show.
    #[arg(long, default_value_t = 6)]
    pub samples: usize,
    /// Hue rotation shown in the augmentation row, in [0, 0.5].
    #[arg(long, default_value_t = Augment::default().hue_delta)]
    pub hue_delta: f32,
    /// Width shift range shown, in [0, 1).
    #[arg(long, default_value_t = Augment::default().width_shift_range)]
    pub width_shift_range: f32,
    /// Height shift range shown, in [0, 1).
    #[arg(long, default_value_t = Augment::default().height_shift_range)]
    pub height_shift_range: f32,
    /// Seed of the random augmentation draw shown last.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Parses `240x160` (width x height) or `128` (square).
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("{s:?} is not a size; write WIDTHxHEIGHT (e.g. 240x160) or one number"));
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Ok((parse(w)?, parse(h)?)),
        None => {
            let side = parse(s)?;
            Ok((side, side))
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    match cli.command {
        Command::Run(args) => cmd_run(&g, &args),
        Command::Worker(args) => cmd_worker(&g, &args),
        Command::Status(args) => cmd_status(&g, &args),
        Command::Ls(args) => cmd_ls(&g, &args),
        Command::Show(args) => cmd_show(&g, &args),
        Command::Best(args) => cmd_best(&g, &args),
        Command::Compare(args) => cmd_compare(&g, &args),
        Command::Export(args) => cmd_export(&g, &args),
        Command::Eval(args) => cmd_eval(&g, &args),
        Command::Predict(args) => cmd_predict(&g, &args),
        Command::Plot(args) => cmd_plot(&g, &args),
        Command::Data(DataCommand::Synth(args)) => data_synth(&args),
        Command::Data(DataCommand::Show(args)) => data_show(&g, &args),
    }
}

/// The exit code for an error: 2 when the user's input was wrong, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::Error>() {
            return e.exit_code() as u8;
        }
        if let Some(e) = cause.downcast_ref::<data::DataError>() {
            return if e.is_bad_input() { 2 } else { 1 };
        }
        if let Some(e) = cause.downcast_ref::<crate::train::TrainError>() {
            return if e.is_bad_input() { 2 } else { 1 };
        }
        if cause.downcast_ref::<crate::device::DeviceError>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return if e.is_bad_input() { 2 } else { 1 };
        }
        if cause.downcast_ref::<crate::spec::SpecError>().is_some() || cause.downcast_ref::<UsageError>().is_some() {
            return 2;
        }
    }
    1
}

/// A command-line value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn cmd_run(g: &Global, args: &RunArgs) -> Result<ExitCode> {
    let spec = crate::spec::load(&args.file)?;
    let data_override = args.data.as_ref().map(|d| d.display().to_string());
    let trials = spec.trials(data_override.as_deref());
    let runs_dir = g.runs_dir();
    if args.dry_run {
        print_dry_run(g, &spec, &trials);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(devices) = &args.devices {
        if devices.is_empty() {
            return Err(usage("--devices needs at least one GPU index, e.g. --devices 0,1"));
        }
        if !args.compute.device.is_gpu() && args.compute.device != DeviceSpec::Cpu {
            return Err(usage("--devices needs a GPU --device (cuda or vulkan)"));
        }
    }
    let device = match (&args.devices, args.compute.device) {
        (Some(_), DeviceSpec::Cpu) => DeviceSpec::Cuda(0),
        (_, d) => d,
    };
    // Check the device here once, so that a missing GPU is one clear error, not one per worker.
    // (Under SLURM the GPUs are on the compute nodes, not here.)
    if args.launcher == Launcher::Local {
        device.open()?;
    }
    scheduler::prepare_data(&trials, &runs_dir).context("preparing the dataset")?;
    let store_location = g.store_location();
    let reg = scheduler::register(&spec, &trials, &store_location, args.retry_failed)?;
    match &reg.registration {
        store::SweepRegistration::New => println!("sweep {}: {} trials registered in {store_location}", spec.name, reg.added.len()),
        store::SweepRegistration::Unchanged => {
            println!("sweep {}: {} trials known; resuming ({} new)", spec.name, reg.existing + reg.added.len(), reg.added.len())
        }
        store::SweepRegistration::SpecChanged { .. } => println!(
            "sweep {}: the sweep file changed since the last run; {} new trial(s) added ({} already known)",
            spec.name,
            reg.added.len(),
            reg.existing
        ),
    }
    if reg.requeued > 0 {
        println!("retrying {} failed trial(s)", reg.requeued);
    }
    if args.launcher == Launcher::Slurm {
        return run_on_slurm(g, args, &spec, &store_location, device);
    }
    let options = RunOptions {
        store: store_location,
        runs_dir: runs_dir.clone(),
        workers: args.workers.max(1),
        device,
        devices: args.devices.clone(),
        threads: args.compute.threads,
        retry_failed: args.retry_failed,
        max_attempts: args.max_attempts.max(1),
        stale_after: args.stale_after,
        heartbeat_every: args.heartbeat_every,
        plain: args.plain,
    };
    let outcome = scheduler::run(&spec, &options)?;
    if reg.added.is_empty() && reg.requeued == 0 && outcome.runs.iter().all(|r| r.status.is_final()) && outcome.elapsed.as_secs_f64() < 1.0 {
        let failed = outcome.runs.iter().filter(|r| r.status == RunStatus::Failed).count();
        let retry = if failed > 0 { format!(" ({failed} failed: --retry-failed runs them again)") } else { String::new() };
        println!("nothing to run: every trial of {} has finished{retry}", spec.name);
    }
    let counts: Vec<String> = outcome.counts().iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect();
    println!("\nsweep {} finished in {}: {}", spec.name, crate::util::format_duration(outcome.elapsed.as_secs_f64()), counts.join(", "));
    for e in &outcome.worker_errors {
        eprintln!("error: {e}");
    }
    println!("\n{}", report::leaderboard(&outcome.runs, &spec.metric.name, spec.metric.goal, 10));
    if !args.no_plot && outcome.runs.iter().any(|r| r.epochs() > 0) {
        draw_charts(g, &spec.name)?;
    }
    if outcome.interrupted {
        println!("interrupted: run the same command to resume");
        return Ok(ExitCode::from(1));
    }
    let unfinished: Vec<&str> = outcome.runs.iter().filter(|r| !r.status.is_final()).map(|r| r.id.as_str()).collect();
    if !unfinished.is_empty() {
        eprintln!(
            "{} trial(s) did not run to the end ({}): the workers stopped early; see {}",
            unfinished.len(),
            unfinished.join(", "),
            runs_dir.join(&spec.name).join("logs").display()
        );
        return Ok(ExitCode::from(1));
    }
    if outcome.any_failed() {
        let failed: Vec<String> = outcome
            .runs
            .iter()
            .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::Diverged))
            .map(|r| format!("{} ({})", r.id, r.status.as_str()))
            .collect();
        if !failed.is_empty() {
            eprintln!("{} trial(s) did not complete: {}; see `sweep show RUN`", failed.len(), failed.join(", "));
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The sweep's charts at the end of `sweep run`; a chart that cannot be drawn is a warning, not
/// a failure of the sweep.
fn draw_charts(g: &Global, sweep: &str) -> Result<()> {
    let store = g.open_store()?;
    let cpu = DeviceSpec::Cpu.open()?;
    match crate::plot::plot_sweep(store.as_ref(), sweep, &g.runs_dir(), None, &cpu, 4) {
        Ok(w) => {
            println!("charts: {}", w.dir.join("index.html").display());
            for e in &w.errors {
                eprintln!("warning: a chart could not be drawn: {e}");
            }
        }
        Err(e) => eprintln!("warning: the charts could not be drawn: {e}"),
    }
    Ok(())
}

fn run_on_slurm(g: &Global, args: &RunArgs, spec: &crate::spec::SweepSpec, store_location: &str, device: DeviceSpec) -> Result<ExitCode> {
    let runs_dir = g.runs_dir();
    if !store::is_postgres(store_location) {
        eprintln!(
            "note: the tracker is the SQLite file {store_location}; workers on other nodes need a shared store: \
             use --store postgres://user@host/db for a multi-node cluster"
        );
    }
    let options = crate::slurm::SlurmOptions {
        workers: args.workers.max(1),
        partition: args.partition.clone(),
        gpus_per_worker: args.gpus_per_worker,
        cpus_per_worker: args.compute.threads,
        time: args.time.clone(),
        sbatch_args: args.sbatch_args.clone(),
        device,
        stale_after: args.stale_after,
        heartbeat_every: args.heartbeat_every,
    };
    let exe = std::env::current_exe().context("locating the sweep binary")?;
    let workdir = std::env::current_dir().context("reading the working directory")?;
    let script = crate::slurm::script(&spec.name, store_location, &runs_dir, &exe, &workdir, &options).map_err(|e| usage(e.to_string()))?;
    let (job, path) = crate::slurm::submit(&spec.name, &script, &runs_dir)?;
    let mut store = store::open(store_location, false)?;
    store.record_job(&store::JobRow {
        sweep: spec.name.clone(),
        launcher: "slurm".into(),
        job_id: job.clone(),
        workers: options.workers as i64,
        script: path.display().to_string(),
        submitted: crate::util::now_unix(),
    })?;
    println!("submitted slurm job {job}: {} worker task(s) for sweep {} ({})", options.workers, spec.name, path.display());
    if !args.wait {
        println!("follow it with `sweep status {}`", spec.name);
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let runs = store.runs(&RunFilter { sweep: Some(spec.name.clone()), status: None })?;
        let states = crate::slurm::job_states(&job).map_err(|e| usage(e.to_string()))?;
        let done = runs.iter().filter(|r| r.status.is_final()).count();
        let running = runs.iter().filter(|r| r.status == RunStatus::Running).count();
        let slurm: Vec<String> = states.iter().map(|(s, n)| format!("{n} {}", s.to_lowercase())).collect();
        let line = format!(
            "[{}] {done}/{} trials done, {running} running; slurm: {}",
            crate::util::format_duration(started.elapsed().as_secs_f64()),
            runs.len(),
            if slurm.is_empty() { "finished".to_string() } else { slurm.join(", ") }
        );
        if line != last {
            println!("{line}");
            last = line;
        }
        if states.is_empty() {
            println!("\n{}", report::leaderboard(&runs, &spec.metric.name, spec.metric.goal, 10));
            if !args.no_plot && runs.iter().any(|r| r.epochs() > 0) {
                draw_charts(g, &spec.name)?;
            }
            let unfinished = runs.len() - done;
            if unfinished > 0 {
                eprintln!("the job ended with {unfinished} trial(s) unfinished; submit again to resume them");
                return Ok(ExitCode::from(1));
            }
            let failed = runs.iter().any(|r| matches!(r.status, RunStatus::Failed | RunStatus::Diverged));
            return Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        if crate::signals::interrupts() > 0 {
            println!("stopped waiting; the job goes on (cancel it with scancel {job})");
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

fn print_dry_run(g: &Global, spec: &crate::spec::SweepSpec, trials: &[crate::spec::Trial]) {
    let known: std::collections::HashMap<String, (String, RunStatus)> = g
        .open_store()
        .ok()
        .and_then(|s| s.runs(&RunFilter { sweep: Some(spec.name.clone()), status: None }).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.config_hash.clone(), (r.id, r.status)))
        .collect();
    let keys: Vec<String> = spec.parameters.iter().map(|p| p.key.clone()).collect();
    let mut t = report::Table::new(["#", "run", "status"].into_iter().map(String::from).chain(keys.iter().cloned()).chain(["config".to_string()]));
    for (i, trial) in trials.iter().enumerate() {
        let hash = trial.config.hash();
        let (id, status) = known.get(&hash).map(|(id, s)| (id.clone(), s.as_str().to_string())).unwrap_or(("-".into(), "new".into()));
        let mut row = vec![(i + 1).to_string(), id, status];
        row.extend(keys.iter().map(|k| trial.params.get(k).map(report::fmt_param).unwrap_or_else(|| "-".into())));
        row.push(hash[..10].to_string());
        t.row(row);
    }
    println!("sweep {} ({:?}, {} trial(s), metric {} {})", spec.name, spec.method, trials.len(), spec.metric.name, spec.metric.goal.as_str());
    print!("{}", t.render());
}

fn cmd_worker(g: &Global, args: &WorkerArgs) -> Result<ExitCode> {
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
        stale_after: args.stale_after,
        heartbeat_every: args.heartbeat_every,
        events: args.events,
        faults,
    };
    let summary = worker::run(&options)?;
    Ok(if summary.failed > 0 || summary.stopped { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn cmd_status(g: &Global, args: &StatusArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let sweeps = store.sweeps()?;
    let selected: Vec<_> = match &args.sweep {
        Some(name) => {
            let found: Vec<_> = sweeps.iter().filter(|s| &s.name == name).cloned().collect();
            if found.is_empty() {
                let names: Vec<&str> = sweeps.iter().map(|s| s.name.as_str()).collect();
                return Err(StoreError::UnknownSweep {
                    name: name.clone(),
                    suggestions: crate::util::did_you_mean(name, names).map(|s| vec![s.to_string()]).unwrap_or_default(),
                }
                .into());
            }
            found
        }
        None => sweeps,
    };
    if selected.is_empty() {
        println!("no sweep in {} yet", store.location());
    }
    let now = crate::util::now_unix();
    for sweep in selected {
        let runs = store.runs(&RunFilter { sweep: Some(sweep.name.clone()), status: None })?;
        let counts: Vec<String> = RunStatus::ALL.iter().filter_map(|s| sweep.counts.get(s.as_str()).map(|n| format!("{n} {}", s.as_str()))).collect();
        println!("sweep {}: {} trial(s): {}", sweep.name, runs.len(), counts.join(", "));
        let objective = store.run_config(&runs.first().map(|r| r.id.clone()).unwrap_or_default()).map(|c| c.metric).unwrap_or_default();
        let running: Vec<_> = runs.iter().filter(|r| r.status == RunStatus::Running).collect();
        if !running.is_empty() {
            let mut t = report::Table::new(["running", "epochs", "host", "pid", "heartbeat", "params"]);
            for r in running {
                let age = r.heartbeat.map(|h| format!("{} ago", crate::util::format_duration(now - h))).unwrap_or_else(|| "-".into());
                t.row(vec![
                    r.id.clone(),
                    r.epochs().to_string(),
                    r.host.clone().unwrap_or_default(),
                    r.pid.map(|p| p.to_string()).unwrap_or_default(),
                    age,
                    crate::progress::short_params(&r.params),
                ]);
            }
            print!("{}", t.render());
        }
        for job in store.jobs(Some(&sweep.name))? {
            println!("{}", crate::slurm::describe(&job.job_id));
        }
        match runs.iter().filter_map(|r| r.best(&objective.name, objective.goal).map(|b| (r, b))).max_by(|a, b| {
            let ord = a.1.0.partial_cmp(&b.1.0).unwrap_or(std::cmp::Ordering::Equal);
            if objective.goal == Goal::Maximize { ord } else { ord.reverse() }
        }) {
            Some((r, (v, e))) => {
                println!("best so far: {} {} = {} (epoch {e}) {}", r.id, objective.name, report::fmt_num(v), crate::progress::short_params(&r.params))
            }
            None => println!("best so far: none yet"),
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_ls(g: &Global, args: &LsArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let status = match &args.status {
        Some(s) => Some(
            RunStatus::parse(s).ok_or_else(|| usage(format!("--status {s}: expected one of {}", RunStatus::ALL.map(|s| s.as_str()).join(", "))))?,
        ),
        None => None,
    };
    let mut runs = store.runs(&RunFilter { sweep: args.sweep.clone(), status })?;
    let keys = report::param_keys(&runs);
    let filter = args.filter.as_deref().map(|text| Filter::parse(text).map_err(|e| usage(format!("--where: {e}")))).transpose()?;
    if let Some(filter) = &filter {
        for f in filter.fields() {
            if !store::query::is_known_field(f, &keys) {
                return Err(usage(format!(
                    "--where: unknown field {f:?}; use a setting such as train.learning_rate{}, a metric such as val_iou or final_val_loss, \
                     or one of id, sweep, status, attempt, epochs, seed, host",
                    if keys.is_empty() { String::new() } else { format!(" (swept: {})", keys.join(", ")) }
                )));
            }
        }
    }
    if let Some(key) = &args.sort
        && !store::query::is_known_field(key, &keys)
    {
        return Err(usage(format!("--sort: unknown field {key:?}; use a metric such as val_iou or a setting such as train.learning_rate")));
    }
    // Settings that were not swept are read from each run's resolved config, only when asked for.
    let wanted: Vec<&str> = filter.iter().flat_map(|f| f.fields()).chain(args.sort.as_deref()).filter(|f| store::is_setting(f)).collect();
    if !wanted.is_empty() {
        for run in &mut runs {
            if wanted.iter().all(|k| run.params.contains_key(*k)) {
                continue;
            }
            let settings = store::settings_of(&store.run_config(&run.id)?);
            run.settings.extend(wanted.iter().filter_map(|k| settings.get(*k).map(|v| (k.to_string(), v.clone()))));
        }
    }
    if let Some(filter) = &filter {
        runs.retain(|r| filter.matches(r));
    }
    if let Some(key) = &args.sort {
        let goal = Goal::for_metric(key);
        let is_metric = store::query::is_metric(key);
        runs.sort_by(|a, b| {
            let (va, vb) = (store::query::field(a, key), store::query::field(b, key));
            let ord = match (&va, &vb) {
                (Some(store::query::Value::Num(x)), Some(store::query::Value::Num(y))) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
                (Some(x), Some(y)) => x.display().cmp(&y.display()),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            if is_metric && goal == Goal::Maximize { ord.reverse() } else { ord }
        });
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
    } else if args.csv {
        write!(out, "{}", report::runs_csv(&runs))?;
    } else if runs.is_empty() {
        writeln!(out, "no runs match")?;
    } else {
        write!(out, "{}", report::runs_table(&runs))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_show(g: &Global, args: &ShowRunArgs) -> Result<ExitCode> {
    store::validate_run_id(&args.run)?;
    let store = g.open_store()?;
    let run = store.run(&args.run)?;
    let config = store.run_config(&args.run)?;
    let text = report::show_run(&run, &store.metrics(&args.run)?, &store.checkpoints(&args.run)?, &config.metric);
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `--metric iou --split val` → `val_iou`; `--metric train_loss` stays.
fn metric_name(metric: &str, split: Option<&str>) -> Result<String> {
    let name = match (Objective::parse_name(metric), split) {
        (Some(_), None) => metric.to_string(),
        (Some(_), Some(s)) => return Err(usage(format!("--metric {metric} already names its split; drop --split {s}"))),
        (None, s) => {
            let split = match s {
                None => Split::Val,
                Some(s) => Split::parse(s).ok_or_else(|| usage(format!("--split {s}: expected train or val")))?,
            };
            format!("{}_{metric}", split.as_str())
        }
    };
    if Objective::parse_name(&name).is_none() {
        return Err(usage(format!("--metric {metric}: expected loss, dice, iou or fg_iou (optionally prefixed train_ or val_)")));
    }
    Ok(name)
}

fn cmd_best(g: &Global, args: &BestArgs) -> Result<ExitCode> {
    let metric = metric_name(&args.metric, args.split.as_deref())?;
    let goal = match args.goal {
        Some(GoalArg::Max) => Goal::Maximize,
        Some(GoalArg::Min) => Goal::Minimize,
        None => Goal::for_metric(&metric),
    };
    let store = g.open_store()?;
    if let Some(s) = &args.sweep
        && !store.sweeps()?.iter().any(|x| &x.name == s)
    {
        return Err(StoreError::UnknownSweep { name: s.clone(), suggestions: Vec::new() }.into());
    }
    let Some(best) = store.best(&metric, goal, args.sweep.as_deref())? else {
        bail!("no run has a {metric} value yet{}", args.sweep.as_ref().map(|s| format!(" in sweep {s}")).unwrap_or_default());
    };
    let checkpoints = store.checkpoints(&best.run.id)?;
    let best_ckpt = checkpoints.iter().find(|c| c.kind == "best").cloned();
    // A run keeps two checkpoints: its objective's best epoch and its last. For another metric,
    // the last one is the right one when that is the metric's best epoch.
    let last_is_it =
        checkpoints.iter().any(|c| c.kind == "last" && c.epoch == best.epoch) && best_ckpt.as_ref().is_none_or(|c| c.epoch != best.epoch);
    let kind = if last_is_it { CheckpointKind::Last } else { CheckpointKind::Best };
    let evaluation = if args.eval {
        set_cpu_threads(args.compute.threads.unwrap_or_else(crate::util::available_cores));
        let device = args.compute.device.open()?;
        let run_dir = worker::run_dir(&g.runs_dir(), &best.run.sweep, &best.run.id);
        let (config, model, state) = crate::train::load_model(&run_dir, kind, &device)?;
        let crate::train::DataSplit { samples, val, .. } = crate::train::load_split(&config, &g.runs_dir())?;
        let loader = data::Loader::eval(samples, val, config.train.batch_size, config.augment.rescale);
        let metrics = crate::train::evaluate(&model, &loader, &device);
        let epoch = if last_is_it { state.epochs_done } else { state.best.map(|b| b.epoch).unwrap_or(0) };
        Some((metrics, epoch))
    } else {
        None
    };
    if args.json {
        let mut v = serde_json::json!({
            "run": best.run.id,
            "sweep": best.run.sweep,
            "status": best.run.status,
            "metric": metric,
            "goal": goal.as_str(),
            "value": best.value,
            "epoch": best.epoch,
            "params": best.run.params,
            "metrics": best.run.metrics,
            "checkpoint": best_ckpt,
        });
        if let Some((m, epoch)) = &evaluation {
            v["eval"] = serde_json::json!({"checkpoint_epoch": epoch, "loss": report::json_number(m.loss), "dice": report::json_number(m.dice), "iou": report::json_number(m.iou), "fg_iou": report::json_number(m.fg_iou)});
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("best run     {} (sweep {}, {})", best.run.id, best.run.sweep, best.run.status.as_str());
    println!("{metric:<12} {} at epoch {} ({})", report::fmt_num(best.value), best.epoch, goal.as_str());
    for (i, (k, v)) in best.run.params.iter().enumerate() {
        println!("{:<12} {k} = {}", if i == 0 { "params" } else { "" }, report::fmt_param(v));
    }
    if let Some(c) = &best_ckpt {
        println!("checkpoint   {} (epoch {})", c.path, c.epoch);
    }
    println!();
    print!("{}", report::compare(std::slice::from_ref(&best.run)).split("\n\n").nth(1).unwrap_or(""));
    if let Some((m, epoch)) = evaluation {
        println!("\nre-evaluated the {} checkpoint (epoch {epoch}) on the validation split:", kind.as_str());
        if epoch as i64 != best.epoch {
            println!(
                "(the run keeps checkpoints of its objective's best epoch and of its last epoch; {metric}'s best epoch {} has none)",
                best.epoch
            );
        }
        println!(
            "loss {}  dice {}  iou {}  fg_iou {}",
            report::fmt_num(m.loss),
            report::fmt_num(m.dice),
            report::fmt_num(m.iou),
            report::fmt_num(m.fg_iou)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_compare(g: &Global, args: &CompareArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let runs: Vec<_> = args
        .runs
        .iter()
        .map(|id| {
            store::validate_run_id(id)?;
            let mut run = store.run(id)?;
            run.settings = store::settings_of(&store.run_config(id)?);
            Ok::<_, store::StoreError>(run)
        })
        .collect::<Result<_, _>>()?;
    print!("{}", report::compare(&runs));
    Ok(ExitCode::SUCCESS)
}

fn cmd_export(g: &Global, args: &ExportArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let runs = store.runs(&RunFilter { sweep: args.sweep.clone(), status: None })?;
    let with_metrics: Vec<_> = runs.into_iter().map(|r| store.metrics(&r.id).map(|m| (r, m))).collect::<Result<_, _>>()?;
    let text = match args.format {
        ExportFormat::Csv => report::export_csv(&with_metrics),
        ExportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report::export_json(&with_metrics))?),
    };
    match &args.out {
        Some(path) => {
            crate::util::atomic_write(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} runs to {}", with_metrics.len(), path.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A run given on the command line: a run directory, or a run id looked up in the tracker (or,
/// without one, under the runs directory).
fn resolve_run_dir(g: &Global, run: &str) -> Result<RunDir> {
    let path = Path::new(run);
    if path.join("config.json").is_file() {
        return Ok(RunDir::new(path));
    }
    store::validate_run_id(run).map_err(|_| usage(format!("{run}: neither a run directory (no config.json) nor a run id")))?;
    let runs_dir = g.runs_dir();
    if let Ok(store) = g.open_store() {
        match store.run(run) {
            Ok(row) => return Ok(worker::run_dir(&runs_dir, &row.sweep, &row.id)),
            Err(e @ StoreError::UnknownRun { .. }) => return Err(e.into()),
            Err(_) => {}
        }
    }
    let found =
        std::fs::read_dir(&runs_dir).ok().and_then(|entries| entries.flatten().map(|e| e.path().join(run)).find(|p| p.join("config.json").is_file()));
    found.map(RunDir::new).ok_or_else(|| usage(format!("no run {run:?} under {}", runs_dir.display())))
}

fn checkpoint_kind(s: &str) -> Result<CheckpointKind> {
    CheckpointKind::parse(s).ok_or_else(|| usage(format!("--checkpoint {s}: expected best or last")))
}

fn cmd_eval(g: &Global, args: &EvalArgs) -> Result<ExitCode> {
    let kind = checkpoint_kind(&args.checkpoint)?;
    set_cpu_threads(args.compute.threads.unwrap_or_else(crate::util::available_cores));
    let device = args.compute.device.open()?;
    let run = resolve_run_dir(g, &args.run)?;
    let (config, model, state) = crate::train::load_model(&run, kind, &device)?;
    let [h, w] = config.data.image_size;
    let (samples, indices, what) = match &args.data {
        Some(dir) => {
            let samples = data::cached(dir, Some((h as u32, w as u32)))?;
            let all: Vec<usize> = (0..samples.len()).collect();
            (samples, all, format!("every image of {}", dir.display()))
        }
        None => {
            let crate::train::DataSplit { samples, val, .. } = crate::train::load_split(&config, &g.runs_dir())?;
            (samples, val, "the run's validation split".to_string())
        }
    };
    let n = indices.len();
    let started = Instant::now();
    let loader = data::Loader::eval(samples, indices, config.train.batch_size, config.augment.rescale);
    let m = crate::train::evaluate(&model, &loader, &device);
    println!(
        "{} checkpoint `{}` (epoch {}) on {what} ({n} images, {:.1}s)",
        run.root.display(),
        kind.as_str(),
        state.epochs_done,
        started.elapsed().as_secs_f64()
    );
    println!("loss     {}", report::fmt_num(m.loss));
    println!("dice     {}", report::fmt_num(m.dice));
    println!("iou      {}", report::fmt_num(m.iou));
    println!("fg_iou   {}", report::fmt_num(m.fg_iou));
    Ok(ExitCode::SUCCESS)
}

fn cmd_predict(g: &Global, args: &PredictArgs) -> Result<ExitCode> {
    let kind = checkpoint_kind(&args.checkpoint)?;
    // Every input is checked before the model loads, so a typo costs nothing.
    if let Some(missing) = args.images.iter().find(|p| !p.is_file()) {
        return Err(usage(format!("{}: no such image file; name JPEG or PNG files", missing.display())));
    }
    set_cpu_threads(args.compute.threads.unwrap_or_else(crate::util::available_cores));
    let device = args.compute.device.open()?;
    let run = resolve_run_dir(g, &args.run)?;
    let (config, model, _) = crate::train::load_model(&run, kind, &device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let predictor = crate::predict::Predictor::new(model, &config, device);
    for image in &args.images {
        let written = predictor.predict_file(image, &args.out)?;
        println!("{} -> {}, {} ({:.1}% car)", image.display(), written.mask.display(), written.overlay.display(), written.foreground * 100.0);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_plot(g: &Global, args: &PlotArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    if let Some(run) = &args.run {
        store::validate_run_id(run)?;
        let row = store.run(run)?;
        let out = args.out.clone().unwrap_or_else(|| g.runs_dir().join(&row.sweep).join("plots"));
        let path = crate::plot::plot_run(store.as_ref(), run, &out)?;
        println!("wrote {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let sweeps = store.sweeps()?;
    let sweep = match &args.sweep {
        Some(name) => {
            if !sweeps.iter().any(|s| &s.name == name) {
                let names: Vec<&str> = sweeps.iter().map(|s| s.name.as_str()).collect();
                return Err(StoreError::UnknownSweep {
                    name: name.clone(),
                    suggestions: crate::util::did_you_mean(name, names).map(|s| vec![s.to_string()]).unwrap_or_default(),
                }
                .into());
            }
            name.clone()
        }
        None => sweeps
            .iter()
            .max_by(|a, b| a.updated.total_cmp(&b.updated))
            .map(|s| s.name.clone())
            .ok_or_else(|| usage("no sweep in the tracker yet; run one first"))?,
    };
    set_cpu_threads(args.compute.threads.unwrap_or_else(crate::util::available_cores));
    let device = args.compute.device.open()?;
    let started = Instant::now();
    let written = crate::plot::plot_sweep(store.as_ref(), &sweep, &g.runs_dir(), args.out.as_deref(), &device, args.samples)?;
    for f in &written.files {
        println!("wrote {}", f.display());
    }
    println!("{} files in {:.1}s", written.files.len(), started.elapsed().as_secs_f64());
    for e in &written.errors {
        eprintln!("error: {e}");
    }
    Ok(if written.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn data_synth(args: &SynthArgs) -> Result<ExitCode> {
    let spec = SynthSpec { count: args.count, width: args.size.0, height: args.size.1, seed: args.seed };
    let started = Instant::now();
    data::synth::write(&spec, &args.out)?;
    println!(
        "wrote {} synthetic images ({}x{}, seed {}) to {} in {:.1}s",
        spec.count,
        spec.width,
        spec.height,
        spec.seed,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Resolves `--data`: `synthetic` (generated into the runs directory on first use) or a directory.
fn resolve_data(g: &Global, data: &str) -> Result<(PathBuf, String)> {
    if data == "synthetic" {
        let spec = SynthSpec::default();
        let dir = data::synth::ensure(&g.runs_dir(), &spec).context("generating the synthetic dataset")?;
        Ok((dir, format!("synthetic ({} images, seed {})", spec.count, spec.seed)))
    } else {
        Ok((PathBuf::from(data), data.to_string()))
    }
}

fn data_show(g: &Global, args: &ShowArgs) -> Result<ExitCode> {
    let augment = Augment {
        hue_delta: args.hue_delta,
        width_shift_range: args.width_shift_range,
        height_shift_range: args.height_shift_range,
        ..Augment::default()
    };
    augment.validate()?;
    let (dir, title) = resolve_data(g, &args.data)?;
    let files = data::scan(&dir)?;
    let stats = data::survey(&files)?;
    let shown: Vec<_> = files.iter().take(args.samples.max(1)).map(|f| data::load_sample(f, None)).collect::<Result<_, _>>()?;
    let out = args.out.clone().unwrap_or_else(|| g.runs_dir().join("data").join("show.png"));
    let options = ShowOptions { title: &title, samples: args.samples, augment, seed: args.seed };
    data::show::write_grid(&shown, &stats, &options, &out).with_context(|| format!("writing {}", out.display()))?;
    println!("dataset      {title}");
    println!("images       {}", stats.count);
    let sizes: Vec<String> = stats.sizes.iter().map(|((w, h), n)| format!("{w}x{h} ({n})")).collect();
    println!("sizes        {}", sizes.join(", "));
    println!("foreground   {:.1}% ± {:.1}% of pixels (mean ± std over images)", stats.mean_foreground * 100.0, stats.std_foreground * 100.0);
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}
