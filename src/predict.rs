//! Inference on image files: a run's model in eval mode turns any image into a mask at the
//! image's own size, the way training saw its data (resize to the model's input, rescale).

use std::path::{Path, PathBuf};

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbImage};

use crate::config::RunConfig;
use crate::data::{self, Augment, DataError};
use crate::model::UNet;
use crate::plot::canvas::{overlay, save_png};

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
    pub fn new(model: UNet, config: &RunConfig, device: Device) -> Self {
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
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
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
