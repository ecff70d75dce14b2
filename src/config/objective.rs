//! The objective: which metric a trial is judged by and in which direction. The metric names,
//! the splits they are measured on, and the goal are plain values shared by training (the best
//! checkpoint), the tracker (`best`, summaries), the reports and the sweep files, so they live
//! here, apart from the tensor code that computes the metrics.

use serde::{Deserialize, Serialize};

/// The metric names every epoch records, for each split.
pub const METRIC_NAMES: [&str; 4] = ["loss", "dice", "iou", "fg_iou"];

/// The metrics measured at each validation image's original size (split `val` only), recorded
/// when `data.eval_full_resolution` is on: `val_full_dice`, `val_full_iou`, `val_full_fg_iou`.
pub const FULL_RESOLUTION_METRICS: [&str; 3] = ["full_dice", "full_iou", "full_fg_iou"];

/// What a built-in trial costs, recorded once a trial (split `cost`, named without a split):
/// `params` (trainable parameters) and `gflops` (forward GFLOPs of one image at
/// `data.image_size`), both known from the settings and recorded before the first epoch;
/// `train_seconds` (the seconds its epochs took, every epoch counted once however many runs it
/// took) and `infer_ms` (median latency of one forward of one image on its device and threads,
/// after training), recorded when it completes. All are better lower.
pub const COST_METRICS: [&str; 4] = ["params", "gflops", "infer_ms", "train_seconds"];

/// Which split a metric was measured on; `Cost` holds a trial's [`COST_METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Cost,
}

impl Split {
    pub fn as_str(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Cost => "cost",
        }
    }

    /// A metric's name outside the tracker: `<split>_<name>` (`val_iou`), a cost by its name
    /// alone (`params`).
    pub fn key(split: &str, name: &str) -> String {
        if split == Split::Cost.as_str() { name.to_string() } else { format!("{split}_{name}") }
    }

    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "train" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            _ => None,
        }
    }
}

/// The metric a run's `best` checkpoint and a sweep's ranking follow, e.g. `val_iou`, maximise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// `<split>_<metric>`: split `train` or `val`, metric `loss`, `dice`, `iou` or `fg_iou`; or
    /// `val_full_dice`, `val_full_iou`, `val_full_fg_iou` (at the images' original size).
    pub name: String,
    pub goal: Goal,
}

impl Default for Objective {
    fn default() -> Self {
        Self { name: "val_iou".into(), goal: Goal::Maximize }
    }
}

impl Objective {
    /// Splits `val_iou` into (Val, "iou"); None if the name is not `<split>_<metric>`.
    pub fn parse_name(name: &str) -> Option<(Split, &str)> {
        let (split, metric) = name.split_once('_')?;
        let split = Split::parse(split)?;
        let full = split == Split::Val && FULL_RESOLUTION_METRICS.contains(&metric);
        (METRIC_NAMES.contains(&metric) || full).then_some((split, metric))
    }

    /// A metric a training program reports (`[program]`): `<split>_<name>`, split `train` or
    /// `val`, the name letters, digits, `_`, `-` and `.` (at most 64 characters in all).
    pub fn parse_reported(name: &str) -> Option<(Split, &str)> {
        let (split, metric) = name.split_once('_')?;
        let split = match split {
            "train" => Split::Train,
            "val" => Split::Val,
            _ => return None,
        };
        let ok = !metric.is_empty() && name.len() <= 64 && metric.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        ok.then_some((split, metric))
    }

    pub fn split_and_metric(&self) -> (Split, &str) {
        Self::parse_name(&self.name).or_else(|| Self::parse_reported(&self.name)).unwrap_or((Split::Val, "iou"))
    }
}

