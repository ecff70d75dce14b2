//! Running a sweep: the supervisor of `sweep run` ([`scheduler`]) starts worker processes
//! ([`worker`]) locally or as a SLURM job array ([`slurm`]); each worker claims trials from the
//! tracker and trains them. [`progress`] shows what they report; [`signals`] turns Ctrl-C and
//! SIGTERM into requests that the loops poll. [`remove`] removes trials with their directories.

mod owner;
pub mod progress;
pub mod remove;
pub mod scheduler;
pub mod signals;
pub mod slurm;
pub mod study;
pub mod worker;

use std::path::Path;

pub use owner::TrackerMark;

use crate::report::charts::{self, Written};
use crate::store::Store;
use crate::train::device::DeviceSpec;

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
    let device = device.open().map_err(crate::train::TrainError::from)?;
    let grid = |sweep: &str, trial: &str, path: &Path| {
        crate::train::predict::prediction_grid(runs_dir, sweep, trial, &device, samples, path).map_err(|e| e.to_string())
    };
    Ok(charts::plot_sweep(store, sweep, runs_dir, out, Some(&grid))?)
}
