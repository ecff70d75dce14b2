//! `sweep best` for a sweep of several objectives: its Pareto front, the completed trials that no
//! other completed trial beats by every objective, sorted by the first objective.
//!
//! A trial's value of an objective is what [`crate::store::rank_completed`] ranks by: its best
//! epoch's value of a per-epoch metric, or its recorded cost. A completed trial without a value of
//! every objective (one that finished before its cost was recorded) is counted, not placed.

use std::fmt::Write as _;

use super::best::Reevaluated;
use super::{ReportError, fmt_num, json_number, short_params};
use crate::config::{Goal, Objective};
use crate::store::{self, Store, TrialRow, TrialStatus};
use crate::study::pareto;

/// The front of one or more sweeps that share their objectives.
#[derive(Debug, Clone)]
pub struct Front {
    pub sweep: Option<String>,
    pub objectives: Vec<Objective>,
    /// The non-dominated completed trials, best first by the first objective (ties: the lower
    /// trial number).
    pub members: Vec<Member>,
    /// Completed trials with a value of every objective, on the front or not.
    pub judged: usize,
    /// Completed trials without a value of some objective.
    pub without_values: usize,
}

/// A trial on the front and its value of each objective, in the objectives' order.
#[derive(Debug, Clone)]
pub struct Member {
    pub trial: TrialRow,
    pub values: Vec<f64>,
}

/// A trial's value of each of `objectives`, in their order: a per-epoch metric's best epoch's
/// value (as [`crate::store::rank_completed`] ranks by), a cost as last recorded (an extended
/// trial's is measured again); None while it lacks one.
pub fn objective_values(row: &TrialRow, objectives: &[Objective]) -> Option<Vec<f64>> {
    objectives
        .iter()
        .map(|o| if crate::config::COST_METRICS.contains(&o.name.as_str()) { row.last(&o.name) } else { row.best(&o.name, o.goal).map(|(v, _)| v) })
        .collect()
}

/// The front of `trials` (any statuses; only completed ones count) by `objectives`.
pub fn front_of(trials: &[TrialRow], objectives: &[Objective], sweep: Option<&str>) -> Front {
    let goals: Vec<Goal> = objectives.iter().map(|o| o.goal).collect();
    let completed = trials.iter().filter(|t| t.status == TrialStatus::Completed);
    let (mut judged, mut without_values): (Vec<(&TrialRow, Vec<f64>)>, usize) = (Vec::new(), 0);
    for trial in completed {
        match objective_values(trial, objectives) {
            Some(values) => judged.push((trial, values)),
            None => without_values += 1,
        }
    }
    let points: Vec<Vec<f64>> = judged.iter().map(|(_, v)| v.clone()).collect();
    let first = pareto::fronts(&points, &goals).into_iter().next().unwrap_or_default();
    let mut members: Vec<Member> = first.into_iter().map(|i| Member { trial: judged[i].0.clone(), values: judged[i].1.clone() }).collect();
    members.sort_by(|a, b| goals[0].order(a.values[0], b.values[0]).then(a.trial.seq.cmp(&b.trial.seq)).then_with(|| a.trial.id.cmp(&b.trial.id)));
    Front { sweep: sweep.map(String::from), objectives: objectives.to_vec(), members, judged: judged.len(), without_values }
}

/// The front of the sweep named (every sweep of the tracker when None) by `objectives`.
pub fn front(store: &dyn Store, sweep: Option<&str>, objectives: &[Objective]) -> Result<Front, ReportError> {
    let trials = store.trials(&store::TrialFilter { sweep: sweep.map(String::from), status: Some(TrialStatus::Completed) })?;
    Ok(front_of(&trials, objectives, sweep))
}

impl Front {
    fn names(&self) -> String {
        self.objectives.iter().map(|o| format!("{} ({})", o.name, o.goal.as_str())).collect::<Vec<_>>().join(", ")
    }

    /// Why the front is empty.
    pub fn none_reason(&self) -> String {
        let within = self.sweep.as_ref().map(|s| format!(" in sweep {s}")).unwrap_or_default();
        format!("no completed trial has a value of every objective yet{within}: {}", self.names())
    }

