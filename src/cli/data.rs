//! `sweep data`: generate the synthetic set and look at a dataset.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::Result;
use crate::error::Context as _;
use clap::{Args, Subcommand};

use super::Global;
use crate::config::{Augment, SynthSpec};
use crate::data::{self, show::ShowOptions};

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

/// `sweep data synth`: write the synthetic set.
pub fn synth(args: &SynthArgs) -> Result<ExitCode> {
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

/// `sweep data show`: a PNG of samples and augmentations, and the statistics.
pub fn show(g: &Global, args: &ShowArgs) -> Result<ExitCode> {
    let augment = Augment {
        hue_delta: args.hue_delta,
        width_shift_range: args.width_shift_range,
        height_shift_range: args.height_shift_range,
        ..Augment::default()
    };
    augment.validate()?;
    let (dir, title) = resolve_data(g, &args.data)?;
    let files = data::scan(&dir)?;
    // What the headers show (a mask of another size, a file too large or cut off) is said before
    // any pixel is decoded.
    data::check_headers(&files)?;
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
