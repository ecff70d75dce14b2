//! Configurations put first: `[[enqueue]]` tables in the sweep file and `sweep enqueue SWEEP
//! key=value...`. Each names some of the sweep's parameters with values their domains take; the
//! sampler draws the others as usual when the trial is added (Optuna's `enqueue_trial` with
//! `skip_if_exists`: a configuration the sweep already has a trial for is not added again).

use serde_json::Value as Json;
use toml_edit::Item;

use super::{SweepSpec, Validator, did_you_mean_suffix};
use crate::study::history::Point;
use crate::study::space::{Domain, Space, quantise, same_value};

/// Why a fixed configuration does not fit a sweep's space, one `(key, message)` per problem
/// (the key is the parameter's, or empty for the configuration as a whole).
pub fn check_fixed(space: &Space, fixed: &Point) -> Vec<(String, String)> {
    let dims = space.dimensions();
    let keys: Vec<&str> = dims.iter().map(|d| d.parameter.key.as_str()).collect();
    let mut problems = Vec::new();
    if fixed.is_empty() {
        problems.push((String::new(), "names no parameter: give at least one, e.g. \"train.learning_rate\" = 0.001".to_string()));
    }
    for (key, value) in fixed {
        let Some(d) = dims.iter().find(|d| &d.parameter.key == key) else {
            let hint = did_you_mean_suffix(key, &keys);
            let listed = if keys.is_empty() { "the sweep has none".to_string() } else { format!("its parameters are {}", keys.join(", ")) };
            problems.push((key.clone(), format!("is not a parameter of this sweep{hint}; {listed}")));
            continue;
        };
        if let Some(why) = outside(&d.parameter.domain, value) {
            problems.push((key.clone(), format!("= {value} {why}")));
        }
        if let Some(c) = &d.when {
            let values = Json::Array(c.values.clone());
            match fixed.get(&c.key) {
                None => problems
                    .push((key.clone(), format!("applies only when {:?} is one of {values}: name {:?} in the same configuration", c.key, c.key))),
                Some(v) if !c.values.iter().any(|w| same_value(v, w)) => problems
                    .push((key.clone(), format!("applies only when {:?} is one of {values}, and this configuration gives {:?} = {v}", c.key, c.key))),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Why `value` is not one of the values `domain` takes; None if it is.
fn outside(domain: &Domain, value: &Json) -> Option<String> {
    let number = value.as_f64();
    match domain {
        Domain::Value(v) => (!same_value(v, value)).then(|| format!("is not the parameter's one value {v}")),
        Domain::Values(vs) | Domain::Categorical { values: vs, .. } => {
            (!vs.iter().any(|v| same_value(v, value))).then(|| format!("is not one of its values {}", Json::Array(vs.clone())))
        }
        &Domain::Uniform { min, max } | &Domain::LogUniformValues { min, max } => match number {
            Some(x) if (min..=max).contains(&x) => None,
            _ => Some(format!("is not a number from {min} to {max}; widen the parameter's range to try it")),
        },
        &Domain::IntUniform { min, max } => match value.as_i64() {
            Some(x) if (min..=max).contains(&x) => None,
            _ => Some(format!("is not a whole number from {min} to {max}")),
        },
        &Domain::QUniform { min, max, q } => match number {
            Some(x) if (min..=max).contains(&x) && (quantise(x, min, max, q) - x).abs() <= 1e-9 * q.abs().max(1.0) => None,
            _ => Some(format!("is not a multiple of q = {q} from {min} to {max}")),
        },
    }
}

/// A `key=value` argument of `sweep enqueue`: the value read as TOML (`0.001`, `true`,
/// `"adam"`), a bare word as a string (`adam`).
pub fn parse_assignment(arg: &str) -> Result<(String, Json), String> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(format!("{arg:?} is not key=value, e.g. train.learning_rate=0.001"));
    };
    let key = key.trim().trim_matches('"').to_string();
    let value = value.trim();
    if key.is_empty() {
        return Err(format!("{arg:?} names no key, e.g. train.learning_rate=0.001"));
    }
    let json = match format!("v = {value}").parse::<toml_edit::DocumentMut>() {
        Ok(doc) => doc.get("v").and_then(|i| i.as_value()).map(toml_value_json).unwrap_or(Json::Null),
        Err(_) => Json::String(value.to_string()),
    };
    Ok((key, json))
}

fn toml_value_json(v: &toml_edit::Value) -> Json {
    match v {
        toml_edit::Value::String(s) => Json::String(s.value().clone()),
        toml_edit::Value::Integer(i) => Json::from(*i.value()),
        toml_edit::Value::Float(f) => serde_json::Number::from_f64(*f.value()).map_or(Json::Null, Json::Number),
        toml_edit::Value::Boolean(b) => Json::Bool(*b.value()),
        toml_edit::Value::Array(a) => Json::Array(a.iter().map(toml_value_json).collect()),
        toml_edit::Value::Datetime(_) | toml_edit::Value::InlineTable(_) => Json::Null,
    }
}

impl SweepSpec {
    /// A configuration given on the command line, checked against this sweep's space.
    pub fn fixed_point(&self, assignments: &[(String, Json)]) -> Result<Point, Vec<(String, String)>> {
        let fixed: Point = assignments.iter().cloned().collect();
        let problems = check_fixed(&self.space(), &fixed);
        if problems.is_empty() { Ok(fixed) } else { Err(problems) }
    }
}

impl Validator<'_> {
    /// `[[enqueue]]`: one table per configuration, each checked against the space.
    pub(super) fn enqueue(&mut self, root: &toml_edit::Table, space: &Space) -> Vec<Point> {
        let Some(item) = root.get("enqueue") else { return Vec::new() };
        let tables: Vec<(&dyn toml_edit::TableLike, Option<std::ops::Range<usize>>)> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| (t as &dyn toml_edit::TableLike, t.span())).collect(),
            Item::Value(toml_edit::Value::Array(a)) if a.iter().all(|v| v.as_inline_table().is_some()) => {
                a.iter().filter_map(|v| v.as_inline_table().map(|t| (t as &dyn toml_edit::TableLike, v.span()))).collect()
            }
            _ => {
                self.report(
                    item.span(),
                    "enqueue must be tables: [[enqueue]] then \"train.learning_rate\" = 0.001, one table per configuration".into(),
                );
                return Vec::new();
            }
        };
        let mut points = Vec::new();
        for (table, span) in tables {
            let mut fixed = Point::new();
            let mut spans = std::collections::BTreeMap::new();
            for (key, value) in table.iter() {
                let at = table.key(key).and_then(|k| k.span()).or(value.span());
                spans.insert(key.to_string(), at.clone());
                if let Some(json) = self.json(value) {
                    fixed.insert(key.to_string(), json);
                }
            }
            let problems = check_fixed(space, &fixed);
            if problems.is_empty() {
                points.push(fixed);
            }
            for (key, message) in problems {
                let at = spans.get(&key).cloned().flatten().or(span.clone()).or(item.span());
                let said = if key.is_empty() { format!("[[enqueue]] {message}") } else { format!("[[enqueue]] {key:?} {message}") };
                self.report(at, said);
            }
        }
        points
    }
}