/// A `[[constraints]]` bound: a trial whose `metric` falls outside `[min, max]` is infeasible
/// (never best; TPE learns its region is bad). A bound on a cost known from the settings
/// (`params`, `gflops`) is checked before training, so such a trial costs no epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// A metric recorded every epoch (judged by its value at the last epoch) or a cost.
    pub metric: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Constraint {
    /// Whether the bound is checked before training: its metric is known from the settings.
    pub fn before_training(&self) -> bool {
        matches!(self.metric.as_str(), "params" | "gflops")
    }

    /// Why `value` breaks the bound ("params 3.1e6 is above max = 2e6"); None when it holds. A
    /// value that is not a number breaks every bound.
    pub fn broken(&self, value: f64) -> Option<String> {
        let shown = |v: f64| if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v}") };
        if value.is_nan() {
            return Some(format!("{} is not a number, and [[constraints]] bounds it", self.metric));
        }
        if let Some(max) = self.max.filter(|max| value > *max) {
            return Some(format!("{} {} is above max = {}", self.metric, shown(value), shown(max)));
        }
        if let Some(min) = self.min.filter(|min| value < *min) {
            return Some(format!("{} {} is below min = {}", self.metric, shown(value), shown(min)));
        }
        None
    }

    /// How far `value` is beyond the bound, relative to the bound (`(value - max) / |max|`, or
    /// the plain difference for a bound of 0): 0 where it holds, infinite for a value that is not
    /// a number. Bounds on metrics of different scales (millions of parameters, milliseconds)
    /// add up as fractions.
    pub fn excess(&self, value: f64) -> f64 {
        if value.is_nan() {
            return f64::INFINITY;
        }
        let relative = |over: f64, bound: f64| if bound == 0.0 { over } else { over / bound.abs() };
        let above = self.max.filter(|max| value > *max).map_or(0.0, |max| relative(value - max, max));
        let below = self.min.filter(|min| value < *min).map_or(0.0, |min| relative(min - value, min));
        above + below
    }
}

/// Whether a metric is better when lower (`loss`) or higher (everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    #[serde(alias = "minimize", alias = "min")]
    Minimize,
    #[serde(alias = "maximize", alias = "max")]
    Maximize,
}

impl Goal {
    /// The natural direction of a metric name (with or without a split prefix).
    /// A loss and a cost ([`COST_METRICS`]) are better lower; anything else higher.
    pub fn for_metric(name: &str) -> Goal {
        let base = name.rsplit('_').next().unwrap_or(name);
        if base == "loss" || name.ends_with("loss") || COST_METRICS.contains(&name) { Goal::Minimize } else { Goal::Maximize }
    }

    /// Whether `candidate` beats `incumbent`. NaN never improves on anything.
    pub fn improves(&self, candidate: f64, incumbent: Option<f64>) -> bool {
        if candidate.is_nan() {
            return false;
        }
        match incumbent {
            None => true,
            Some(best) if best.is_nan() => true,
            Some(best) => match self {
                Goal::Minimize => candidate < best,
                Goal::Maximize => candidate > best,
            },
        }
    }

    /// Orders two values best first in this direction, NaN after every number (two NaNs are
    /// equal): a total order, so `sort_by(|a, b| goal.order(*a, *b))` puts the best first and a
    /// diverged value never looks good in either direction. The one ranking rule of the crate.
    ///
    /// ```
    /// use sweep::config::Goal;
    /// let mut ious = [0.5, f64::NAN, 0.9];
    /// ious.sort_by(|a, b| Goal::Maximize.order(*a, *b));
    /// assert_eq!(ious[..2], [0.9, 0.5]);
    /// assert!(ious[2].is_nan());
    /// ```
    pub fn order(self, a: f64, b: f64) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => match self {
                Goal::Maximize => b.total_cmp(&a),
                Goal::Minimize => a.total_cmp(&b),
            },
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Goal::Minimize => "minimize",
            Goal::Maximize => "maximize",
        }
    }
}

/// Serde for floats that may be NaN or infinite: JSON has no such numbers (serde_json would write
/// `null` and fail to read it back), so they are written as the strings "NaN", "inf" and "-inf".
pub mod nonfinite {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match kind_name(*v) {
            None => s.serialize_f64(*v),
            Some(name) => s.serialize_str(name),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Num(f64),
            Text(String),
            Null(()),
        }
        match Repr::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Null(()) => Ok(f64::NAN),
            Repr::Text(t) => parse_kind(&t).ok_or_else(|| serde::de::Error::custom(format!("not a number: {t:?}"))),
        }
    }

    /// "NaN", "inf" or "-inf" for a non-finite value; None for a finite one.
    pub fn kind_name(v: f64) -> Option<&'static str> {
        if v.is_nan() {
            Some("NaN")
        } else if v == f64::INFINITY {
            Some("inf")
        } else if v == f64::NEG_INFINITY {
            Some("-inf")
        } else {
            None
        }
    }

    pub fn parse_kind(t: &str) -> Option<f64> {
        match t {
            "NaN" | "nan" => Some(f64::NAN),
            "inf" | "+inf" | "Infinity" => Some(f64::INFINITY),
            "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        }
    }
}
