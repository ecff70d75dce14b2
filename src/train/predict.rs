//! Inference on image files: a run's model in eval mode turns any image into a mask at the
//! image's own size, the way training saw its data (resize to the model's input, rescale).

use std::path::{Path, PathBuf};

use burn::tensor::activation::sigmoid;
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

/// A model ready to predict.
pub struct Predictor {
    model: UNet,
    /// The model's input (height, width).
    size: (u32, u32),
    rescale: f32,
    device: Device,
}

/// The files written for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub mask: PathBuf,
    pub overlay: PathBuf,
    /// Fraction of the image predicted as car.
    pub foreground: f64,
}

impl Predictor {
    pub fn new(model: UNet, config: &TrialConfig, device: Device) -> Self {
        let [h, w] = config.data.image_size;
        Self { model: burn::module::Module::valid(&model), size: (h as u32, w as u32), rescale: config.augment.rescale, device }
    }

    /// The car probability of every pixel of `image`, at the model's input size.
    pub fn probabilities(&self, image: &RgbImage) -> GrayImage {
        let (h, w) = self.size;
        let resized = data::resize_image(image, w, h);
        let plane = (w * h) as usize;
        let (mut pixels, mut unused) = (vec![0.0f32; 3 * plane], vec![0.0f32; plane]);
        Augment::identity(self.rescale).apply(&Default::default(), &resized, &GrayImage::new(w, h), &mut pixels, &mut unused);
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, h as usize, w as usize]), &self.device);
        let probs: Vec<f32> = sigmoid(self.model.forward(input)).into_data().iter::<f32>().collect();
        GrayImage::from_fn(w, h, |x, y| image::Luma([(probs[(y * w + x) as usize] * 255.0).round() as u8]))
    }

    /// A 0/1 mask for `image` at its own size: probabilities resized back, thresholded at 0.5.
    pub fn mask(&self, image: &RgbImage) -> GrayImage {
        let probs = self.probabilities(image);
        let (w, h) = image.dimensions();
        let mut full = image::imageops::resize(&probs, w, h, image::imageops::FilterType::Triangle);
        for v in full.iter_mut() {
            *v = u8::from(*v > 127);
        }
        full
    }

    /// Writes `<stem>_mask.png` (0/255) and `<stem>_overlay.png` for one image file into `out`.
    pub fn predict_file(&self, path: &Path, out: &Path) -> Result<Written, DataError> {
        let image = data::decode_image(path)?;
        let mask = self.mask(&image);
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
        let mut bytes = Vec::new();
        visible
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| DataError::Io { path: mask_path.clone(), source: std::io::Error::other(e) })?;
        crate::util::atomic_write(&mask_path, &bytes).map_err(io(&mask_path))?;
        save_png(&overlay(&image, &mask), &overlay_path).map_err(io(&overlay_path))?;
        let foreground = mask.iter().filter(|&&v| v > 0).count() as f64 / mask.len().max(1) as f64;
        Ok(Written { mask: mask_path, overlay: overlay_path, foreground })
    }
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
    pub metrics: SplitMetrics,
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
/// `data` when given.
pub fn evaluate_checkpoint(
    run: &TrialDir,
    kind: CheckpointKind,
    runs_dir: &Path,
    data: Option<&Path>,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let (config, model, state) = super::load_model(run, kind, device)?;
    let [h, w] = config.data.image_size;
    let (samples, indices, on) = match data {
        Some(dir) => {
            let samples = data::cached(dir, Some((h as u32, w as u32)))?;
            let all: Vec<usize> = (0..samples.len()).collect();
            (samples, all, format!("every image of {}", dir.display()))
        }
        None => {
            let super::DataSplit { samples, val, .. } = super::load_split(&config, runs_dir)?;
            (samples, val, "the trial's validation split".to_string())
        }
    };
    let images = indices.len();
    let loader = data::Loader::eval(samples, indices, config.train.batch_size, config.augment.rescale);
    let metrics = super::evaluate(&model, &loader, device);
    let epoch = match kind {
        CheckpointKind::Last => state.epochs_done,
        CheckpointKind::Best => state.best.as_ref().map_or(state.epochs_done, |b| b.epoch),
    };
    Ok(Evaluation { metrics, state, epoch, images, on })
}

/// Tile side of the prediction grid.
const TILE: u32 = 160;

/// The tutorial's prediction grid for a run: input | actual mask | predicted mask | overlay for
/// the first `samples` images of its validation split, saved as a PNG file.
pub fn prediction_grid(runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize, path: &Path) -> Result<(), TrainError> {
    draw_prediction_grid(runs_dir, sweep, run, device, samples)?.save_png(path).map_err(TrainError::io(path))
}

/// The prediction grid of [`prediction_grid`] as PNG bytes (for `sweep ui`, which keeps it in memory).
pub fn prediction_grid_png(runs_dir: &Path, sweep: &str, run: &str, device: &Device, samples: usize) -> Result<Vec<u8>, TrainError> {
    let canvas = draw_prediction_grid(runs_dir, sweep, run, device, samples)?;
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
        let predicted = threshold(&predictor.probabilities(&sample.image));
        let tiles: [RgbImage; 4] = [sample.image.clone(), mask_to_rgb(&sample.mask), mask_to_rgb(&predicted), overlay(&sample.image, &predicted)];
        let y = header + label_h + row as u32 * (TILE + gap);
        for (k, tile) in tiles.iter().enumerate() {
            let fitted = fit(tile, TILE, TILE);
            canvas.blit(&fitted, gap + k as u32 * (TILE + gap) + (TILE - fitted.width()) / 2, y + (TILE - fitted.height()) / 2);
        }
    }
    Ok(canvas)
}

fn threshold(probs: &GrayImage) -> GrayImage {
    GrayImage::from_fn(probs.width(), probs.height(), |x, y| image::Luma([u8::from(probs.get_pixel(x, y)[0] > 127)]))
}
