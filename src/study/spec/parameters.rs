//! The `[parameters]` table: each entry's domain (a list, a value or a distribution), checked
//! against the type of the setting it sweeps, with every problem reported at the parameter.

use serde_json::Value as Json;
use toml_edit::{Item, TableLike};

use super::{
    Conditions, DISTRIBUTIONS, Method, PARAM_KEYS, SECTIONS, Validator, check_type, collect_parameter_entries, did_you_mean_suffix,
    unknown_key_message,
};
use crate::config::SEED_KEY;
use crate::study::space::{Domain, Parameter, quantised_range};

impl Validator<'_> {
    pub(super) fn parameters(&mut self, root: &toml_edit::Table, defaults: &Json, method: Method) -> (Vec<Parameter>, Conditions) {
        let mut conditions = Conditions::new();
        let program = super::program::is_program(root);
        let Some(item) = root.get("parameters") else { return (Vec::new(), conditions) };
        let Some(table) = item.as_table_like() else {
            self.report(item.span(), "parameters must be a table of \"section.key\" = { values = [...] }".into());
            return (Vec::new(), conditions);
        };
        let mut entries = Vec::new();
        collect_parameter_entries(table, "", &mut |key, span, item| entries.push((key, span, item)));
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, key_span, item) in entries {
            let span = key_span.or_else(|| item.span());
            if !seen.insert(key.clone()) {
                self.report(
                    span,
                    format!("parameter {key:?} is given twice: `{key}`, `\"{key}\"` and a nested table name the same setting; keep one of them"),
                );
                continue;
            }
            let (section, field) = key.split_once('.').unwrap_or(("", key.as_str()));
            let program_default;
            let default = if program && key != SEED_KEY {
                // A program's own parameter: any name, the type its domain gives.
                program_default = super::program::parameter_default(item);
                &program_default
            } else if section == "metric" || !SECTIONS.contains(&section) {
                self.report(span, format!("parameter {key:?} must name a setting as section.key with section one of {}", SECTIONS.join(", ")));
                continue;
            } else if let Some(default) = defaults[section].get(field) {
                default
            } else {
                let known: Vec<&str> = defaults[section].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
                self.report(span, format!("parameter {key:?}: {}", unknown_key_message(field, &format!("{section}."), &known)));
                continue;
            };
            if let Some(when) = item.as_table_like().and_then(|t| t.get("when"))
                && let Some(condition) = self.condition(&key, when, span.clone(), &out)
            {
                conditions.insert(key.clone(), condition);
            }
            if let Some(domain) = self.domain(&key, item, span.clone(), default, method) {
                out.push(Parameter { key, domain });
            }
        }
        (out, conditions)
    }

    fn domain(&mut self, key: &str, item: &Item, span: Option<std::ops::Range<usize>>, default: &Json, method: Method) -> Option<Domain> {
        let Some(table) = item.as_table_like() else {
            self.report(span, format!("parameter {key:?} must be a table such as {{ values = [...] }}, {{ value = x }} or {{ distribution = \"uniform\", min = 0, max = 1 }}"));
            return None;
        };
        for (k, v) in table.iter() {
            if !PARAM_KEYS.contains(&k) {
                self.report(
                    table.key(k).and_then(|x| x.span()).or(v.span()),
                    format!("parameter {key:?}: {}", unknown_key_message(k, "", PARAM_KEYS)),
                );
            }
        }
        let e = Entry { key, table, span: span.clone(), default };
        let domain = if let Some(dist_item) = table.get("distribution") {
            self.distribution(&e, dist_item)?
        } else if table.get("values").is_some() {
            Domain::Values(self.typed_list(&e, "values")?)
        } else if let Some(v) = table.get("value") {
            let given = self.json(v)?;
            match check_type(key, default, &given) {
                Ok(ok) => Domain::Value(ok),
                Err(msg) => {
                    self.report(v.span(), format!("parameter {key:?}: {msg}"));
                    return None;
                }
            }
        } else {
            self.report(span, format!("parameter {key:?} needs values = [...], value = x, or distribution = ..."));
            return None;
        };
        if method == Method::Grid && !domain.is_finite() {
            self.report(span, format!("parameter {key:?}: method = \"grid\" needs finite values (values = [...]); use method = \"random\" with run_cap for distributions"));
            return None;
        }
        Some(domain)
    }

    /// A list of values of the parameter's type (`values = [...]`), never empty.
    fn typed_list(&mut self, e: &Entry, name: &str) -> Option<Vec<Json>> {
        let key = e.key;
        let item = e.table.get(name)?;
        let list = match self.json(item)? {
            Json::Array(list) => list,
            _ => {
                self.report(item.span(), format!("parameter {key:?}: {name} must be a list"));
                return None;
            }
        };
        if list.is_empty() {
            self.report(item.span(), format!("parameter {key:?}: {name} is empty; an empty grid has no trials"));
            return None;
        }
        let mut out = Vec::new();
        for v in list {
            match check_type(key, e.default, &v) {
                Ok(ok) => out.push(ok),
                Err(msg) => self.report(item.span(), format!("parameter {key:?}: {msg}")),
            }
        }
        Some(out)
    }

    /// A finite number the distribution `dist` needs (`min`, `max`, `q`).
    fn required_number(&mut self, e: &Entry, dist_item: &Item, dist: &str, name: &str) -> Option<f64> {
        let key = e.key;
        let Some(item) = e.table.get(name) else {
            self.report(dist_item.span(), format!("parameter {key:?}: distribution {dist:?} needs {name}"));
            return None;
        };
        match item.as_float().or_else(|| item.as_integer().map(|i| i as f64)) {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.report(item.span(), format!("parameter {key:?}: {name} must be a number"));
                None
            }
        }
    }

    /// `{ distribution = ..., ... }`: the distribution, checked against the setting's type.
    fn distribution(&mut self, e: &Entry, dist_item: &Item) -> Option<Domain> {
        let key = e.key;
        let dist = dist_item.as_str().unwrap_or("");
        let domain = match dist {
            "uniform" | "log_uniform_values" | "q_uniform" | "int_uniform" => self.bounded(e, dist_item, dist)?,
            "categorical" => self.categorical(e, dist_item)?,
            other => {
                self.report(
                    dist_item.span(),
                    format!(
                        "parameter {key:?}: distribution {other:?} is not one of {}{}",
                        DISTRIBUTIONS.join(", "),
                        did_you_mean_suffix(other, DISTRIBUTIONS)
                    ),
                );
                return None;
            }
        };
        if !matches!(domain, Domain::Categorical { .. }) && !e.default.is_number() {
            self.report(dist_item.span(), format!("parameter {key:?}: a numeric distribution cannot set a non-numeric setting; use values = [...]"));
            return None;
        }
        if matches!(domain, Domain::Uniform { .. } | Domain::LogUniformValues { .. } | Domain::QUniform { .. })
            && !e.default.as_f64().is_some_and(|_| e.default.is_f64())
        {
            self.report(dist_item.span(), format!("parameter {key:?} is a whole number: use int_uniform or values"));
            return None;
        }
        Some(domain)
    }

    /// The distributions between `min` and `max`: uniform, log-uniform, quantised, integer.
    fn bounded(&mut self, e: &Entry, dist_item: &Item, dist: &str) -> Option<Domain> {
        let key = e.key;
        let (min, max) = (self.required_number(e, dist_item, dist, "min"), self.required_number(e, dist_item, dist, "max"));
        let q = if dist == "q_uniform" { self.required_number(e, dist_item, dist, "q") } else { Some(1.0) };
        let (min, max, q) = (min?, max?, q?);
        if min >= max {
            self.report(e.at("min"), format!("parameter {key:?}: min = {min} must be less than max = {max}"));
            return None;
        }
        Some(match dist {
            "uniform" => Domain::Uniform { min, max },
            "log_uniform_values" if min <= 0.0 => {
                self.report(e.at("min"), format!("parameter {key:?}: log_uniform_values needs min > 0 (got {min})"));
                return None;
            }
            "log_uniform_values" => Domain::LogUniformValues { min, max },
            "q_uniform" if q <= 0.0 => {
                self.report(e.at("q"), format!("parameter {key:?}: q must be > 0"));
                return None;
            }
            "q_uniform" if quantised_range(min, max, q).is_none() => {
                self.report(
                    e.at("q"),
                    format!("parameter {key:?}: no multiple of q = {q} lies between min = {min} and max = {max}; make q smaller or the range wider"),
                );
                return None;
            }
            "q_uniform" => Domain::QUniform { min, max, q },
            _ if min.fract() != 0.0 || max.fract() != 0.0 => {
                self.report(e.at("min"), format!("parameter {key:?}: int_uniform needs whole-number min and max"));
                return None;
            }
            _ => Domain::IntUniform { min: min as i64, max: max as i64 },
        })
    }

    /// `{ distribution = "categorical", values = [...], probabilities = [...] }`.
    fn categorical(&mut self, e: &Entry, dist_item: &Item) -> Option<Domain> {
        let key = e.key;
        if e.table.get("values").is_none() {
            self.report(dist_item.span(), format!("parameter {key:?}: categorical needs values = [...]"));
            return None;
        }
        let values = self.typed_list(e, "values")?;
        let probabilities = match e.table.get("probabilities") {
            None => vec![1.0 / values.len() as f64; values.len()],
            Some(p) => {
                let ps: Option<Vec<f64>> = p.as_array().and_then(|a| a.iter().map(|x| x.as_float().or(x.as_integer().map(|i| i as f64))).collect());
                match ps {
                    Some(ps) if ps.len() == values.len() && ps.iter().all(|&x| x >= 0.0) && (ps.iter().sum::<f64>() - 1.0).abs() < 1e-6 => ps,
                    _ => {
                        self.report(p.span(), format!("parameter {key:?}: probabilities must be {} non-negative numbers summing to 1", values.len()));
                        return None;
                    }
                }
            }
        };
        Some(Domain::Categorical { values, probabilities })
    }
}

/// One entry of `[parameters]` while it is validated: its key, its table, where it is, and the
/// default value of the setting it sweeps (which gives the type its values must have).
struct Entry<'a> {
    key: &'a str,
    table: &'a dyn TableLike,
    span: Option<std::ops::Range<usize>>,
    default: &'a Json,
}

impl Entry<'_> {
    /// Where the entry's field `name` is, or the entry itself.
    fn at(&self, name: &str) -> Option<std::ops::Range<usize>> {
        self.table.get(name).and_then(|i| i.span()).or(self.span.clone())
    }
}
