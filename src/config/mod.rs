//! A trial's resolved configuration: every setting of one training run, with its default.
//!
//! The sweep file's sections `[data]`, `[model]`, `[train]`, `[augment]` and `[metric]` map onto the
//! structs here field for field; a trial is the defaults, overlaid with the file's base settings,
//! overlaid with one point of the parameter space. The resolved [`TrialConfig`] is written into the
//! run directory before training starts, and its hash identifies the trial in the store.
//!
//! Defaults are the tutorial's where it has one (Adam, learning rate 1e-3, batch 3, 5 epochs, hue
//! 0.1, flips, shifts 0.1, rescale 1/255) and Keras' where the tutorial relied on Keras (Adam's
//! epsilon 1e-7, Glorot-uniform weights, BatchNorm epsilon 1e-3).

use serde::{Deserialize, Deserializer, Serialize};

mod augment;
mod model;
pub mod objective;
pub mod program;

pub use augment::Augment;
pub use model::{ModelError, UNetConfig, WeightInit, nearest_valid};
pub use objective::{COST_METRICS, Constraint, FULL_RESOLUTION_METRICS, Goal, METRIC_NAMES, Objective, Split, nonfinite};
pub use program::ProgramConfig;

/// Every setting of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct TrialConfig {
    pub data: DataConfig,
    pub model: UNetConfig,
    pub train: TrainConfig,
    pub augment: Augment,
    pub metric: Objective,
    /// A user's own training program instead of the built-in U-Net (`[program]`). Left out of the
    /// canonical JSON when absent, so built-in trials keep their identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramConfig>,
}

/// Where the images come from and how they are split and sized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `"synthetic"` (the embedded set, generated on first use under `runs/data/`) or a directory
    /// in the Carvana layout.
    pub source: String,
    /// Every image and mask is resized to this (height, width) once, at load time.
    #[serde(deserialize_with = "size_from_int_or_pair")]
    pub image_size: [usize; 2],
    /// Fraction of images held out for validation, in (0, 1).
    pub val_fraction: f64,
    /// Seed of the train/validation split (the same for every trial of a sweep by default).
    pub split_seed: u64,
    /// What the split keeps together: single images, or every view of one car.
    #[serde(skip_serializing_if = "SplitBy::is_image")]
    pub split_by: SplitBy,
    /// Synthetic set: number of images.
    pub synthetic_count: usize,
    /// Synthetic set: (height, width) of the generated files.
    #[serde(deserialize_with = "size_from_int_or_pair")]
    pub synthetic_size: [usize; 2],
    /// Synthetic set: generator seed.
    pub synthetic_seed: u64,
    /// Also score the validation split at each image's original size every epoch
    /// (`val_full_dice`, `val_full_iou`, `val_full_fg_iou`), so that a sweep can rank by them.
    /// Not written into the canonical JSON when off (the default), so that the identity of every
    /// trial recorded before the setting existed stays the same.
    #[serde(skip_serializing_if = "is_false")]
    pub eval_full_resolution: bool,
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The setting a seed group varies: trials whose swept values differ by it alone are one
/// configuration trained with several seeds (a sweep file's `repeats = N`, or the key swept).
pub const SEED_KEY: &str = "train.seed";

/// The one default seed: a sweep file's `seed`, and through it `train.seed` and
/// `data.split_seed`, when nothing sets them.
pub const DEFAULT_SEED: u64 = 0;

impl Default for DataConfig {
    fn default() -> Self {
        let synth = SynthSpec::default();
        Self {
            source: "synthetic".into(),
            image_size: [128, 128],
            val_fraction: 0.2,
            split_seed: DEFAULT_SEED,
            split_by: SplitBy::Image,
            synthetic_count: synth.count,
            synthetic_size: [synth.height as usize, synth.width as usize],
            synthetic_seed: synth.seed,
            eval_full_resolution: false,
        }
    }
}

impl DataConfig {
    pub fn is_synthetic(&self) -> bool {
        self.source == "synthetic"
    }

    pub fn synth_spec(&self) -> SynthSpec {
        SynthSpec {
            count: self.synthetic_count,
            width: self.synthetic_size[1] as u32,
            height: self.synthetic_size[0] as u32,
            seed: self.synthetic_seed,
        }
    }
}

/// A setting outside its range: the dotted key, the value, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {expected}")]
pub struct Invalid {
    pub key: &'static str,
    pub value: String,
    pub expected: String,
}

/// The synthetic set to generate (`data.synthetic_*`; `sweep data synth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SynthSpec {
    pub count: usize,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
}

