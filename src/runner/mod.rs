//! Running a sweep: [`Sweep`] drives `sweep run` from the file to the verdict; the supervisor
//! ([`scheduler`]) starts worker processes
//! ([`worker`]) locally or as a SLURM job array ([`slurm`]); each worker claims trials from the
//! tracker and trains them. [`progress`] shows what they report; [`signals`] turns Ctrl-C and
//! SIGTERM into requests that the loops poll. [`remove`] removes trials with their directories.
//!
//! ```
//! use std::path::PathBuf;
//! use sweep::runner::Sweep;
//!
//! // `sweep run sweeps/quick.toml --dry-run` as a library: the file read and expanded, and what
//! // registering it would do in a tracker that knows no trial yet.
//! let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sweeps/quick.toml");
//! let sweep = Sweep::load(&file, &[], None, "runs/sweep.db".into(), "runs".into()).unwrap();
//! let plan = sweep.plan(None).unwrap();
//! assert_eq!((sweep.trials.len(), plan.known.len(), plan.plan.len()), (2, 0, 2));
//! ```

mod owner;
pub mod program;
pub mod progress;
pub mod protocol;
pub mod remove;
pub mod scheduler;
pub mod signals;
pub mod slurm;
pub mod study;
mod sweep;
pub mod worker;

use std::path::Path;

pub use owner::TrackerMark;
pub use scheduler::LocalOptions;
pub use sweep::{DryRun, Submitted, Sweep, Verdict};

use crate::report::charts::{self, TrialPicture, Written};
use crate::store::{self, Reclaim, Store};
use crate::train::device::DeviceSpec;

/// The lease rules a sweep's workers follow: when a running trial counts as abandoned, how often
/// a worker says it is alive, and how many deaths in a row fail a trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leases {
    /// A trial whose worker dies this many times in a row, without finishing a new epoch, fails.
    pub max_attempts: i64,
    /// Seconds without a heartbeat after which a running trial is reclaimed.
    pub stale_after: f64,
    /// Seconds between heartbeats.
    pub heartbeat_every: f64,
}

impl Leases {
    /// The rule a claim takes an abandoned trial over by.
    pub fn reclaim(&self) -> Reclaim {
        Reclaim { stale_after: self.stale_after, max_attempts: self.max_attempts.max(1) }
    }

    /// The flags that give a `sweep worker` these rules, as `--flag=value`.
    pub fn worker_flags(&self) -> [String; 3] {
        [
            format!("--stale-after={}", self.stale_after),
            format!("--heartbeat-every={}", self.heartbeat_every),
            format!("--max-attempts={}", self.max_attempts),
        ]
    }
}

/// Draws every chart of a sweep into `runs/<sweep>/plots/`, with the best trial's prediction grid
/// computed on the CPU (the end of `sweep run`).
pub fn draw_charts(store: &dyn Store, sweep: &str, runs_dir: &Path) -> crate::Result<Written> {
    draw_charts_to(store, sweep, runs_dir, None, DeviceSpec::Cpu, 4)
}

/// Draws every chart of a sweep into `out` (default `runs/<sweep>/plots/`), the prediction grid
/// with `samples` validation images predicted on `device`.
pub fn draw_charts_to(
    store: &dyn Store,
    sweep: &str,
    runs_dir: &Path,
    out: Option<&Path>,
    device: DeviceSpec,
    samples: usize,
) -> crate::Result<Written> {
    use crate::train::predict::{Grid, save_grid};
    let device = device.open().map_err(crate::train::TrainError::from)?;
    let predictions = |sweep: &str, trial: &str, path: &Path| {
        save_grid(Grid::Predictions, runs_dir, sweep, trial, &device, samples, path).map_err(|e| e.to_string())
    };
    let worst =
        |sweep: &str, trial: &str, path: &Path| save_grid(Grid::Worst, runs_dir, sweep, trial, &device, samples, path).map_err(|e| e.to_string());
    let grids = [TrialPicture { file: "predictions.png", draw: &predictions }, TrialPicture { file: "worst_images.png", draw: &worst }];
    // A program's trials have no model of ours to predict with.
    let program =
        store::find_sweep(store, sweep).ok().and_then(|info| crate::study::spec::stored(&info).ok()).is_some_and(|s| s.base.program.is_some());
    Ok(charts::plot_sweep(store, sweep, runs_dir, out, if program { &[] } else { &grids })?)
}
