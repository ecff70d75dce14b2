//! The loss and the metrics, defined once and used by training, evaluation and the tests.
//!
//! - `loss` = pixel-mean binary cross-entropy + (1 - dice). The cross-entropy is computed from
//!   logits as `max(x, 0) - x*y + log(1 + exp(-|x|))`, which never overflows.
//! - `dice` = (2 * sum(y*p) + 1) / (sum(y) + sum(p) + 1), the tutorial's soft dice (smooth = 1) on
//!   probabilities. Training takes it over each batch flattened and reports an epoch's loss and
//!   dice as the mean over batches weighted by batch size, as Keras does. Validation takes the
//!   cross-entropy's mean over every pixel of the split and the dice from sums over the whole
//!   split ([`SplitSums`]), so that its values do not depend on the batch size: a sweep over
//!   `train.batch_size` compares one measure.
//! - `iou` = mean IoU over the two classes (background, car) from one confusion matrix accumulated
//!   over the whole split, predictions thresholded at probability 0.5 (logit 0), as
//!   `tf.keras.metrics.MeanIoU(num_classes=2)` computes it when given class ids: IoU_c =
//!   TP_c / (TP_c + FP_c + FN_c), and a class absent from both truth and prediction is left out.
//! - `fg_iou` = the car class's IoU alone (NaN when no pixel of the split is car in truth or
//!   prediction: it is undefined there).
//!
//! Each is measured at the training resolution (`data.image_size`: what every epoch records as
//! `val_*`), and, by [`super::scoring`], at each image's original size ([`FullMetrics`]:
//! `val_full_dice`, `val_full_iou`, `val_full_fg_iou`), where `full_dice` is the dice of the
//! thresholded masks, 2TP / (2TP + FP + FN) (1 when neither truth nor prediction has a car pixel).

use burn::tensor::activation::relu;
use burn::tensor::{Int, Tensor, activation::sigmoid};

/// Pixel-mean binary cross-entropy from logits.
///
/// # Shapes
/// - logits, targets: [batch, 1, h, w]; returns [1]
pub fn bce_with_logits(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let per_pixel = relu(logits.clone()) - logits.clone() * targets + logits.abs().neg().exp().log1p();
    per_pixel.mean()
}

/// The soft dice coefficient over the whole batch, from probabilities.
///
/// # Shapes
/// - probs, targets: [batch, 1, h, w]; returns [1]
pub fn soft_dice(probs: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let intersection = (probs.clone() * targets.clone()).sum();
    let total = targets.sum() + probs.sum();
    (intersection.mul_scalar(2.0).add_scalar(1.0)) / total.add_scalar(1.0)
}

/// BCE + dice loss, and the dice it contains (for logging).
///
/// # Shapes
/// - logits, targets: [batch, 1, h, w]; returns ([1] loss, [1] dice)
pub fn bce_dice_loss(logits: Tensor<4>, targets: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let dice = soft_dice(sigmoid(logits.clone()), targets.clone());
    let loss = bce_with_logits(logits, targets) + dice.clone().neg().add_scalar(1.0);
    (loss, dice)
}