impl Default for SynthSpec {
    /// 400 images of 240x160 (Carvana's 3:2 aspect), seed 0.
    fn default() -> Self {
        Self { count: 400, width: 240, height: 160, seed: 0 }
    }
}

impl SynthSpec {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.count == 0 {
            return Err(Invalid { key: "count", value: "0".into(), expected: "must be at least 1".into() });
        }
        for (key, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=4096).contains(&v) {
                return Err(Invalid { key, value: v.to_string(), expected: "image sides must be in [16, 4096]".into() });
            }
        }
        Ok(())
    }
}

/// Accepts `128` (a square side) or `[height, width]`.
fn size_from_int_or_pair<'de, D: Deserializer<'de>>(d: D) -> Result<[usize; 2], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Side(usize),
        Pair([usize; 2]),
    }
    Ok(match Size::deserialize(d)? {
        Size::Side(s) => [s, s],
        Size::Pair(p) => p,
    })
}

/// What a train/validation split keeps together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitBy {
    /// Each image on its own (the tutorial's `train_test_split` over image ids).
    #[default]
    Image,
    /// Every image whose id shares the part before the last `_` (Carvana's `<car>_<view>`, 16
    /// views of one car) goes to the same side, so validation measures unseen cars.
    Car,
}

impl SplitBy {
    pub const NAMES: [&'static str; 2] = ["image", "car"];

    /// Not written into the canonical JSON when it is the default, so that the identity of every
    /// trial recorded before the setting existed stays the same.
    fn is_image(&self) -> bool {
        *self == SplitBy::Image
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
    Rmsprop,
}

impl OptimizerKind {
    pub const NAMES: [&'static str; 4] = ["adam", "adamw", "sgd", "rmsprop"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same learning rate throughout.
    Constant,
    /// Cosine decay per step from `learning_rate` to `lr_min` over the whole run.
    Cosine,
    /// Multiply by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
}

impl Schedule {
    pub const NAMES: [&'static str; 3] = ["constant", "cosine", "step"];
}

/// The optimiser and the training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    /// L2 penalty added to the gradient (adam, sgd, rmsprop) or decoupled decay (adamw).
    pub weight_decay: f64,
    /// SGD and RMSprop momentum (Keras' default 0).
    pub momentum: f64,
    /// Nesterov momentum for SGD.
    pub nesterov: bool,
    /// Adam/AdamW first-moment decay.
    pub beta1: f64,
    /// Adam/AdamW second-moment decay.
    pub beta2: f64,
    /// Adam/AdamW/RMSprop epsilon (Keras' 1e-7).
    pub epsilon: f64,
    /// RMSprop's decay of the squared-gradient average (Keras' `rho`).
    pub rho: f64,
    pub lr_schedule: Schedule,
    /// Cosine schedule: the final learning rate.
    pub lr_min: f64,
    /// Step schedule: epochs between decays.
    pub lr_step_epochs: usize,
    /// Step schedule: the decay factor.
    pub lr_gamma: f64,
    /// Fixes weight initialisation, shuffling and augmentation draws.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 3,
            optimizer: OptimizerKind::Adam,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            momentum: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            rho: 0.9,
            lr_schedule: Schedule::Constant,
            lr_min: 0.0,
            lr_step_epochs: 10,
            lr_gamma: 0.1,
            seed: DEFAULT_SEED,
        }
    }
}

impl TrainConfig {
    /// The learning rate at `step` (0-based) of `epoch` (0-based).
    pub fn learning_rate_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        match self.lr_schedule {
            Schedule::Constant => self.learning_rate,
            Schedule::Cosine => {
                let total = (self.epochs * steps_per_epoch).max(1) as f64;
                let t = (epoch * steps_per_epoch + step) as f64 / total;
                self.lr_min + 0.5 * (self.learning_rate - self.lr_min) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step => self.learning_rate * self.lr_gamma.powi((epoch / self.lr_step_epochs.max(1)) as i32),
        }
    }
}

/// One problem found in a configuration: the dotted key and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl TrialConfig {
    /// Checks every value against its range. Returns all problems, not just the first.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| problems.push(Problem { key: key.into(), message });
        let d = &self.data;
        if d.source.trim().is_empty() {
            bad("data.source", "must be \"synthetic\" or a directory in the Carvana layout".into());
        }
        for (i, side) in d.image_size.iter().enumerate() {
            if !(8..=4096).contains(side) {
                bad("data.image_size", format!("{} = {side} must be in [8, 4096]", ["height", "width"][i]));
            }
        }
        if let Err(e) = self.model.check_input(d.image_size[0], d.image_size[1]) {
            bad("data.image_size", e.to_string().trim_start_matches("data.image_size: ").to_string());
        }
        if !(d.val_fraction > 0.0 && d.val_fraction < 1.0) {
            bad("data.val_fraction", format!("= {} must be in (0, 1); the tutorial holds out 0.2", d.val_fraction));
        }
        if d.is_synthetic() {
            if let Err(e) = d.synth_spec().validate() {
                bad("data.synthetic_count", e.to_string());
            }
            if d.synthetic_count < 2 {
                bad("data.synthetic_count", format!("= {} must be at least 2 (one image to train on, one to validate)", d.synthetic_count));
            }
        }
        if let Err(e) = self.model.validate() {
            match e {
                ModelError::Invalid { key, value, expected } => bad(key, format!("= {value} {expected}")),
                other => bad("model", other.to_string()),
            }
        }
        let t = &self.train;
        if t.epochs == 0 || t.epochs > 100_000 {
            bad("train.epochs", format!("= {} must be in [1, 100000]", t.epochs));
        }
        if t.batch_size == 0 || t.batch_size > 4096 {
            bad("train.batch_size", format!("= {} must be in [1, 4096]", t.batch_size));
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            bad("train.learning_rate", format!("= {} must be > 0 (Keras' Adam default is 0.001)", t.learning_rate));
        }
        if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
            bad("train.weight_decay", format!("= {} must be >= 0", t.weight_decay));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            bad("train.momentum", format!("= {} must be in [0, 1)", t.momentum));
        }
        if t.nesterov && t.momentum == 0.0 && t.optimizer == OptimizerKind::Sgd {
            bad("train.nesterov", "needs train.momentum > 0".into());
        }
        for (key, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2), ("train.rho", t.rho)] {
            if !(0.0..1.0).contains(&v) {
                bad(key, format!("= {v} must be in [0, 1)"));
            }
        }
        if !(t.epsilon > 0.0 && t.epsilon.is_finite()) {
            bad("train.epsilon", format!("= {} must be > 0", t.epsilon));
        }
        if !(t.lr_min >= 0.0 && t.lr_min <= t.learning_rate) && t.lr_schedule == Schedule::Cosine {
            bad("train.lr_min", format!("= {} must be in [0, train.learning_rate]", t.lr_min));
        }
        if t.lr_schedule == Schedule::Step {
            if t.lr_step_epochs == 0 {
                bad("train.lr_step_epochs", "must be at least 1".into());
            }
            if !(t.lr_gamma > 0.0 && t.lr_gamma <= 1.0) {
                bad("train.lr_gamma", format!("= {} must be in (0, 1]", t.lr_gamma));
            }
        }
        if let Err(e) = self.augment.validate() {
            bad(e.key, format!("= {} {}", e.value, e.expected));
        }
        match Objective::parse_name(&self.metric.name) {
            // A program reports metrics of its own names.
            None if self.program.is_some() => {
                if Objective::parse_reported(&self.metric.name).is_none() {
                    bad(
                        "metric.name",
                        format!(
                            "= \"{}\" is not a metric name a program can report; use <split>_<name> with split train or val (e.g. val_iou, val_accuracy)",
                            self.metric.name
                        ),
                    );
                }
            }
            None => bad(
                "metric.name",
                format!(
                    "= \"{}\" is not a metric; use <split>_<metric> with split train or val and metric one of {}, or val_{}",
                    self.metric.name,
                    METRIC_NAMES.join(", "),
                    FULL_RESOLUTION_METRICS.join(", val_")
                ),
            ),
            Some((_, metric)) if FULL_RESOLUTION_METRICS.contains(&metric) && !self.data.eval_full_resolution && self.program.is_none() => bad(
                "metric.name",
                format!(
                    "= \"{}\" is measured only with data.eval_full_resolution = true; set it in [data], or rank by val_{}",
                    self.metric.name,
                    metric.trim_start_matches("full_")
                ),
            ),
            Some(_) => {}
        }
        problems
    }

    /// The canonical JSON of this configuration (stable key order and number formatting).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a TrialConfig always serialises")
    }

    /// The trial's identity: SHA-256 of the canonical JSON.
    pub fn hash(&self) -> String {
        crate::util::sha256_hex(self.canonical_json().as_bytes())
    }

    /// This config with another epoch target.
    pub fn with_epochs(&self, epochs: usize) -> TrialConfig {
        let mut config = self.clone();
        config.train.epochs = epochs;
        config
    }

    /// What a trial keeps when only its epoch target changes: the hash of the config with
    /// `train.epochs` set to 0 (a value no trial has). Two configs of one lineage are one trial
    /// trained for more or fewer epochs, so a higher target continues the trial from its last
    /// checkpoint. Under a cosine schedule the learning rate of every step depends on the epoch
    /// count, so more epochs are another trial: the lineage is then the config's own hash. Never
    /// stored: the tracker keeps [`TrialConfig::hash`].
    pub fn lineage(&self) -> String {
        match self.train.lr_schedule {
            Schedule::Cosine => self.hash(),
            Schedule::Constant | Schedule::Step => self.with_epochs(0).hash(),
        }
    }

    /// Whether a trial trained under `earlier` continues under this config: the same lineage,
    /// and at least as many epochs.
    pub fn continues(&self, earlier: &TrialConfig) -> bool {
        self.lineage() == earlier.lineage() && self.train.epochs >= earlier.train.epochs
    }

    /// The epoch target under which a checkpoint with `epochs_done` epochs, written for the
    /// config hash `hash`, was trained, if this config continues that one (see
    /// [`TrialConfig::continues`]). A checkpoint keeps only the hash of its config, so the
    /// targets it can have had are tried, from its own epoch count up to this config's.
    pub fn continued_from(&self, hash: &str, epochs_done: usize) -> Option<usize> {
        (epochs_done.max(1)..=self.train.epochs).find(|&epochs| {
            let earlier = self.with_epochs(epochs);
            earlier.hash() == hash && self.continues(&earlier)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_the_tutorials() {
        let c = TrialConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!((c.train.batch_size, c.train.epochs, c.train.learning_rate), (3, 5, 1e-3));
        assert_eq!(c.augment.hue_delta, 0.1);
        assert_eq!(c.metric.name, "val_iou");
    }

    #[test]
    fn image_size_accepts_a_side_or_a_pair() {
        let c: DataConfig = serde_json::from_str(r#"{"image_size": 64}"#).unwrap();
        assert_eq!(c.image_size, [64, 64]);
        let c: DataConfig = serde_json::from_str(r#"{"image_size": [64, 96]}"#).unwrap();
        assert_eq!(c.image_size, [64, 96]);
    }

    #[test]
    fn validation_reports_every_problem_with_its_key() {
        let mut c = TrialConfig::default();
        c.train.learning_rate = -1.0;
        c.augment.hue_delta = 0.9;
        c.data.image_size = [100, 128];
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["data.image_size", "train.learning_rate", "augment.hue_delta"]);
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let mut t = TrainConfig { learning_rate: 1.0, epochs: 4, ..TrainConfig::default() };
        assert_eq!(t.learning_rate_at(3, 5, 10), 1.0);
        t.lr_schedule = Schedule::Cosine;
        assert_eq!(t.learning_rate_at(0, 0, 10), 1.0);
        assert!((t.learning_rate_at(2, 0, 10) - 0.5).abs() < 1e-12);
        t.lr_schedule = Schedule::Step;
        t.lr_step_epochs = 2;
        t.lr_gamma = 0.5;
        assert_eq!(t.learning_rate_at(1, 9, 10), 1.0);
        assert_eq!(t.learning_rate_at(2, 0, 10), 0.5);
    }

    #[test]
    fn a_higher_epoch_target_continues_a_trial_unless_the_schedule_stretches_with_it() {
        let short = TrialConfig { train: TrainConfig { epochs: 2, ..TrainConfig::default() }, ..TrialConfig::default() };
        let long = short.with_epochs(5);
        assert_ne!(short.hash(), long.hash(), "the epoch count stays part of the identity");
        assert!(long.continues(&short) && !short.continues(&long));
        assert_eq!(long.continued_from(&short.hash(), 2), Some(2));
        assert_eq!(long.continued_from(&short.hash(), 1), Some(2), "a checkpoint of an unfinished trial");
        assert_eq!(short.continued_from(&long.hash(), 2), None);
        let mut other = long.clone();
        other.augment.hue_delta = 0.2;
        assert!(!other.continues(&short), "any other change is another trial");
        let cosine = |c: &TrialConfig| TrialConfig { train: TrainConfig { lr_schedule: Schedule::Cosine, ..c.train.clone() }, ..c.clone() };
        assert!(!cosine(&long).continues(&cosine(&short)), "a cosine schedule's every step depends on the epoch count");
        let step = |c: &TrialConfig| TrialConfig { train: TrainConfig { lr_schedule: Schedule::Step, ..c.train.clone() }, ..c.clone() };
        assert!(step(&long).continues(&step(&short)));
    }

    #[test]
    fn hash_changes_with_any_setting() {
        let a = TrialConfig::default();
        let mut b = a.clone();
        b.augment.hue_delta = 0.2;
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), TrialConfig::default().hash());
    }
}
