//! Inference on image files: a run's model in eval mode turns any image into a mask at the
//! image's own size, the way training saw its data (resize to the model's input, rescale), its
//! logits resized back bilinearly ([`scoring`]); the evaluation of a checkpoint at both
//! resolutions; the prediction grid and the grid of the worst validation images.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbImage};

use crate::canvas::{Canvas, fit, mask_to_rgb, overlay, save_png};
use crate::config::Augment;
use crate::config::TrialConfig;
use crate::data::{self, DataError};
use crate::train::TrainError;
use crate::train::checkpoint::{CheckpointKind, TrainState, TrialDir};
use crate::train::metrics::SplitMetrics;
use crate::train::model::UNet;
use crate::train::scoring::{self, FullResolution, Tta};

/// A model ready to predict.
pub struct Predictor {
    model: UNet,
    /// The model's input (height, width).
    size: (u32, u32),
    rescale: f32,
    device: Device,
    tta: Tta,
}

/// The files written for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub mask: PathBuf,
    pub overlay: PathBuf,
    /// The probability map (`--probabilities`).
    pub probability: Option<PathBuf>,
    /// Fraction of the image predicted as car.
    pub foreground: f64,
}

impl Predictor {
    pub fn new(model: UNet, config: &TrialConfig, device: Device) -> Self {
        let [h, w] = config.data.image_size;
        Self { model: burn::module::Module::valid(&model), size: (h as u32, w as u32), rescale: config.augment.rescale, device, tta: Tta::None }
    }

    /// Predicts with test-time augmentation `tta`.
    pub fn with_tta(self, tta: Tta) -> Self {
        Self { tta, ..self }
    }

    /// The car logit of every pixel of `image` at the model's input size (row-major, width x
    /// height), the image resized and rescaled the way training saw it.
    pub fn logits(&self, image: &RgbImage) -> Vec<f32> {
        let (h, w) = self.size;
        let resized = data::resize_image(image, w, h);
        let plane = (w * h) as usize;
        let (mut pixels, mut unused) = (vec![0.0f32; 3 * plane], vec![0.0f32; plane]);
        Augment::identity(self.rescale).apply(&Default::default(), &resized, &GrayImage::new(w, h), &mut pixels, &mut unused);
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, h as usize, w as usize]), &self.device);
        scoring::logits(&self.model, input, self.tta).into_data().iter::<f32>().collect()
    }

    /// The logits at the image's own size: resized bilinearly from the model's (see
    /// [`scoring::resize_bilinear`]).
    pub fn full_logits(&self, image: &RgbImage) -> Vec<f32> {
        let (h, w) = self.size;
        scoring::resize_bilinear(&self.logits(image), (w, h), image.dimensions())
    }

    /// A 0/1 mask for `image` at its own size: car where the resized logit is above 0
    /// (probability above 0.5). `sweep eval` scores exactly this mask.
    pub fn mask(&self, image: &RgbImage) -> GrayImage {
        mask_of(&self.full_logits(image), image.dimensions())
    }

    /// Writes `<stem>_mask.png` (0/255) and `<stem>_overlay.png` for one image file into `out`,
    /// and with `probabilities` `<stem>_probability.png`: the car probability of each pixel at the
    /// image's size as a 16-bit grey PNG (0 to 65535 for 0 to 1; the mask is where it is above
    /// one half).
    pub fn predict_file(&self, path: &Path, out: &Path, probabilities: bool) -> Result<Written, DataError> {
        let image = data::decode_image(path)?;
        let (w, h) = image.dimensions();
        let logits = self.full_logits(&image);
        let mask = mask_of(&logits, (w, h));
        let stem = output_stem(path);
        let mask_path = out.join(format!("{stem}_mask.png"));
        let overlay_path = out.join(format!("{stem}_overlay.png"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| DataError::Io { path: p, source: e }
        };
        let mut visible = mask.clone();
        for v in visible.iter_mut() {
            *v *= 255;
        }
        write_png(&visible, &mask_path)?;
        save_png(&overlay(&image, &mask), &overlay_path).map_err(io(&overlay_path))?;
        let probability = match probabilities {
            true => {
                let path = out.join(format!("{stem}_probability.png"));
                let levels: Vec<u16> = logits.iter().map(|&l| (sigmoid(l) * 65535.0).round() as u16).collect();
                let map = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, levels).expect("one value a pixel");
                write_png(&map, &path)?;
                Some(path)
            }
            false => None,
        };
        let foreground = mask.iter().filter(|&&v| v > 0).count() as f64 / mask.len().max(1) as f64;
        Ok(Written { mask: mask_path, overlay: overlay_path, probability, foreground })
    }
}

