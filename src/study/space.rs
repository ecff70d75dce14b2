//! The search space as samplers see it: the sweep's parameters in file order, each optionally
//! conditional on the values of a parameter listed before it (an SGD momentum only when the
//! optimiser is `sgd`).
//!
//! A point leaves out every parameter whose condition does not hold, so the tracker never
//! records a value that had no effect, and TPE never learns from one. Conditions may only look
//! back (at an earlier parameter) so that a point can be built in one pass, in order.

use std::collections::HashSet;

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde_json::{Value as Json, json};

use crate::study::history::Point;

/// Where a parameter's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// A fixed value.
    Value(Json),
    /// A list: the grid's axis, or a uniform categorical choice in random search.
    Values(Vec<Json>),
    Uniform {
        min: f64,
        max: f64,
    },
    /// Log-uniform between two values (e.g. learning rates 1e-4 to 1e-2).
    LogUniformValues {
        min: f64,
        max: f64,
    },
    IntUniform {
        min: i64,
        max: i64,
    },
    /// Uniform, rounded to a multiple of q.
    QUniform {
        min: f64,
        max: f64,
        q: f64,
    },
    Categorical {
        values: Vec<Json>,
        probabilities: Vec<f64>,
    },
}

impl Domain {
    /// Whether the domain is a finite list (usable in a grid).
    pub fn is_finite(&self) -> bool {
        matches!(self, Domain::Value(_) | Domain::Values(_) | Domain::Categorical { .. })
    }

    /// Whether plots should use a log axis for this parameter.
    pub fn is_log(&self) -> bool {
        matches!(self, Domain::LogUniformValues { .. })
    }

    /// The values of a finite domain, in order (empty for a distribution).
    pub(crate) fn grid_values(&self) -> Vec<Json> {
        match self {
            Domain::Value(v) => vec![v.clone()],
            Domain::Values(vs) | Domain::Categorical { values: vs, .. } => vs.clone(),
            _ => Vec::new(),
        }
    }

    /// One draw from the domain. Random search's draws, and so the identities of recorded
    /// random trials, depend on the exact numbers this takes from the stream.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> Json {
        match self {
            Domain::Value(v) => v.clone(),
            Domain::Values(vs) => vs[rng.random_range(0..vs.len())].clone(),
            Domain::Uniform { min, max } => json!(rng.random_range(*min..=*max)),
            Domain::LogUniformValues { min, max } => json!(rng.random_range(min.ln()..=max.ln()).exp()),
            Domain::IntUniform { min, max } => json!(rng.random_range(*min..=*max)),
            Domain::QUniform { min, max, q } => json!(quantise(rng.random_range(*min..=*max), *min, *max, *q)),
            Domain::Categorical { values, probabilities } => {
                let u: f64 = rng.random();
                let mut acc = 0.0;
                for (v, p) in values.iter().zip(probabilities) {
                    acc += p;
                    if u < acc {
                        return v.clone();
                    }
                }
                values.last().cloned().unwrap_or(Json::Null)
            }
        }
    }
}

/// `x` rounded to the nearest multiple of `q` that lies in `[min, max]` (the validator makes sure
/// there is one), to 12 decimals: `min 0, max 0.5, q 0.3` gives 0 or 0.3, never 0.6. A draw whose
/// nearest multiple is inside the range keeps it, so random trials drawn before this rule keep
/// their values.
pub(crate) fn quantise(x: f64, min: f64, max: f64, q: f64) -> f64 {
    let k = (x / q).round();
    let v = quantised_range(min, max, q).map_or(k, |(low, high)| k.clamp(low, high)) * q;
    (v * 1e12).round() / 1e12
}

/// The multiples of `q` in `[min, max]` as the first and last k of k * q; None when there is none.
/// A bound within 1e-9 q of a multiple counts as that multiple (0.3 / 0.1 is 2.9999999999999996).
pub(crate) fn quantised_range(min: f64, max: f64, q: f64) -> Option<(f64, f64)> {
    let (low, high) = ((min / q - 1e-9).ceil(), (max / q + 1e-9).floor());
    (low <= high).then_some((low, high))
}

/// One swept parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The setting it addresses, e.g. `augment.hue_delta`.
    pub key: String,
    pub domain: Domain,
}

