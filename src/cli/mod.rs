//! The command line: clap definitions, and one library call per subcommand.
//!
//! This is the edge where typed library errors get their context ([`crate::error::Context`]), and
//! where results are printed. Each subcommand parses its arguments, calls one library function and prints what
//! it returns; the commands are grouped by what they work on: running a sweep ([`run`]), reading
//! the tracker ([`tracker`]), managing trials ([`manage`]), using a trained model ([`model`]),
//! charts ([`plot`]) and datasets ([`data`]).
//!
//! ```
//! let command = sweep::cli::command();
//! assert!(command.clone().try_get_matches_from(["sweep", "best", "--metric", "iou", "--json"]).is_ok());
//! let missing = command.try_get_matches_from(["sweep", "best", "--metric"]).unwrap_err();
//! assert_eq!(missing.kind(), clap::error::ErrorKind::InvalidValue);
//! ```

pub mod data;
pub mod limits;
pub mod manage;
pub mod model;
pub mod plot;
pub mod run;
pub mod tracker;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::Result;
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::store::{self, Intervention, Store};
use crate::train::device::{DeviceSpec, set_cpu_threads};
use data::DataCommand;
use manage::{EnqueueArgs, NoteArgs, PruneArgs, ResumeArgs, RmArgs, StopArgs, TagArgs};
use model::{EvalArgs, PredictArgs};
use plot::PlotArgs;
use run::{RunArgs, WorkerArgs};
use tracker::{BestArgs, CompareArgs, ExportArgs, ImportanceArgs, LsArgs, ShowTrialArgs, StatusArgs};
use ui::UiArgs;

/// What `sweep --help` ends with.
const EXIT_CODES: &str = "Exit codes:
  0  success
  1  a trial or runtime failure (a trial of the sweep failed or diverged, an interrupted sweep,
     an unreachable server)
  2  bad usage or bad input (a malformed sweep file, an out-of-range value, a missing dataset,
     an unknown trial or sweep)";

#[derive(Debug, Parser)]
#[command(name = "sweep", version, about = "Hyperparameter sweeps and experiment tracking for U-Net segmentation", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Where trial directories (configs, checkpoints), charts and the cached synthetic dataset go.
    #[arg(long, global = true, env = "SWEEP_RUNS", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The tracker: a SQLite file (default: <runs-dir>/sweep.db) or a postgres://user@host/db URL.
    #[arg(long, global = true, env = "SWEEP_STORE")]
    pub store: Option<String>,
}

impl Global {
    /// The runs directory as an absolute path: workers and stored checkpoint paths use it.
    pub fn runs_dir(&self) -> PathBuf {
        std::path::absolute(&self.runs_dir).unwrap_or_else(|_| self.runs_dir.clone())
    }

    pub fn store_location(&self) -> String {
        self.store.clone().unwrap_or_else(|| self.runs_dir().join("sweep.db").display().to_string())
    }