fn sigmoid(l: f32) -> f32 {
    1.0 / (1.0 + (-l).exp())
}

/// Car (1) where a logit is above 0.
fn mask_of(logits: &[f32], (w, h): (u32, u32)) -> GrayImage {
    GrayImage::from_raw(w, h, logits.iter().map(|&l| u8::from(l > 0.0)).collect()).expect("one logit a pixel")
}

/// Encodes a grey image (8 or 16 bits) as PNG and replaces `path` with it atomically.
fn write_png<P>(img: &image::ImageBuffer<P, Vec<P::Subpixel>>, path: &Path) -> Result<(), DataError>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| DataError::Io { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
    crate::util::atomic_write(path, &bytes).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })
}

/// What an image's outputs are named after: its file name without the extension.
pub fn output_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned())
}

/// Refuses a list of images of which two would write the same outputs into `out` (`a/x.jpg`
/// and `b/x.png` both make `x_mask.png`): one would silently replace the other. Checked before
/// anything is written.
pub fn check_output_names(images: &[PathBuf], out: &Path) -> Result<(), DataError> {
    let mut seen: std::collections::HashMap<String, &PathBuf> = std::collections::HashMap::new();
    for image in images {
        let stem = output_stem(image);
        if let Some(first) = seen.get(&stem) {
            return Err(DataError::OutputClash { first: (*first).clone(), second: image.clone(), stem, out: out.to_path_buf() });
        }
        seen.insert(stem, image);
    }
    Ok(())
}

/// What [`evaluate_checkpoint`] measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// At the training resolution (what the tracker records as `val_*`).
    pub metrics: SplitMetrics,
    /// At each image's original size, every image scored.
    pub full: FullResolution,
    /// The same two with the flip TTA, when asked for: never mixed into the others.
    pub tta: Option<(SplitMetrics, FullResolution)>,
    /// The training resolution (height, width).
    pub image_size: [usize; 2],
    /// The training state saved with the checkpoint.
    pub state: TrainState,
    /// The epoch whose model the checkpoint holds.
    pub epoch: usize,
    /// Images evaluated.
    pub images: usize,
    /// What they were, for people: "the trial's validation split" or "every image of DIR".
    pub on: String,
}

/// Rebuilds a trial's model from its directory and checkpoint `kind`, and evaluates it in eval
/// mode on its validation split (rebuilt from its config under `runs_dir`), or on every image of
/// `data` when given: at the training resolution and at each image's own size, and, with a
/// `tta` other than none, once more with it.
pub fn evaluate_checkpoint(
    run: &TrialDir,
    kind: CheckpointKind,
    runs_dir: &Path,
    data: Option<&Path>,
    tta: Tta,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let (config, model, state) = super::load_model(run, kind, device)?;
    let [h, w] = config.data.image_size;
    let (dir, samples, indices, on) = match data {
        Some(dir) => {
            let samples = data::cached(dir, Some((h as u32, w as u32)))?;
            let all: Vec<usize> = (0..samples.len()).collect();
            (dir.to_path_buf(), samples, all, format!("every image of {}", dir.display()))
        }
        None => {
            let super::DataSplit { samples, val, .. } = super::load_split(&config, runs_dir)?;
            (super::dataset_dir(&config, runs_dir)?, samples, val, "the trial's validation split".to_string())
        }
    };
    let truth = scoring::load_truth(&dir, &samples, &indices)?;
    let images = indices.len();
    let loader = data::Loader::eval(samples, indices, config.train.batch_size, config.augment.rescale);
    let scored = |tta| {
        let s = scoring::evaluate_split(&model, &loader, device, Some(&truth), tta);
        (s.metrics, s.full.unwrap_or_default())
    };
    let (metrics, full) = scored(Tta::None);
    let tta = (tta != Tta::None).then(|| scored(tta));
    let epoch = match kind {
        CheckpointKind::Last => state.epochs_done,
        CheckpointKind::Best => state.best.as_ref().map_or(state.epochs_done, |b| b.epoch),
    };
    Ok(Evaluation { metrics, full, tta, image_size: config.data.image_size, state, epoch, images, on })
}

