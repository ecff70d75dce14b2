//! Scoring a model as the field does: at each image's original size, per image, and with
//! test-time flips.
//!
//! Training sees every image resized to `data.image_size`, and its `val_*` metrics are measured
//! there. Carvana's leaderboard and segmentation papers measure at the original resolution: the
//! model's logits for an image are resized bilinearly to the image's own size ([`resize_bilinear`])
//! and a pixel is car where the resized logit is above 0 (probability above 0.5) — exactly the
//! masks `sweep predict` writes. [`score_image`] counts that mask against the image's mask,
//! decoded at its own size ([`TruthMask`]), into a [`Confusion`]; a split's figures are computed
//! two ways from those ([`FullResolution`]):
//! - **pooled**: one confusion matrix summed over every pixel of every image (a large image
//!   weighs more), then the metrics of [`FullMetrics::of`]: what `val_full_*` records and what
//!   scikit-learn's `jaccard_score(average="macro")` / `f1_score` compute on the concatenated
//!   masks;
//! - **mean per image**: each image's metrics, then their mean ([`FullMetrics::image_mean`]):
//!   Kaggle Carvana's leaderboard figure is this mean of per-image dice.
//!
//! The flip TTA ([`Tta::Flip`]) averages the probabilities of an image and of its horizontal
//! mirror (the mirror's output mirrored back); the rest of the pipeline takes the logit of that
//! average, so the TTA figures are measured the same way, and are reported apart.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor};
use image::GrayImage;
use rayon::prelude::*;

use crate::data::{self, DataError, Sample, SampleFiles};
use crate::train::batch_tensors;
use crate::train::metrics::{Confusion, FullMetrics, SplitMetrics, SplitSums, confusion_counts, split_sums};
use crate::train::model::UNet;

/// Test-time augmentation: none, or the horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tta {
    #[default]
    None,
    Flip,
}

impl Tta {
    pub fn parse(s: &str) -> Option<Tta> {
        match s {
            "none" => Some(Tta::None),
            "flip" | "hflip" => Some(Tta::Flip),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flip => "flip",
        }
    }
}

/// The model's logits for `images` ([batch, 3, h, w] -> [batch, 1, h, w]). With [`Tta::Flip`]:
/// the logit of the mean of the image's probability and its mirror's, mirrored back.
pub fn logits(model: &UNet, images: Tensor<4>, tta: Tta) -> Tensor<4> {
    match tta {
        Tta::None => model.forward(images),
        Tta::Flip => {
            let plain = model.forward(images.clone());
            let mirrored = model.forward(images.flip([3])).flip([3]);
            mean_probability_logit(plain, mirrored)
        }
    }
}

/// logit((σ(a) + σ(b)) / 2) = ln(σ(a) + σ(b)) − ln(σ(−a) + σ(−b)), each sum taken as a
/// log-sum-exp of log-sigmoids: no step overflows, and a probability within 1e-7 of 0 or 1 keeps
/// its logit (σ itself rounds it away in f32).
fn mean_probability_logit(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    fn log_add_exp(x: Tensor<4>, y: Tensor<4>) -> Tensor<4> {
        let gap = (x.clone() - y.clone()).abs();
        let max = (x + y + gap.clone()).div_scalar(2.0);
        max + gap.neg().exp().log1p()
    }
    let car = log_add_exp(log_sigmoid(a.clone()), log_sigmoid(b.clone()));
    let background = log_add_exp(log_sigmoid(a.neg()), log_sigmoid(b.neg()));
    car - background
}