/// "Only when `key` is one of `values`."
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub values: Vec<Json>,
}

/// One parameter of the space and the condition under which it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub parameter: Parameter,
    pub when: Option<Condition>,
}

impl Dimension {
    /// Whether this parameter applies to a point built so far (or complete): its condition's
    /// parameter is present with one of the listed values.
    pub fn applies(&self, point: &Point) -> bool {
        match &self.when {
            None => true,
            Some(c) => point.get(&c.key).is_some_and(|v| c.values.iter().any(|w| same_value(v, w))),
        }
    }
}

/// A space whose conditions are known to look back at existing parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    #[error("parameter {0:?} is listed twice")]
    Duplicate(String),
    #[error("parameter {key:?}: its condition names {on:?}, which is not a parameter listed before it")]
    ConditionNotBefore { key: String, on: String },
    #[error("parameter {0:?}: its condition lists no values, so it could never apply")]
    EmptyCondition(String),
    #[error("parameter {0:?}: a grid needs a list of values (values = [...]), not a distribution")]
    NotFinite(String),
}

impl Space {
    /// Checks that keys are unique and every condition names an earlier parameter.
    pub fn new(dimensions: Vec<Dimension>) -> Result<Space, SpaceError> {
        let mut seen = HashSet::new();
        for d in &dimensions {
            if let Some(c) = &d.when {
                if !seen.contains(c.key.as_str()) {
                    return Err(SpaceError::ConditionNotBefore { key: d.parameter.key.clone(), on: c.key.clone() });
                }
                if c.values.is_empty() {
                    return Err(SpaceError::EmptyCondition(d.parameter.key.clone()));
                }
            }
            if !seen.insert(d.parameter.key.as_str()) {
                return Err(SpaceError::Duplicate(d.parameter.key.clone()));
            }
        }
        Ok(Space { dimensions })
    }

    /// The space of a sweep file today: every parameter always applies.
    pub fn unconditional(parameters: &[Parameter]) -> Space {
        Space { dimensions: parameters.iter().map(|p| Dimension { parameter: p.clone(), when: None }).collect() }
    }

    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }
}

/// A point's identity as text: canonical JSON (keys sorted), the rule random search has always
/// used to skip a draw that repeats an earlier one.
pub fn point_key(point: &Point) -> String {
    serde_json::to_string(point).unwrap_or_default()
}

/// JSON equality that treats `1` and `1.0` as the same value, as TOML writers do not agree on
/// which one a number is.
pub fn same_value(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The values a finite domain takes, in order; None for a continuous distribution.
pub(crate) fn finite_values(domain: &Domain) -> Option<Vec<Json>> {
    domain.is_finite().then(|| domain.grid_values())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dim(key: &str, when: Option<(&str, Vec<Json>)>) -> Dimension {
        Dimension {
            parameter: Parameter { key: key.into(), domain: Domain::Values(vec![json!("a"), json!("b")]) },
            when: when.map(|(k, values)| Condition { key: k.into(), values }),
        }
    }

    #[test]
    fn a_condition_must_name_a_parameter_listed_before_it() {
        let err = Space::new(vec![dim("x", Some(("o", vec![json!("a")]))), dim("o", None)]).unwrap_err();
        assert_eq!(err.to_string(), "parameter \"x\": its condition names \"o\", which is not a parameter listed before it");
        assert!(Space::new(vec![dim("o", None), dim("x", Some(("o", vec![json!("a")])))]).is_ok());
        assert_eq!(Space::new(vec![dim("o", None), dim("o", None)]), Err(SpaceError::Duplicate("o".into())));
        assert_eq!(Space::new(vec![dim("o", None), dim("x", Some(("o", vec![])))]), Err(SpaceError::EmptyCondition("x".into())));
    }

    #[test]
    fn a_condition_holds_when_its_parameter_has_a_listed_value_and_never_when_it_is_absent() {
        let d = dim("x", Some(("o", vec![json!("a"), json!(1)])));
        let point = |v: Json| Point::from([("o".to_string(), v)]);
        assert!(d.applies(&point(json!("a"))));
        assert!(d.applies(&point(json!(1.0))), "1 and 1.0 are the same value");
        assert!(!d.applies(&point(json!("b"))));
        assert!(!d.applies(&Point::new()));
    }
}