/// Tile side of the grids.
const TILE: u32 = 160;

/// The two pictures of a trial's predictions on its validation images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grid {
    /// The tutorial's prediction grid: input | actual mask | predicted mask | overlay for the first
    /// validation images.
    Predictions,
    /// The worst validation images by IoU at their own size: input | actual mask | predicted mask
    /// | errors (false positives and false negatives in two colours), with each image's figures.
    Worst,
}

/// Draws `grid` of a trial's best checkpoint with `samples` validation images.
pub fn draw_grid(grid: Grid, runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize) -> Result<Canvas, TrainError> {
    match grid {
        Grid::Predictions => draw_prediction_grid(runs_dir, sweep, run, device, samples),
        Grid::Worst => draw_worst_grid(runs_dir, sweep, run, device, samples),
    }
}

/// [`draw_grid`] saved as a PNG file.
pub fn save_grid(grid: Grid, runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize, path: &Path) -> Result<(), TrainError> {
    draw_grid(grid, runs_dir, sweep, run, device, samples)?.save_png(path).map_err(TrainError::io(path))
}

/// [`draw_grid`] as PNG bytes (for `sweep ui`, which keeps it in memory).
pub fn grid_png(grid: Grid, runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize) -> Result<Vec<u8>, TrainError> {
    let canvas = draw_grid(grid, runs_dir, sweep, run, device, samples)?;
    crate::canvas::png_bytes(canvas.image()).map_err(TrainError::io(Path::new(run)))
}

fn draw_prediction_grid(runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize) -> Result<Canvas, TrainError> {
    let run_dir = TrialDir::of(runs_dir, sweep, run);
    let (config, model, state) = super::load_model(&run_dir, CheckpointKind::Best, device)?;
    let super::DataSplit { samples: data, val, .. } = super::load_split(&config, runs_dir)?;
    let predictor = crate::train::predict::Predictor::new(model, &config, device.clone());
    let shown: Vec<usize> = val.into_iter().take(samples.max(1)).collect();
    let (gap, label_h, header) = (8u32, 20u32, 44u32);
    let columns = ["input", "actual mask", "predicted mask", "overlay (prediction)"];
    let width = gap + columns.len() as u32 * (TILE + gap);
    let height = header + label_h + shown.len() as u32 * (TILE + gap) + gap;
    let mut canvas = Canvas::new(width, height, [250, 250, 250]);
    let epoch = state.best.map(|b| b.epoch).unwrap_or(state.epochs_done);
    canvas.text(&format!("{run}: best checkpoint (epoch {epoch}) on validation images"), gap as i32, 10, 18.0, [30, 30, 30]);
    for (k, name) in columns.iter().enumerate() {
        canvas.text_centred(name, (gap + k as u32 * (TILE + gap) + TILE / 2) as i32, header as i32, 14.0, [30, 30, 30]);
    }
    for (row, &i) in shown.iter().enumerate() {
        let sample = &data[i];
        let (w, h) = sample.image.dimensions();
        let predicted = mask_of(&predictor.logits(&sample.image), (w, h));
        let tiles: [RgbImage; 4] = [sample.image.clone(), mask_to_rgb(&sample.mask), mask_to_rgb(&predicted), overlay(&sample.image, &predicted)];
        let y = header + label_h + row as u32 * (TILE + gap);
        for (k, tile) in tiles.iter().enumerate() {
            let fitted = fit(tile, TILE, TILE);
            canvas.blit(&fitted, gap + k as u32 * (TILE + gap) + (TILE - fitted.width()) / 2, y + (TILE - fitted.height()) / 2);
        }
    }
    Ok(canvas)
}

