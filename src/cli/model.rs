//! Commands that use a trained model: `eval` and `predict`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::Result;
use crate::error::Context as _;
use clap::Args;

use super::{ComputeArgs, Global, usage};
use crate::report::{self, fmt_num, json_number};
use crate::store::{self, StoreError};
use crate::train::checkpoint::{CheckpointKind, TrialDir};
use crate::train::metrics::{Confusion, FullMetrics, SplitMetrics};
use crate::train::predict::{Evaluation, evaluate_checkpoint};
use crate::train::scoring::{FullResolution, ImageScore, Tta};

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
    /// Test-time augmentation: `flip` also scores the mean of each image's probabilities and its
    /// horizontal mirror's, reported apart from the plain figures.
    #[arg(long, value_name = "KIND", default_value = "none")]
    pub tta: String,
    /// Also list every image's dice and IoU at its own size, worst first.
    #[arg(long)]
    pub per_image: bool,
    /// Print JSON: both resolutions (and the TTA's), with --per-image every image.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// With --per-image: print the per-image list as CSV (with each image's confusion matrix).
    #[arg(long, requires = "per_image")]
    pub csv: bool,
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
    /// Test-time augmentation: `flip` predicts from the mean of each image's probabilities and
    /// its horizontal mirror's.
    #[arg(long, value_name = "KIND", default_value = "none")]
    pub tta: String,
    /// Also write <name>_probability.png: each pixel's car probability at the image's size as a
    /// 16-bit grey PNG (0 to 65535 for 0 to 1; the mask is where it is above one half).
    #[arg(long)]
    pub probabilities: bool,
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

fn tta_kind(s: &str) -> Result<Tta> {
    Tta::parse(s).ok_or_else(|| usage(format!("--tta {s}: expected flip or none")))
}