    /// The tracker for a command a person waits on (an unreachable server is an error in
    /// seconds; workers and the supervisor of `run` retry for minutes).
    pub fn open_store(&self) -> Result<Box<dyn Store>> {
        Ok(store::open_interactive(&self.store_location())?)
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
    /// List trials, filtered and sorted.
    Ls(LsArgs),
    /// One trial: parameters, per-epoch metrics, checkpoints, error or pruning reason.
    Show(ShowTrialArgs),
    /// The best trial by a metric.
    Best(BestArgs),
    /// Trials side by side: the settings that differ, then their metrics.
    Compare(CompareArgs),
    /// Which swept parameters explain the objective (permutation importance over a random forest).
    Importance(ImportanceArgs),
    /// Every trial with its parameters and per-epoch metrics: CSV, JSON, MLflow or TensorBoard.
    Export(ExportArgs),
    /// Rebuild a trial's model from its directory and evaluate it.
    Eval(EvalArgs),
    /// Predict masks for images with a trial's model.
    Predict(PredictArgs),
    /// Draw a sweep's charts (PNG) and an index.html, or one trial's two-panel chart.
    Plot(PlotArgs),
    /// A read-only web dashboard of the sweeps, updated while they run (http://127.0.0.1:8080/).
    Ui(UiArgs),
    /// Put a configuration first: a trial with these parameter values, claimed before the
    /// sweep's other queued trials (the rest drawn by its sampler).
    Enqueue(EnqueueArgs),
    /// Set or remove a trial's tags (name=value, name=).
    Tag(TagArgs),
    /// Set or clear a trial's note.
    Note(NoteArgs),
    /// Stop trials by hand (a running one at its worker's next heartbeat), resumable with `sweep resume`.
    Stop(StopArgs),
    /// Prune trials by hand with a note, keeping their recorded epochs.
    Prune(PruneArgs),
    /// Queue stopped trials again, to continue from their last checkpoint.
    Resume(ResumeArgs),
    /// Remove trials with their directories (never a running one), after a confirmation.
    Rm(RmArgs),
    /// Generate and inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Print a shell completion script: sweep completions bash > ~/.local/share/bash-completion/completions/sweep
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish (or elvish, powershell).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The subcommands that use neither the runs directory nor the tracker: their help leaves
/// `--runs-dir` and `--store` out (they are global options of every other command).
const WITHOUT_TRACKER: [&[&str]; 2] = [&["data", "synth"], &["completions"]];

/// The command line's definition, as `sweep` parses it.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // A subcommand that has an argument of a global option's id does not get the global one:
    // these get hidden copies.
    let hidden: Vec<clap::Arg> = cmd.get_arguments().filter(|a| a.is_global_set()).map(|a| a.clone().hide(true)).collect();
    for path in WITHOUT_TRACKER {
        let sub = path.iter().try_fold(&mut cmd, |cmd, name| cmd.find_subcommand_mut(name)).expect("a subcommand of WITHOUT_TRACKER");
        *sub = std::mem::take(sub).args(hidden.clone());
    }
    cmd
}

/// Parses the process's command line (exiting with clap's message and code 2 on bad usage).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

impl Command {
    /// Whether the command must go on when its output's reader goes away (`sweep run | head`):
    /// a sweep or a worker never stops because nobody reads its progress any more.
    pub fn outlives_its_reader(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Worker(_))
    }
}

#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// cpu, cuda[:K] (needs the `cuda` feature) or vulkan[:K] (needs the `vulkan` feature).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// CPU threads for tensor operations (default: all cores, divided among workers); at most 4
    /// per core of this machine (64 on a smaller one, for SLURM nodes larger than the submit host).
    #[arg(long, value_parser = limits::threads)]
    pub threads: Option<usize>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    // Read before any kernel runs: a bad value is the user's input, not a panic mid-training.
    crate::train::ops::isa::Isa::from_env().map_err(crate::Error::Usage)?;
    let g = cli.global;
    match cli.command {
        Command::Run(args) => run::run(&g, &args),
        Command::Worker(args) => run::worker(&g, &args),
        Command::Status(args) => tracker::status(&g, &args),
        Command::Ls(args) => tracker::ls(&g, &args),
        Command::Show(args) => tracker::show(&g, &args),
        Command::Best(args) => tracker::best(&g, &args),
        Command::Compare(args) => tracker::compare(&g, &args),
        Command::Importance(args) => tracker::importance(&g, &args),
        Command::Export(args) => tracker::export(&g, &args),
        Command::Eval(args) => model::eval(&g, &args),
        Command::Predict(args) => model::predict(&g, &args),
        Command::Plot(args) => plot::plot(&g, &args),
        Command::Ui(args) => ui::ui(&g, &args),
        Command::Enqueue(args) => manage::enqueue(&g, &args),
        Command::Tag(args) => manage::tag(&g, &args),
        Command::Note(args) => manage::note(&g, &args),
        Command::Stop(args) => manage::intervene(&g, &args.trials, &Intervention::Stop),
        Command::Prune(args) => manage::intervene(&g, &args.trials, &Intervention::Prune { note: args.note.clone() }),
        Command::Resume(args) => manage::resume(&g, &args),
        Command::Rm(args) => manage::rm(&g, &args),
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut command(), "sweep", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCommand::Synth(args)) => data::synth(&args),
        Command::Data(DataCommand::Show(args)) => data::show(&g, &args),
    }
}

/// A command-line value that cannot be used (exit code 2): the message names the flag and the fix.
pub fn usage(msg: impl Into<String>) -> crate::Error {
    crate::Error::Usage(msg.into())
}

impl ComputeArgs {
    /// Sets the CPU threads and opens the device (a missing GPU is an error here).
    pub fn open(&self) -> Result<burn::tensor::Device> {
        set_cpu_threads(self.threads.unwrap_or_else(crate::util::available_cores));
        Ok(self.device.open()?)
    }
}