    /// The text of `sweep best` for several objectives: one row a trial on the front; with
    /// `evals` (`--eval`: each member's `best` checkpoint evaluated again, in the members' order)
    /// a second table of what each scores.
    pub fn text(&self, evals: Option<&[Reevaluated]>) -> String {
        let mut out = String::new();
        let within = self.sweep.as_ref().map(|s| format!(" of sweep {s}")).unwrap_or_default();
        let _ = writeln!(out, "Pareto front{within}: {} of {} completed trials; objectives {}", self.members.len(), self.judged, self.names());
        let id_width = self.members.iter().map(|m| m.trial.id.len()).max().unwrap_or(5).max(5);
        let widths: Vec<usize> = self.objectives.iter().map(|o| o.name.len().max(10)).collect();
        let mut header = format!("{:<id_width$}", "trial");
        for (o, w) in self.objectives.iter().zip(&widths) {
            let _ = write!(header, "  {:>w$}", o.name);
        }
        // "swept", not "params": `params` is also a cost metric, often an objective in this table.
        let _ = writeln!(out, "{header}  swept");
        for m in &self.members {
            let mut row = format!("{:<id_width$}", m.trial.id);
            for (v, w) in m.values.iter().zip(&widths) {
                let _ = write!(row, "  {:>w$}", fmt_num(*v));
            }
            let _ = writeln!(out, "{row}  {}", short_params(&m.trial.params));
        }
        let dominated = self.judged - self.members.len();
        if dominated > 0 {
            let _ = writeln!(out, "{dominated} completed trial(s) dominated: another is at least as good by every objective and better by one");
        }
        if self.without_values > 0 {
            let _ = writeln!(out, "{} completed trial(s) without a value of every objective, not placed", self.without_values);
        }
        if let Some(evals) = evals {
            let _ =
                writeln!(out, "\nre-evaluated each member's best checkpoint on the validation split (original size: each image at its own size):");
            let _ = writeln!(
                out,
                "{:<id_width$}  {:>5}  {:>10}  {:>10}  {:>10}  {:>10}  {:>17}  {:>17}",
                "trial", "epoch", "loss", "dice", "iou", "fg_iou", "iou orig. pooled", "iou orig. per img"
            );
            for (m, e) in self.members.iter().zip(evals) {
                let _ = writeln!(
                    out,
                    "{:<id_width$}  {:>5}  {:>10}  {:>10}  {:>10}  {:>10}  {:>17}  {:>17}",
                    m.trial.id,
                    e.epoch,
                    fmt_num(e.loss),
                    fmt_num(e.dice),
                    fmt_num(e.iou),
                    fmt_num(e.fg_iou),
                    fmt_num(e.full.iou),
                    fmt_num(e.full_mean_per_image.iou)
                );
            }
        }
        out
    }

    /// The JSON document of `sweep best --json` for several objectives; with `evals`, each
    /// member's `eval` as `sweep best --eval --json` gives one trial's.
    pub fn json(&self, evals: Option<&[Reevaluated]>) -> serde_json::Value {
        let objectives: Vec<serde_json::Value> =
            self.objectives.iter().map(|o| serde_json::json!({"name": o.name, "goal": o.goal.as_str()})).collect();
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let values: serde_json::Map<String, serde_json::Value> =
                    self.objectives.iter().zip(&m.values).map(|(o, v)| (o.name.clone(), json_number(*v))).collect();
                let mut member = serde_json::json!({"run": m.trial.id, "sweep": m.trial.sweep, "values": values, "params": m.trial.params});
                if let Some(e) = evals.and_then(|evals| evals.get(i)) {
                    member["eval"] = e.json();
                }
                member
            })
            .collect();
        let mut v = serde_json::json!({
            "sweep": self.sweep,
            "objectives": objectives,
            "front": members,
            "completed_judged": self.judged,
            "completed_without_values": self.without_values,
        });
        if self.members.is_empty() {
            v["error"] = self.none_reason().into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MetricSummary;

    /// A per-epoch objective counts with its best epoch's value, a cost with its last measure (an
    /// extended trial's latency, measured again, replaces the first).
    #[test]
    fn a_cost_counts_as_last_measured_and_a_metric_by_its_best_epoch() {
        let summary = |last: f64, min: f64, max: f64| MetricSummary {
            last_epoch: 4,
            last,
            min: Some(min),
            min_epoch: Some(1),
            max: Some(max),
            max_epoch: Some(3),
        };
        let row = TrialRow {
            status: TrialStatus::Completed,
            metrics: [("val_iou".to_string(), summary(0.8, 0.5, 0.9)), ("infer_ms".to_string(), summary(5.0, 3.0, 5.0))].into(),
            ..TrialRow::default()
        };
        let objectives = [Objective { name: "val_iou".into(), goal: Goal::Maximize }, Objective { name: "infer_ms".into(), goal: Goal::Minimize }];
        assert_eq!(objective_values(&row, &objectives), Some(vec![0.9, 5.0]));
        assert_eq!(objective_values(&row, &objectives[..1]), Some(vec![0.9]));
        let without = TrialRow { metrics: [("val_iou".to_string(), summary(0.8, 0.5, 0.9))].into(), ..row };
        assert_eq!(objective_values(&without, &objectives), None);
    }
}