/// The three pixel counts a binary confusion matrix needs, computed on the device:
/// [true positives, predicted positives, actual positives].
///
/// # Shapes
/// - logits, targets: [batch, 1, h, w]; returns [3] integer counts
pub fn confusion_counts(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1, Int> {
    let predicted = logits.greater_elem(0.0).int(); // probability > 0.5
    let actual = targets.greater_elem(0.5).int();
    let tp = (predicted.clone() * actual.clone()).sum();
    Tensor::cat(vec![tp, predicted.sum(), actual.sum()], 0)
}

/// The sums a whole split's loss and dice are made of, over one batch, computed on the device:
/// [sum of per-pixel cross-entropy, sum(y*p), sum(p), sum(y)].
///
/// # Shapes
/// - logits, targets: [batch, 1, h, w]; returns [4]
pub fn split_sums(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let bce = (relu(logits.clone()) - logits.clone() * targets.clone() + logits.clone().abs().neg().exp().log1p()).sum();
    let probs = sigmoid(logits);
    let intersection = (probs.clone() * targets.clone()).sum();
    Tensor::cat(vec![bce, intersection, probs.sum(), targets.sum()], 0)
}

/// Accumulates [`split_sums`] and confusion matrices over a whole split, in f64, into metrics
/// that do not depend on how the split was batched.
#[derive(Debug, Clone, Default)]
pub struct SplitSums {
    bce: f64,
    intersection: f64,
    predicted: f64,
    actual: f64,
    pixels: u64,
    confusion: Confusion,
}

impl SplitSums {
    /// Adds one batch of `pixels` pixels: its [`split_sums`] and its confusion matrix.
    pub fn add_batch(&mut self, sums: [f64; 4], pixels: u64, confusion: &Confusion) {
        self.bce += sums[0];
        self.intersection += sums[1];
        self.predicted += sums[2];
        self.actual += sums[3];
        self.pixels += pixels;
        self.confusion.add(confusion);
    }

    /// loss = mean cross-entropy over every pixel + 1 - dice; dice from the split's sums.
    pub fn finish(&self) -> SplitMetrics {
        let dice = (2.0 * self.intersection + 1.0) / (self.predicted + self.actual + 1.0);
        SplitMetrics {
            loss: self.bce / self.pixels.max(1) as f64 + 1.0 - dice,
            dice,
            iou: self.confusion.mean_iou(),
            fg_iou: self.confusion.foreground_iou().unwrap_or(f64::NAN),
        }
    }
}

/// A binary confusion matrix over pixels (car is the positive class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

impl Confusion {
    /// From the device counts of [`confusion_counts`] for a batch of `pixels` pixels.
    pub fn from_counts(tp: u64, predicted: u64, actual: u64, pixels: u64) -> Self {
        let fp = predicted - tp;
        let fn_ = actual - tp;
        Self { tp, fp, fn_, tn: pixels - tp - fp - fn_ }
    }

    /// Counts directly from host slices of probabilities (or 0/1 predictions) and 0/1 truth.
    pub fn from_probabilities(probs: &[f32], truth: &[f32]) -> Self {
        let mut c = Self::default();
        for (&p, &t) in probs.iter().zip(truth) {
            match (p > 0.5, t > 0.5) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    pub fn add(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    /// IoU of the car class; None when the class is absent from truth and prediction.
    pub fn foreground_iou(&self) -> Option<f64> {
        let union = self.tp + self.fp + self.fn_;
        (union > 0).then(|| self.tp as f64 / union as f64)
    }

    /// IoU of the background class; None when it is absent from truth and prediction.
    pub fn background_iou(&self) -> Option<f64> {
        let union = self.tn + self.fp + self.fn_;
        (union > 0).then(|| self.tn as f64 / union as f64)
    }

    /// Mean over the classes present in truth or prediction (NaN if there are no pixels at all).
    pub fn mean_iou(&self) -> f64 {
        let present: Vec<f64> = [self.background_iou(), self.foreground_iou()].into_iter().flatten().collect();
        if present.is_empty() { f64::NAN } else { present.iter().sum::<f64>() / present.len() as f64 }
    }

    /// The dice of the thresholded masks (the car class's F1 score), 2TP / (2TP + FP + FN); 1 when
    /// neither truth nor prediction holds a car pixel (Kaggle Carvana's rule for an empty image).
    pub fn dice(&self) -> f64 {
        let denominator = 2 * self.tp + self.fp + self.fn_;
        if denominator == 0 { 1.0 } else { 2.0 * self.tp as f64 / denominator as f64 }
    }

    /// Pixels counted.
    pub fn pixels(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }
}

/// The metrics of thresholded masks at the images' original size, from one confusion matrix
/// (pooled over a split, or one image's). Recorded as `val_full_dice`, `val_full_iou` and
/// `val_full_fg_iou` when `data.eval_full_resolution` is on.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct FullMetrics {
    #[serde(with = "crate::config::nonfinite")]
    pub dice: f64,
    #[serde(with = "crate::config::nonfinite")]
    pub iou: f64,
    #[serde(with = "crate::config::nonfinite")]
    pub fg_iou: f64,
}

impl FullMetrics {
    pub fn of(c: &Confusion) -> Self {
        Self { dice: c.dice(), iou: c.mean_iou(), fg_iou: c.foreground_iou().unwrap_or(f64::NAN) }
    }

    /// The mean of each metric over `images` (one confusion matrix each), a NaN `fg_iou` (an
    /// image with no car in truth or prediction) left out of its mean.
    pub fn image_mean(images: &[Confusion]) -> Self {
        let mean = |values: Vec<f64>| {
            let finite: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
            if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 }
        };
        let each: Vec<FullMetrics> = images.iter().map(FullMetrics::of).collect();
        Self {
            dice: mean(each.iter().map(|m| m.dice).collect()),
            iou: mean(each.iter().map(|m| m.iou).collect()),
            fg_iou: mean(each.iter().map(|m| m.fg_iou).collect()),
        }
    }

    /// By the names the tracker records them under, in split `val`: `full_dice`, ...
    pub fn named(&self) -> [(&'static str, f64); 3] {
        let [dice, iou, fg_iou] = crate::config::FULL_RESOLUTION_METRICS;
        [(dice, self.dice), (iou, self.iou), (fg_iou, self.fg_iou)]
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.named().into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// One split's metrics for one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SplitMetrics {
    #[serde(with = "crate::config::nonfinite")]
    pub loss: f64,
    #[serde(with = "crate::config::nonfinite")]
    pub dice: f64,
    #[serde(with = "crate::config::nonfinite")]
    pub iou: f64,
    #[serde(with = "crate::config::nonfinite")]
    pub fg_iou: f64,
}

impl SplitMetrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "dice" => Some(self.dice),
            "iou" => Some(self.iou),
            "fg_iou" => Some(self.fg_iou),
            _ => None,
        }
    }

    pub fn named(&self) -> [(&'static str, f64); 4] {
        [("loss", self.loss), ("dice", self.dice), ("iou", self.iou), ("fg_iou", self.fg_iou)]
    }
}

/// Accumulates training batches into an epoch's metrics, as Keras reports them: loss and dice
/// are per-batch values averaged with the batch sizes as weights.
#[derive(Debug, Clone, Default)]
pub struct MetricAccumulator {
    loss_sum: f64,
    dice_sum: f64,
    samples: u64,
    confusion: Confusion,
}

impl MetricAccumulator {
    /// Adds one batch: its mean loss and soft dice, its size, and its confusion matrix.
    pub fn add_batch(&mut self, loss: f64, dice: f64, batch_size: usize, confusion: &Confusion) {
        self.loss_sum += loss * batch_size as f64;
        self.dice_sum += dice * batch_size as f64;
        self.samples += batch_size as u64;
        self.confusion.add(confusion);
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn confusion(&self) -> Confusion {
        self.confusion
    }

    pub fn finish(&self) -> SplitMetrics {
        let n = self.samples.max(1) as f64;
        SplitMetrics {
            loss: self.loss_sum / n,
            dice: self.dice_sum / n,
            iou: self.confusion.mean_iou(),
            fg_iou: self.confusion.foreground_iou().unwrap_or(f64::NAN),
        }
    }
}
