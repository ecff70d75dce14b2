//! A sweep from its file to its verdict: what `sweep run` does, as a library the command line
//! calls step by step and prints between ([`Sweep`]). Read and expand the file, register its
//! trials, run them (worker processes here, or a SLURM job array), then judge how it ended.

use std::path::{Path, PathBuf};

use super::scheduler::{self, LocalOptions, Registration, SweepOptions, SweepOutcome};
use super::slurm;
use crate::error::Context as _;
use crate::store::{self, Registering, Store, TrialRow};
use crate::study::spec::{self, SweepSpec, Trial};
use crate::train::device::DeviceSpec;

/// A sweep file read and expanded, with where its trials are tracked and kept.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub spec: SweepSpec,
    /// The trials the file expands into (none yet for a lazily sampled sweep beyond its firsts).
    pub trials: Vec<Trial>,
    /// The tracker's location (a SQLite file or a PostgreSQL URL).
    pub store: String,
    pub runs_dir: PathBuf,
}

/// What a dry run shows: the trials the tracker already knows, and what registering would do.
#[derive(Debug, Clone)]
pub struct DryRun {
    pub known: Vec<TrialRow>,
    pub plan: Vec<Registering>,
}

/// A submitted SLURM job array.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: String,
    /// The sbatch script, kept under the runs directory.
    pub script: PathBuf,
    pub workers: usize,
}

/// How a sweep ended, for its exit code: 0 when every trial completed, 1 otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Completed,
    /// Ctrl-C or SIGTERM stopped it; running it again resumes.
    Interrupted,
    /// Trials did not complete: what kept them, one message per kind (possibly none when the
    /// trials' own statuses say it).
    Failed(Vec<String>),
}

impl Sweep {
    /// Reads and validates the sweep file with the `set` flags' settings (`train.epochs=3`)
    /// applied, and expands it, every trial's data source replaced by `data` when given.
    pub fn load(file: &Path, set: &[String], data: Option<&Path>, store: String, runs_dir: PathBuf) -> crate::Result<Sweep> {
        let spec = spec::load(file, set)?;
        let data = data.map(|d| d.display().to_string());
        let trials = spec.trials(data.as_deref());
        Ok(Sweep { spec, trials, store, runs_dir })
    }

    /// Where the workers' logs go.
    pub fn log_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.spec.name).join("logs")
    }

    /// What registering would do, against the tracker when it is there and holds the sweep (a
    /// tracker that cannot be read counts as knowing no trial).
    pub fn plan(&self, store: Option<&dyn Store>) -> crate::Result<DryRun> {
        let (known, _, plan) = scheduler::plan(&self.spec, &self.trials, store).or_else(|_| scheduler::plan(&self.spec, &self.trials, None))?;
        Ok(DryRun { known, plan })
    }

    /// Gets ready to run and registers the trials: opens `device` once when given (a missing GPU
    /// is one clear error, not one per worker), prepares the datasets, then registers (requeuing
    /// failed trials with `retry_failed`).
    pub fn register(&self, device: Option<DeviceSpec>, retry_failed: bool) -> crate::Result<Registration> {
        if let Some(device) = device {
            device.open()?;
        }
        scheduler::prepare_data(&self.trials, &self.runs_dir).context("preparing the dataset")?;
        scheduler::register(&self.spec, &self.trials, &self.store, &self.runs_dir, retry_failed)
    }

    /// Trains the trials in worker processes on this machine until none is left.
    pub fn run_local(&self, local: &LocalOptions) -> crate::Result<SweepOutcome> {
        let options = SweepOptions { store: self.store.clone(), runs_dir: self.runs_dir.clone(), local: local.clone() };
        scheduler::run(&self.spec, &options)
    }

    /// Why a lazily sampled sweep ended below its `run_cap`, when it did: its sampler proposed
    /// nothing new it could add.
    pub fn cap_note(&self, outcome: &SweepOutcome) -> Option<String> {
        let cap = self.spec.run_cap?;
        let short = self.spec.is_lazy() && !outcome.interrupted && outcome.trials.len() < cap && outcome.trials.iter().all(|r| r.status.is_final());
        short.then(|| {
            format!(
                "sweep {} ended with {} of its run_cap = {cap} trials: the sampler proposed nothing new it could add (why: {})",
                self.spec.name,
                outcome.trials.len(),
                self.log_dir().display()
            )
        })
    }

    /// Writes the sbatch script of a job array of workers, submits it and records the job.
    pub fn submit(&self, options: &slurm::SlurmOptions) -> crate::Result<Submitted> {
        let exe = std::env::current_exe().context("locating the sweep binary")?;
        let workdir = std::env::current_dir().context("reading the working directory")?;
        let script =
            slurm::script(&self.spec.name, &self.store, &self.runs_dir, &exe, &workdir, options).map_err(|e| crate::Error::Usage(e.to_string()))?;
        let mut store = store::open(&self.store, false)?;
        let (job, script) = slurm::submit_and_record(store.as_mut(), &self.store, &self.spec.name, &script, &self.runs_dir, options.workers)?;
        Ok(Submitted { job, script, workers: options.workers })
    }

    /// Follows a submitted job until its trials end or Ctrl-C, `report`ing progress lines.
    pub fn wait(&self, submitted: &Submitted, report: impl FnMut(&str)) -> crate::Result<slurm::Waited> {
        let store = store::open(&self.store, false)?;
        slurm::wait(store.as_ref(), &self.spec.name, &submitted.job, report).map_err(|e| crate::Error::Usage(e.to_string()))
    }

    /// How the workers of this machine ended the sweep.
    pub fn verdict(&self, outcome: &SweepOutcome) -> Verdict {
        if outcome.interrupted {
            return Verdict::Interrupted;
        }
        let problems = outcome.problems(&self.log_dir());
        if problems.is_empty() && !outcome.any_failed() { Verdict::Completed } else { Verdict::Failed(problems) }
    }

    /// How a SLURM job ended the sweep, from its trials when the wait ended.
    pub fn verdict_of_job(&self, runs: &[TrialRow]) -> Verdict {
        let unfinished = runs.iter().filter(|r| !r.status.is_final()).count();
        if unfinished > 0 {
            return Verdict::Failed(vec![format!("the job ended with {unfinished} trial(s) unfinished; submit again to resume them")]);
        }
        if runs.iter().any(|r| r.status.is_unsuccessful()) { Verdict::Failed(Vec::new()) } else { Verdict::Completed }
    }
}