/// Resizes a plane of `from` = (width, height) values to `to` bilinearly with half-pixel
/// centres: output pixel x reads the input at (x + 0.5) · in / out − 0.5 (clamped to the first
/// pixel), between its two neighbours (the last pixel repeated past the edge). This is PyTorch's
/// `interpolate(mode="bilinear", align_corners=False)` and TensorFlow 2's `tf.image.resize`
/// without antialiasing, written here because `image`'s resize filters widen their kernel when
/// shrinking and work on its pixel types, not on logits.
pub fn resize_bilinear(src: &[f32], from: (u32, u32), to: (u32, u32)) -> Vec<f32> {
    let (sw, sh) = (from.0 as usize, from.1 as usize);
    let (dw, dh) = (to.0 as usize, to.1 as usize);
    assert_eq!(src.len(), sw * sh, "a {sw}x{sh} plane");
    let taps = |out: usize, len: usize| -> Vec<(usize, usize, f32)> {
        let scale = len as f64 / out as f64;
        (0..out)
            .map(|i| {
                let at = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
                let lo = (at.floor() as usize).min(len - 1);
                let hi = (lo + 1).min(len - 1);
                (lo, hi, (at - lo as f64) as f32)
            })
            .collect()
    };
    let (xs, ys) = (taps(dw, sw), taps(dh, sh));
    let mut out = vec![0.0f32; dw * dh];
    out.par_chunks_mut(dw.max(1)).zip(ys.par_iter()).for_each(|(row, &(y0, y1, wy))| {
        let (top, bottom) = (&src[y0 * sw..(y0 + 1) * sw], &src[y1 * sw..(y1 + 1) * sw]);
        for (v, &(x0, x1, wx)) in row.iter_mut().zip(&xs) {
            let upper = top[x0] + (top[x1] - top[x0]) * wx;
            let lower = bottom[x0] + (bottom[x1] - bottom[x0]) * wx;
            *v = upper + (lower - upper) * wy;
        }
    });
    out
}

/// An image's mask at its original size, one bit a pixel (a Carvana mask, 1918x1280, takes
/// 300 KiB), for scoring every epoch without decoding it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthMask {
    pub id: String,
    pub width: u32,
    pub height: u32,
    bits: Vec<u64>,
}

impl TruthMask {
    /// From a 0/1 (or 0/255) mask: nonzero is car.
    pub fn new(id: &str, mask: &GrayImage) -> Self {
        let mut bits = vec![0u64; (mask.len()).div_ceil(64)];
        for (i, &v) in mask.as_raw().iter().enumerate() {
            if v > 0 {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        Self { id: id.to_string(), width: mask.width(), height: mask.height(), bits }
    }

    /// Whether pixel `i` (row-major) is car.
    pub fn get(&self, i: usize) -> bool {
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    /// As a 0/1 image.
    pub fn to_gray(&self) -> GrayImage {
        GrayImage::from_fn(self.width, self.height, |x, y| image::Luma([u8::from(self.get((y * self.width + x) as usize))]))
    }
}

/// The files of `indices` of a decoded dataset (`samples` of directory `dir`), found again by id.
pub fn files_of(dir: &Path, samples: &[Sample], indices: &[usize]) -> Result<Vec<SampleFiles>, DataError> {
    let by_id: HashMap<String, SampleFiles> = data::scan(dir)?.into_iter().map(|f| (f.id.clone(), f)).collect();
    indices
        .iter()
        .map(|&i| {
            let id = &samples[i].id;
            by_id.get(id).cloned().ok_or_else(|| DataError::Io {
                path: dir.join("train").join(id),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "the image was removed from the dataset while in use"),
            })
        })
        .collect()
}

/// Decodes the masks of `indices` of a dataset at their original size, in parallel. A mask whose
/// size is no longer its image's (the file changed since the dataset was loaded) is an error.
pub fn load_truth(dir: &Path, samples: &[Sample], indices: &[usize]) -> Result<Vec<TruthMask>, DataError> {
    let files = files_of(dir, samples, indices)?;
    files
        .par_iter()
        .zip(indices.par_iter())
        .map(|(f, &i)| {
            let mask = data::decode_mask(&f.mask)?;
            if mask.dimensions() != samples[i].original_size {
                return Err(DataError::MaskSize {
                    mask: f.mask.clone(),
                    image: f.image.clone(),
                    mask_size: mask.dimensions(),
                    image_size: samples[i].original_size,
                });
            }
            Ok(TruthMask::new(&f.id, &mask))
        })
        .collect()
}

/// One image's confusion matrix at its original size: `logits` (one plane at the model's
/// (width, height) `model`) resized bilinearly to the truth's size, car where above 0.
pub fn score_image(logits: &[f32], model: (u32, u32), truth: &TruthMask) -> Confusion {
    let full = resize_bilinear(logits, model, (truth.width, truth.height));
    let mut c = Confusion::default();
    for (i, &l) in full.iter().enumerate() {
        match (l > 0.0, truth.get(i)) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, true) => c.fn_ += 1,
            (false, false) => c.tn += 1,
        }
    }
    c
}