/// `sweep eval TRIAL`: rebuild the model from the trial's directory and evaluate it, at the
/// training resolution and at each image's own size.
pub fn eval(g: &Global, args: &EvalArgs) -> Result<ExitCode> {
    let kind = checkpoint_kind(&args.checkpoint)?;
    let tta = tta_kind(&args.tta)?;
    let device = args.compute.open()?;
    let run = resolve_run_dir(g, &args.trial)?;
    let started = Instant::now();
    let e = evaluate_checkpoint(&run, kind, &g.runs_dir(), args.data.as_deref(), tta, &device)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&evaluation_json(&run, kind, &e, args.per_image))?);
    } else if args.csv {
        crate::out!("{}", per_image_csv(&e));
    } else {
        crate::outln!(
            "{} checkpoint `{}` (epoch {}) on {} ({} images, {:.1}s)\n",
            run.root.display(),
            kind.as_str(),
            e.epoch,
            e.on,
            e.images,
            started.elapsed().as_secs_f64()
        );
        crate::out!("{}", evaluation_text(&e));
        if args.per_image {
            crate::out!("\n{}", per_image_table(&e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The figures of an evaluation as a table: one row per resolution (and TTA), then what each is.
fn evaluation_text(e: &Evaluation) -> String {
    let [h, w] = e.image_size;
    let mut t = report::Table::new(["", "loss", "dice", "iou", "fg_iou"].map(String::from));
    let mut rows = |prefix: &str, m: &SplitMetrics, full: &FullResolution| {
        t.row(vec![format!("{prefix}training resolution {h}x{w}"), fmt_num(m.loss), fmt_num(m.dice), fmt_num(m.iou), fmt_num(m.fg_iou)]);
        for (label, f) in [("original size, pooled", full.metrics()), ("original size, mean per image", full.image_mean())] {
            t.row(vec![format!("{prefix}{label}"), "-".into(), fmt_num(f.dice), fmt_num(f.iou), fmt_num(f.fg_iou)]);
        }
    };
    rows("", &e.metrics, &e.full);
    if let Some((m, full)) = &e.tta {
        rows("flip TTA, ", m, full);
    }
    format!(
        "{}\ntraining resolution: the images resized to data.image_size, as every epoch's val_* (soft dice);\n\
         original size: the logits resized bilinearly to each image's size, thresholded at 0.5 (the masks `sweep predict` writes);\n\
         pooled: one confusion matrix over every pixel of every image (val_full_*, scikit-learn on the concatenated masks);\n\
         mean per image: each image's value, averaged (Kaggle Carvana's dice; an image with no car leaves fg_iou's mean).\n",
        t.render()
    )
}

/// Every image's figures at its own size, worst first; with TTA its figures beside.
fn per_image_rows(e: &Evaluation, number: fn(f64) -> String) -> (Vec<String>, Vec<Vec<String>>) {
    let mut headers: Vec<String> = ["image", "width", "height", "tp", "fp", "fn", "tn", "dice", "iou", "fg_iou"].map(String::from).to_vec();
    let tta: std::collections::HashMap<&str, &ImageScore> =
        e.tta.iter().flat_map(|(_, full)| full.images.iter().map(|i| (i.id.as_str(), i))).collect();
    if e.tta.is_some() {
        headers.extend(["tta_dice", "tta_iou", "tta_fg_iou"].map(String::from));
    }
    let rows = e
        .full
        .worst_first()
        .into_iter()
        .map(|i| {
            let (c, m) = (&i.confusion, i.metrics());
            let mut row = vec![
                i.id.clone(),
                i.width.to_string(),
                i.height.to_string(),
                c.tp.to_string(),
                c.fp.to_string(),
                c.fn_.to_string(),
                c.tn.to_string(),
            ];
            row.extend([m.dice, m.iou, m.fg_iou].map(number));
            if let Some(t) = tta.get(i.id.as_str()) {
                let m = t.metrics();
                row.extend([m.dice, m.iou, m.fg_iou].map(number));
            }
            row
        })
        .collect();
    (headers, rows)
}

fn per_image_table(e: &Evaluation) -> String {
    let (headers, rows) = per_image_rows(e, fmt_num);
    let keep = |row: Vec<String>| row.into_iter().enumerate().filter(|(k, _)| !(3..7).contains(k)).map(|(_, c)| c).collect::<Vec<_>>();
    let mut t = report::Table::new(keep(headers));
    for row in rows {
        t.row(keep(row));
    }
    format!("every image at its own size, worst first (by IoU):\n{}", t.render())
}

/// The per-image list as CSV, every figure at full precision.
fn per_image_csv(e: &Evaluation) -> String {
    let (headers, rows) = per_image_rows(e, |v| if v.is_nan() { "NaN".into() } else { v.to_string() });
    std::iter::once(headers).chain(rows).map(|r| report::csv_line(&r)).collect()
}

/// `sweep eval --json`.
fn evaluation_json(run: &TrialDir, kind: CheckpointKind, e: &Evaluation, per_image: bool) -> serde_json::Value {
    use serde_json::json;
    let split = |m: &SplitMetrics| json!({"loss": json_number(m.loss), "dice": json_number(m.dice), "iou": json_number(m.iou), "fg_iou": json_number(m.fg_iou)});
    let figures = |f: FullMetrics| json!({"dice": json_number(f.dice), "iou": json_number(f.iou), "fg_iou": json_number(f.fg_iou)});
    let confusion = |c: &Confusion| json!({"tp": c.tp, "fp": c.fp, "fn": c.fn_, "tn": c.tn});
    let full = |f: &FullResolution| {
        let mut pooled = figures(f.metrics());
        pooled["confusion"] = confusion(&f.pooled());
        json!({"pooled": pooled, "mean_per_image": figures(f.image_mean())})
    };
    let images = |f: &FullResolution| -> Vec<serde_json::Value> {
        f.worst_first()
            .into_iter()
            .map(|i| {
                let mut v = figures(i.metrics());
                v["image"] = json!(i.id);
                v["width"] = json!(i.width);
                v["height"] = json!(i.height);
                v["confusion"] = confusion(&i.confusion);
                v
            })
            .collect()
    };
    let mut v = json!({
        "trial": run.root.display().to_string(),
        "checkpoint": kind.as_str(),
        "epoch": e.epoch,
        "on": e.on,
        "images": e.images,
        "image_size": e.image_size,
        "training_resolution": split(&e.metrics),
        "original_size": full(&e.full),
        "tta": e.tta.as_ref().map(|(m, f)| json!({"kind": "flip", "training_resolution": split(m), "original_size": full(f)})),
    });
    if per_image {
        v["per_image"] = json!(images(&e.full));
        if let Some((_, f)) = &e.tta {
            v["tta"]["per_image"] = json!(images(f));
        }
    }
    v
}

/// `sweep predict TRIAL IMAGES...`: a mask and an overlay per image.
pub fn predict(g: &Global, args: &PredictArgs) -> Result<ExitCode> {
    let kind = checkpoint_kind(&args.checkpoint)?;
    let tta = tta_kind(&args.tta)?;
    // Every input is checked before the model loads, so a typo costs nothing.
    if let Some(missing) = args.images.iter().find(|p| !p.is_file()) {
        return Err(usage(format!("{}: no such image file; name JPEG or PNG files", missing.display())));
    }
    crate::train::predict::check_output_names(&args.images, &args.out)?;
    let device = args.compute.open()?;
    let run = resolve_run_dir(g, &args.trial)?;
    let (config, model, _) = crate::train::load_model(&run, kind, &device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let predictor = crate::train::predict::Predictor::new(model, &config, device).with_tta(tta);
    for image in &args.images {
        let written = predictor.predict_file(image, &args.out, args.probabilities)?;
        let probability = written.probability.map(|p| format!(", {}", p.display())).unwrap_or_default();
        println!(
            "{} -> {}, {}{probability} ({:.1}% car)",
            image.display(),
            written.mask.display(),
            written.overlay.display(),
            written.foreground * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
