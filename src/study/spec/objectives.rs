//! What a sweep optimises: `[metric]` for one objective, or two or three `[[objectives]]` tables
//! (`name`, `goal`) that trade off, e.g. IoU against latency. An objective is a metric recorded
//! every epoch (`val_iou`, or what a `[program]` reports) or, for the built-in U-Net, what a trial
//! costs ([`COST_METRICS`]: recorded once, `params` and `gflops` before the first epoch).

use toml_edit::{Item, TableLike};

use super::{Validator, did_you_mean_suffix};
use crate::config::{COST_METRICS, Constraint, Goal, Objective};

/// How many objectives `[[objectives]]` may name.
pub const MAX_OBJECTIVES: usize = 3;

const KEYS: &[&str] = &["name", "goal"];
const CONSTRAINT_KEYS: &[&str] = &["metric", "min", "max"];

impl Validator<'_> {
    /// The sweep's objectives and, of them, the one a trial's epochs follow (its `best`
    /// checkpoint, single-objective pruning): `[metric]`'s, or the first of `[[objectives]]`
    /// recorded every epoch.
    pub(super) fn objectives(&mut self, root: &toml_edit::Table, program: bool) -> (Objective, Vec<Objective>) {
        let Some(item) = root.get("objectives") else {
            let metric = self.metric(root, program);
            return (metric.clone(), vec![metric]);
        };
        if let Some((key, _)) = root.get_key_value("metric") {
            self.report(
                key.span().or_else(|| root.get("metric").and_then(Item::span)),
                "[metric] and [[objectives]] both say what the sweep optimises: keep [metric] for one objective, or move it into [[objectives]] for several".into(),
            );
        }
        let Some(tables) = tables(item) else {
            self.report(
                item.span(),
                "objectives must be tables: [[objectives]] name = \"val_iou\", goal = \"maximize\", one table per objective".into(),
            );
            return (Objective::default(), vec![Objective::default()]);
        };
        let mut objectives: Vec<Objective> = Vec::new();
        for (i, (table, span)) in tables.iter().enumerate() {
            if let Some(objective) = self.objective(*table, span.clone(), i, program) {
                if objectives.iter().any(|o| o.name == objective.name) {
                    self.report(
                        table.get("name").and_then(Item::span).or(span.clone()),
                        format!("objectives[{i}].name = {:?} is named twice; each objective is a different metric", objective.name),
                    );
                } else {
                    objectives.push(objective);
                }
            }
        }
        let span = item.span().or_else(|| tables.first().and_then(|(_, s)| s.clone()));
        match tables.len() {
            1 => self.report(
                span.clone(),
                "[[objectives]] names one objective; for one, write [metric] name = ..., goal = ...; [[objectives]] is for two or three".into(),
            ),
            n if n > MAX_OBJECTIVES => self.report(
                span.clone(),
                format!("[[objectives]] names {n} objectives; at most {MAX_OBJECTIVES} (a front over more is too sparse to search or read)"),
            ),
            _ => {}
        }
        let followed = objectives.iter().find(|o| !COST_METRICS.contains(&o.name.as_str())).cloned();
        let followed = match followed {
            Some(o) => o,
            None => {
                if objectives.len() == tables.len() && !objectives.is_empty() {
                    self.report(
                        span,
                        format!(
                            "[[objectives]] needs a metric recorded every epoch (val_iou, val_loss, ...): a trial's best checkpoint and pruning follow it; {} are recorded once a trial",
                            COST_METRICS.join(", ")
                        ),
                    );
                }
                Objective::default()
            }
        };
        if objectives.is_empty() {
            objectives.push(followed.clone());
        }
        (followed, objectives)
    }

    /// `[[constraints]]`: each a metric (recorded every epoch, or a cost of the built-in U-Net)
    /// with `min`, `max` or both.
    pub(super) fn constraints(&mut self, root: &toml_edit::Table, program: bool) -> Vec<Constraint> {
        let Some(item) = root.get("constraints") else { return Vec::new() };
        let Some(tables) = tables(item) else {
            self.report(item.span(), "constraints must be tables: [[constraints]] metric = \"infer_ms\", max = 5.0, one table per bound".into());
            return Vec::new();
        };
        let mut constraints = Vec::new();
        for (i, (table, span)) in tables.into_iter().enumerate() {
            let prefix = format!("constraints[{i}].");
            self.unknown_keys(table, &format!("constraints[{i}]"), CONSTRAINT_KEYS);
            let metric = match table.get("metric") {
                None => {
                    self.report(span.clone(), format!("{prefix}metric is missing: name what is bounded, e.g. metric = \"infer_ms\""));
                    None
                }
                Some(v) => self.metric_name(v, &format!("{prefix}metric"), program),
            };
            let (min, max) = (self.number(table, &prefix, "min", None), self.number(table, &prefix, "max", None));
            if table.get("min").is_none() && table.get("max").is_none() {
                self.report(
                    span.clone(),
                    format!("constraints[{i}] needs min = x, max = x or both: a constraint without a bound holds for every trial"),
                );
            }
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                self.report(table.get("min").and_then(Item::span), format!("{prefix}min = {lo} is above max = {hi}: no trial could hold it"));
            }
            if let Some(metric) = metric {
                constraints.push(Constraint { metric, min, max });
            }
        }
        constraints
    }

    /// A metric's name as `[[objectives]]` and `[[constraints]]` take it: recorded every epoch
    /// (or, in a `[program]` sweep, reported by the program), or a cost of the built-in U-Net.
    fn metric_name(&mut self, v: &Item, key: &str, program: bool) -> Option<String> {
        match v.as_str() {
            Some(n) if Objective::parse_name(n).is_some() || (program && Objective::parse_reported(n).is_some()) => Some(n.to_string()),
            // A program's epochs are timed by the worker; what its model costs only it can say.
            Some(n) if COST_METRICS.contains(&n) && (!program || n == "train_seconds") => Some(n.to_string()),
            Some(n) if COST_METRICS.contains(&n) => {
                self.report(
                    v.span(),
                    format!(
                        "{key} = {n:?}: a [program] trial records what its program reports and its train_seconds, not what the built-in U-Net costs; report it per epoch (e.g. val_{n}) and name that"
                    ),
                );
                None
            }
            other => {
                let given = other.map(|s| format!("{s:?}")).unwrap_or_else(|| "a non-string".into());
                let known: Vec<String> =
                    crate::config::METRIC_NAMES.iter().map(|m| format!("val_{m}")).chain(COST_METRICS.iter().map(|c| c.to_string())).collect();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                let hint = other.map(|s| did_you_mean_suffix(s, &known)).unwrap_or_default();
                let names = if program {
                    "a metric the program reports: <split>_<name> with split train or val (e.g. val_iou, val_accuracy)".to_string()
                } else {
                    format!(
                        "<split>_<metric> (split train or val, metric loss, dice, iou or fg_iou, e.g. val_iou; or val_full_dice, val_full_iou, val_full_fg_iou), or a cost: {}",
                        COST_METRICS.join(", ")
                    )
                };
                self.report(v.span(), format!("{key} = {given} is not a metric; use {names}{hint}"));
                None
            }
        }
    }

    /// One `[[objectives]]` table: its name and goal, both required.
    fn objective(&mut self, table: &dyn TableLike, span: Option<std::ops::Range<usize>>, i: usize, program: bool) -> Option<Objective> {
        let prefix = format!("objectives[{i}].");
        self.unknown_keys(table, &format!("objectives[{i}]"), KEYS);
        let name = match table.get("name") {
            None => {
                self.report(span.clone(), format!("{prefix}name is missing: name the metric, e.g. name = \"val_iou\" or name = \"infer_ms\""));
                None
            }
            Some(v) => self.metric_name(v, &format!("{prefix}name"), program),
        };
        let goal = match table.get("goal") {
            None => {
                let natural = name.as_deref().map(Goal::for_metric).unwrap_or(Goal::Maximize).as_str();
                self.report(
                    span,
                    format!(
                        "{prefix}goal is missing: with several objectives each says its direction, goal = \"maximize\" or \"minimize\" (for {} most likely \"{natural}\")",
                        name.as_deref().unwrap_or("this metric")
                    ),
                );
                None
            }
            Some(v) => match v.as_str() {
                Some("maximize" | "max") => Some(Goal::Maximize),
                Some("minimize" | "min") => Some(Goal::Minimize),
                _ => {
                    self.report(v.span(), format!("{prefix}goal must be \"maximize\" or \"minimize\""));
                    None
                }
            },
        };
        Some(Objective { name: name?, goal: goal? })
    }
}

/// An array of tables (`[[key]]`) or an inline array of inline tables, each with its span;
/// None for anything else.
fn tables(item: &Item) -> Option<Vec<(&dyn TableLike, Option<std::ops::Range<usize>>)>> {
    match item {
        Item::ArrayOfTables(array) => Some(array.iter().map(|t| (t as &dyn TableLike, t.span())).collect()),
        Item::Value(toml_edit::Value::Array(array)) if array.iter().all(|v| v.as_inline_table().is_some()) => {
            Some(array.iter().filter_map(|v| v.as_inline_table().map(|t| (t as &dyn TableLike, v.span()))).collect())
        }
        _ => None,
    }
}