/// One image's result at its original size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageScore {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub confusion: Confusion,
}

impl ImageScore {
    pub fn metrics(&self) -> FullMetrics {
        FullMetrics::of(&self.confusion)
    }
}

/// A split scored at its images' original sizes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FullResolution {
    /// In the split's order.
    pub images: Vec<ImageScore>,
}

impl FullResolution {
    /// One confusion matrix over every pixel of every image.
    pub fn pooled(&self) -> Confusion {
        let mut c = Confusion::default();
        for image in &self.images {
            c.add(&image.confusion);
        }
        c
    }

    /// The pooled metrics (what `val_full_*` records).
    pub fn metrics(&self) -> FullMetrics {
        FullMetrics::of(&self.pooled())
    }

    /// The mean of the images' own metrics.
    pub fn image_mean(&self) -> FullMetrics {
        FullMetrics::image_mean(&self.images.iter().map(|i| i.confusion).collect::<Vec<_>>())
    }

    /// The images, worst first: lowest mean IoU, then lowest dice, then by id.
    pub fn worst_first(&self) -> Vec<&ImageScore> {
        let mut images: Vec<&ImageScore> = self.images.iter().collect();
        let key = |i: &ImageScore| {
            let m = i.metrics();
            (m.iou, m.dice)
        };
        images.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then_with(|| a.id.cmp(&b.id))
        });
        images
    }
}

/// A split evaluated: its training-resolution metrics, and its full-resolution scores when the
/// truth at full size was given.
#[derive(Debug, Clone)]
pub struct Scored {
    pub metrics: SplitMetrics,
    pub full: Option<FullResolution>,
}

/// Evaluates `model` (in eval mode) on `loader`'s batches: the split's metrics at the training
/// resolution (loss and dice over the whole split, whatever the batch size), and with `truth`
/// (the loader's images' masks at full size, in its order) every image scored at its own size.
pub fn evaluate_split(model: &UNet, loader: &data::Loader, device: &Device, truth: Option<&[TruthMask]>, tta: Tta) -> Scored {
    let model = burn::module::Module::valid(model);
    let mut sums = SplitSums::default();
    let mut images = Vec::new();
    for batch in loader.epoch(0) {
        let (n, h, w) = (batch.len, batch.height, batch.width);
        let (inputs, masks) = batch_tensors(batch, device);
        let logits = logits(&model, inputs, tta);
        let pixels = logits.shape().num_elements() as u64;
        if let Some(truth) = truth {
            let host: Vec<f32> = logits.clone().into_data().iter::<f32>().collect();
            let plane = h * w;
            let first = images.len();
            let scored: Vec<ImageScore> = (0..n)
                .into_par_iter()
                .map(|k| {
                    let t = &truth[first + k];
                    let confusion = score_image(&host[k * plane..(k + 1) * plane], (w as u32, h as u32), t);
                    ImageScore { id: t.id.clone(), width: t.width, height: t.height, confusion }
                })
                .collect();
            images.extend(scored);
        }
        let values: Vec<f64> = split_sums(logits.clone(), masks.clone()).into_data().iter::<f64>().collect();
        let counts: Vec<i64> = confusion_counts(logits, masks).into_data().iter::<i64>().collect();
        let confusion = Confusion::from_counts(counts[0] as u64, counts[1] as u64, counts[2] as u64, pixels);
        sums.add_batch([values[0], values[1], values[2], values[3]], pixels, &confusion);
    }
    Scored { metrics: sums.finish(), full: truth.map(|_| FullResolution { images }) }
}

/// Forwards run before [`latency_ms`] times any (at least; see [`LATENCY_WARMUP_SECONDS`]): the
/// first ones allocate and fill caches.
pub const LATENCY_WARMUP: usize = 3;
/// ... and for at least this long, so that a small model's caches and the thread pool are warm.
pub const LATENCY_WARMUP_SECONDS: f64 = 0.1;
/// Forwards [`latency_ms`] times at least, of which it reports the median.
pub const LATENCY_REPEATS: usize = 15;
/// ... and for at least this long in all (at most [`LATENCY_MAX_REPEATS`] forwards), so that a
/// sub-millisecond model's median is over enough passes to be steady.
pub const LATENCY_SECONDS: f64 = 0.3;
pub const LATENCY_MAX_REPEATS: usize = 2000;