fn draw_worst_grid(runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize) -> Result<Canvas, TrainError> {
    let run_dir = TrialDir::of(runs_dir, sweep, run);
    let e = evaluate_checkpoint(&run_dir, CheckpointKind::Best, runs_dir, None, Tta::None, device)?;
    let (config, model, _) = super::load_model(&run_dir, CheckpointKind::Best, device)?;
    let super::DataSplit { samples: data, val, .. } = super::load_split(&config, runs_dir)?;
    let dir = super::dataset_dir(&config, runs_dir)?;
    let predictor = Predictor::new(model, &config, device.clone());
    let worst: Vec<&scoring::ImageScore> = e.full.worst_first().into_iter().take(samples.max(1)).collect();
    let index: std::collections::HashMap<&str, usize> = val.iter().map(|&i| (data[i].id.as_str(), i)).collect();
    let shown: Vec<usize> = worst.iter().filter_map(|w| index.get(w.id.as_str()).copied()).collect();
    let files = scoring::files_of(&dir, &data, &shown)?;
    let truth = scoring::load_truth(&dir, &data, &shown)?;

    // Each row: a caption with the image's figures, then its four tiles, as tall as they fit.
    let mut rows = Vec::new();
    for ((score, file), truth) in worst.iter().zip(&files).zip(&truth) {
        let image = data::decode_image(&file.image)?;
        let predicted = predictor.mask(&image);
        let actual = truth.to_gray();
        let m = score.metrics();
        let caption = format!("{} ({}x{}): IoU {:.4}, dice {:.4}, car IoU {}", score.id, score.width, score.height, m.iou, m.dice, car_iou(m.fg_iou));
        let tiles = [image.clone(), mask_to_rgb(&actual), mask_to_rgb(&predicted), crate::canvas::errors_overlay(&image, &actual, &predicted)]
            .map(|tile| fit(&tile, TILE, TILE));
        rows.push((caption, tiles));
    }
    let (gap, label_h, header, caption_h) = (8u32, 20u32, 68u32, 20u32);
    let columns = ["input", "actual mask", "predicted mask", "errors"];
    let width = gap + columns.len() as u32 * (TILE + gap);
    let row_height = |tiles: &[RgbImage; 4]| caption_h + tiles.iter().map(RgbImage::height).max().unwrap_or(0) + gap;
    let height = header + label_h + rows.iter().map(|(_, tiles)| row_height(tiles)).sum::<u32>() + gap;
    let mut canvas = Canvas::new(width, height, [250, 250, 250]);
    let pooled = e.full.metrics();
    canvas.text(
        &format!("{run}: the {} worst of {} validation images (best checkpoint, epoch {})", rows.len(), e.images, e.epoch),
        gap as i32,
        8,
        17.0,
        [30, 30, 30],
    );
    canvas.text(
        &format!("by IoU at each image's own size; the split's pooled IoU {:.4}, dice {:.4}", pooled.iou, pooled.dice),
        gap as i32,
        28,
        13.0,
        [80, 80, 80],
    );
    // The legend: a swatch of each error colour, then its name.
    let legend_x = gap + 2 * (TILE + gap) + 40;
    for (k, (name, colour)) in
        [("false positive", crate::canvas::FALSE_POSITIVE), ("false negative", crate::canvas::FALSE_NEGATIVE)].into_iter().enumerate()
    {
        let x = legend_x + k as u32 * 130;
        canvas.blit(&RgbImage::from_pixel(12, 12, image::Rgb(colour)), x, 45);
        canvas.text(name, x as i32 + 17, 44, 13.0, [60, 60, 60]);
    }
    for (k, name) in columns.iter().enumerate() {
        canvas.text_centred(name, (gap + k as u32 * (TILE + gap) + TILE / 2) as i32, header as i32, 14.0, [30, 30, 30]);
    }
    let mut y = header + label_h;
    for (caption, tiles) in &rows {
        canvas.text(caption, gap as i32, y as i32, 13.0, [30, 30, 30]);
        for (k, tile) in tiles.iter().enumerate() {
            canvas.blit(tile, gap + k as u32 * (TILE + gap) + (TILE - tile.width()) / 2, y + caption_h);
        }
        y += row_height(tiles);
    }
    Ok(canvas)
}

/// A car IoU for a caption: "none" where the image has no car in truth or prediction.
fn car_iou(v: f64) -> String {
    if v.is_nan() { "none".to_string() } else { format!("{v:.4}") }
}
