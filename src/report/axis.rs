//! A swept parameter's axis (numbers, on a log scale where the parameter is log-distributed, or
//! named categories), shared by the charts and the importance statistics.

use std::collections::BTreeSet;

use crate::report::fmt_param;
use crate::store::TrialRow;

/// One swept parameter's axis: numbers (on a log scale for log-distributed parameters) or named
/// categories.
#[derive(Debug, Clone, PartialEq)]
pub enum Axis {
    Numeric { min: f64, max: f64, log: bool },
    Categorical(Vec<String>),
}

impl Axis {
    /// Where `value` sits on this axis: a number, or a category's index.
    pub fn position(&self, value: &serde_json::Value) -> Option<f64> {
        match self {
            Axis::Numeric { .. } => value.as_f64().filter(|v| v.is_finite()),
            Axis::Categorical(names) => names.iter().position(|n| *n == fmt_param(value)).map(|i| i as f64),
        }
    }

    /// `position` scaled to [0, 1] along the axis.
    pub fn normalised(&self, value: &serde_json::Value) -> Option<f64> {
        let p = self.position(value)?;
        Some(match self {
            Axis::Numeric { min, max, log } => {
                let (a, b, v) = if *log { (min.ln(), max.ln(), p.ln()) } else { (*min, *max, p) };
                if (b - a).abs() < 1e-300 { 0.5 } else { (v - a) / (b - a) }
            }
            Axis::Categorical(names) => {
                if names.len() <= 1 {
                    0.5
                } else {
                    p / (names.len() - 1) as f64
                }
            }
        })
    }
}

/// The axis of parameter `key` over `runs`: numeric when every value is a number (log if
/// `log` and all are positive), categorical otherwise (strings, booleans), in sorted order.
pub fn axis<'a, T: AsRef<TrialRow> + 'a>(runs: impl IntoIterator<Item = &'a T>, key: &str, log: bool) -> Axis {
    let values: Vec<&serde_json::Value> = runs.into_iter().filter_map(|r| r.as_ref().params.get(key)).collect();
    let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).filter(|v| v.is_finite()).collect();
    if !values.is_empty() && numbers.len() == values.len() {
        let (min, max) = range_of(numbers.iter());
        return Axis::Numeric { min, max, log: log && min > 0.0 };
    }
    let names: BTreeSet<String> = values.iter().map(|v| fmt_param(v)).collect();
    Axis::Categorical(names.into_iter().collect())
}

/// The smallest and largest of `values` (infinities for none).
pub(crate) fn range_of<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}
