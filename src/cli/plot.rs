//! `sweep plot`: a sweep's charts and index.html, or one trial's two-panel chart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::Result;
use clap::Args;

use super::{ComputeArgs, Global, usage};
use crate::store;
use crate::train::device::set_cpu_threads;

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The sweep (default: the only one, or the most recent).
    pub sweep: Option<String>,
    /// Output directory (default: <runs-dir>/<sweep>/plots).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only the tutorial's two-panel chart (dice loss and loss, train vs validation) of this trial.
    #[arg(long, value_name = "TRIAL")]
    pub run: Option<String>,
    /// Validation images in the prediction grid.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// `sweep plot [SWEEP]`: every chart of a sweep, or one trial's two-panel chart.
pub fn plot(g: &Global, args: &PlotArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    if let Some(run) = &args.run {
        store::validate_trial_id(run)?;
        let row = store.trial(run)?;
        let out = args.out.clone().unwrap_or_else(|| g.runs_dir().join(&row.sweep).join("plots"));
        let path = crate::report::charts::plot_trial(store.as_ref(), run, &out)?;
        println!("wrote {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let sweep = match &args.sweep {
        Some(name) => store::find_sweep(store.as_ref(), name)?.name,
        None => store
            .sweeps()?
            .into_iter()
            .max_by(|a, b| a.updated.total_cmp(&b.updated))
            .map(|s| s.name)
            .ok_or_else(|| usage("no sweep in the tracker yet; run one first"))?,
    };
    set_cpu_threads(args.compute.threads.unwrap_or_else(crate::util::available_cores));
    let started = Instant::now();
    let written = crate::runner::draw_charts_to(store.as_ref(), &sweep, &g.runs_dir(), args.out.as_deref(), args.compute.device, args.samples)?;
    for f in &written.files {
        println!("wrote {}", f.display());
    }
    println!("{} files in {:.1}s", written.files.len(), started.elapsed().as_secs_f64());
    for e in &written.errors {
        eprintln!("error: {e}");
    }
    Ok(if written.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
