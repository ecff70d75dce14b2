//! Commands that use a trained model: `eval` and `predict`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::Result;
use crate::error::Context as _;
use clap::Args;

use super::{ComputeArgs, Global, usage};
use crate::report;
use crate::store::{self, StoreError};
use crate::train::checkpoint::{CheckpointKind, TrialDir};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A trial id (e.g. hue-3) or a trial directory.
    #[arg(value_name = "TRIAL")]
    pub trial: String,
    /// Which checkpoint: best (the objective's best epoch) or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Evaluate on every image of this Carvana-layout directory instead of the trial's validation split.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A trial id (e.g. hue-3) or a trial directory.
    #[arg(value_name = "TRIAL")]
    pub trial: String,
    /// Images to segment. Two with the same name (a/x.jpg, b/x.jpg or x.png) would write the same
    /// outputs and are refused: give them separate --out directories.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output directory for <name>_mask.png and <name>_overlay.png (<name>: the image's file name without its extension).
    #[arg(long)]
    pub out: PathBuf,
    /// Which checkpoint: best (the objective's best epoch) or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// A trial given on the command line: a trial directory, or a trial id looked up in the tracker
/// (or, without one, under the runs directory).
fn resolve_run_dir(g: &Global, run: &str) -> Result<TrialDir> {
    let path = Path::new(run);
    if path.join("config.json").is_file() {
        return Ok(TrialDir::new(path));
    }
    store::validate_trial_id(run).map_err(|_| usage(format!("{run}: neither a trial directory (no config.json) nor a trial id")))?;
    let runs_dir = g.runs_dir();
    if let Ok(store) = g.open_store() {
        match store.trial(run) {
            Ok(row) => return Ok(TrialDir::of(&runs_dir, &row.sweep, &row.id)),
            Err(e @ StoreError::UnknownTrial { .. }) => return Err(e.into()),
            Err(_) => {}
        }
    }
    let found =
        std::fs::read_dir(&runs_dir).ok().and_then(|entries| entries.flatten().map(|e| e.path().join(run)).find(|p| p.join("config.json").is_file()));
    found.map(TrialDir::new).ok_or_else(|| usage(format!("no trial {run:?} under {}", runs_dir.display())))
}

fn checkpoint_kind(s: &str) -> Result<CheckpointKind> {
    CheckpointKind::parse(s).ok_or_else(|| usage(format!("--checkpoint {s}: expected best or last")))
}

/// `sweep eval TRIAL`: rebuild the model from the trial's directory and evaluate it.
pub fn eval(g: &Global, args: &EvalArgs) -> Result<ExitCode> {
    let kind = checkpoint_kind(&args.checkpoint)?;
    let device = args.compute.open()?;
    let run = resolve_run_dir(g, &args.trial)?;
    let started = Instant::now();
    let e = crate::train::predict::evaluate_checkpoint(&run, kind, &g.runs_dir(), args.data.as_deref(), &device)?;
    println!(
        "{} checkpoint `{}` (epoch {}) on {} ({} images, {:.1}s)",
        run.root.display(),
        kind.as_str(),
        e.epoch,
        e.on,
        e.images,
        started.elapsed().as_secs_f64()
    );
    let m = &e.metrics;
    println!("loss     {}", report::fmt_num(m.loss));
    println!("dice     {}", report::fmt_num(m.dice));
    println!("iou      {}", report::fmt_num(m.iou));
    println!("fg_iou   {}", report::fmt_num(m.fg_iou));
    Ok(ExitCode::SUCCESS)
}

/// `sweep predict TRIAL IMAGES...`: a mask and an overlay per image.
pub fn predict(g: &Global, args: &PredictArgs) -> Result<ExitCode> {
    let kind = checkpoint_kind(&args.checkpoint)?;
    // Every input is checked before the model loads, so a typo costs nothing.
    if let Some(missing) = args.images.iter().find(|p| !p.is_file()) {
        return Err(usage(format!("{}: no such image file; name JPEG or PNG files", missing.display())));
    }
    crate::train::predict::check_output_names(&args.images, &args.out)?;
    let device = args.compute.open()?;
    let run = resolve_run_dir(g, &args.trial)?;
    let (config, model, _) = crate::train::load_model(&run, kind, &device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let predictor = crate::train::predict::Predictor::new(model, &config, device);
    for image in &args.images {
        let written = predictor.predict_file(image, &args.out)?;
        println!("{} -> {}, {} ({:.1}% car)", image.display(), written.mask.display(), written.overlay.display(), written.foreground * 100.0);
    }
    Ok(ExitCode::SUCCESS)
}