/// The model's inference latency (the `infer_ms` cost metric): the median wall clock, in
/// milliseconds, of one forward pass of a batch of one `height` x `width` image in eval mode on
/// `device`, on the calling thread's pool (a worker's `--threads`), each pass read back to the
/// host so that a GPU's queued work is inside the time. Untimed passes first (at least
/// [`LATENCY_WARMUP`], for at least [`LATENCY_WARMUP_SECONDS`]), then timed ones (at least
/// [`LATENCY_REPEATS`], for at least [`LATENCY_SECONDS`], at most [`LATENCY_MAX_REPEATS`]). The
/// image is fixed (a smooth pattern in [0, 1]): the kernels' time does not depend on the pixels.
pub fn latency_ms(model: &UNet, height: usize, width: usize, device: &Device) -> f64 {
    let model = burn::module::Module::valid(model);
    let plane = height * width;
    let pixels: Vec<f32> = (0..3 * plane).map(|i| 0.5 + 0.5 * ((i % 97) as f32 * 0.13).sin()).collect();
    let input = Tensor::<4>::from_data(burn::tensor::TensorData::new(pixels, [1, 3, height, width]), device);
    let pass = || {
        let started = std::time::Instant::now();
        let logits = model.forward(input.clone());
        std::hint::black_box(logits.into_data());
        started.elapsed().as_secs_f64()
    };
    let (mut warm, mut passes) = (0.0, 0);
    while passes < LATENCY_WARMUP || warm < LATENCY_WARMUP_SECONDS {
        warm += pass();
        passes += 1;
    }
    let mut times: Vec<f64> = Vec::with_capacity(LATENCY_REPEATS);
    let mut total = 0.0;
    while times.len() < LATENCY_MAX_REPEATS && (times.len() < LATENCY_REPEATS || total < LATENCY_SECONDS) {
        let t = pass();
        total += t;
        times.push(t * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: PyTorch 2.15's `F.interpolate(x, size=(3, 5), mode="bilinear",
    /// align_corners=False)` of the 2x3 plane [[0, 1, 2], [3, 4, 5]] (and back down to 2x3 from a
    /// 4x6 plane), printed by torch and copied here: an independent implementation of the
    /// definition.
    #[test]
    fn bilinear_resizing_matches_pytorchs_half_pixel_rule() {
        let up = resize_bilinear(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], (3, 2), (5, 3));
        let torch_up = [
            0.0, 0.4, 1.0, 1.6, 2.0, //
            1.5, 1.9, 2.5, 3.1, 3.5, //
            3.0, 3.4, 4.0, 4.6, 5.0,
        ];
        for (a, b) in up.iter().zip(torch_up) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
        let plane: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let down = resize_bilinear(&plane, (6, 4), (3, 2));
        let torch_down = [3.5, 5.5, 7.5, 15.5, 17.5, 19.5];
        for (a, b) in down.iter().zip(torch_down) {
            assert!((a - b).abs() < 1e-5, "{down:?}");
        }
        assert_eq!(resize_bilinear(&[7.0], (1, 1), (4, 3)), vec![7.0; 12], "one pixel spreads");
    }

    #[test]
    fn a_truth_mask_keeps_every_pixel() {
        let mask = GrayImage::from_fn(67, 3, |x, y| image::Luma([u8::from((x * 7 + y) % 3 == 0)]));
        let t = TruthMask::new("a", &mask);
        assert_eq!(t.to_gray(), mask);
    }

    #[test]
    fn an_image_is_scored_on_its_own_pixels() {
        // Logits at 2x2 that are +1 on the left column: resized to 4x4, the left half is car.
        let truth = TruthMask::new("t", &GrayImage::from_fn(4, 4, |x, y| image::Luma([u8::from(x < 2 || (x == 2 && y == 0))])));
        let c = score_image(&[1.0, -1.0, 1.0, -1.0], (2, 2), &truth);
        assert_eq!(c, Confusion { tp: 8, fp: 0, fn_: 1, tn: 7 });
        assert!((c.dice() - 16.0 / 17.0).abs() < 1e-12);
        assert!((FullMetrics::of(&c).iou - (8.0 / 9.0 + 7.0 / 8.0) / 2.0).abs() < 1e-12);
    }
}
