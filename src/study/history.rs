//! What the tracker knows of a sweep's trials, as samplers and pruners see it: a read-only
//! snapshot of every trial's point, state and per-epoch objective values, with the objective's
//! name and direction.
//!
//! Samplers and pruners keep no state of their own: everything they decide is a function of a
//! `History` (and their settings and seed). That is what lets any worker ask for the next point,
//! and a killed sweep resume with the same study, because the tracker is the only memory.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::config::Goal;

/// One point of a sweep's space: the swept settings and their values. A conditional parameter
/// whose condition does not hold is absent.
pub type Point = BTreeMap<String, Json>;

/// Where a trial is in its life, as far as a search is concerned: the tracker's
/// [`crate::store::TrialStatus`] as samplers and pruners read it (a diverged trial is `Pruned`:
/// it stopped early on its own, and its region is a bad one; a crashed one is `Failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchState {
    Queued,
    Running,
    Completed,
    Pruned,
    /// Crashed or diverged: its values, if any, are not a judgement of its point.
    Failed,
    /// It broke a constraint (before training, or when it completed): its region is one to
    /// avoid, whatever its values.
    Infeasible,
}

/// One trial as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// Its number in the sweep (the `n` of the id `<sweep>-<n>`).
    pub number: usize,
    /// Its parameters' values (shared with the tracker's read of them: they never change).
    pub point: std::sync::Arc<Point>,
    pub state: SearchState,
    /// The objective's value at each recorded epoch (epochs count from 1).
    pub values: BTreeMap<usize, f64>,
    /// Where the sweep has several objectives ([`History::objectives`]): the trial's value of
    /// each, in their order (a per-epoch metric's best epoch's, a cost as recorded). Empty for
    /// one objective, or while the trial lacks a value of some objective.
    pub scores: Vec<f64>,
    /// How far an infeasible trial is from meeting its `[[constraints]]`: each broken bound's
    /// excess relative to the bound, summed (infinite where a bounded value is missing or not a
    /// number); 0 for every other trial. Infeasible trials rank by it, least first.
    pub violation: f64,
}

impl TrialRecord {
    /// The value at `epoch`, if that epoch was recorded.
    pub fn value_at(&self, epoch: usize) -> Option<f64> {
        self.values.get(&epoch).copied()
    }

    /// The deepest recorded epoch and its value.
    pub fn last(&self) -> Option<(usize, f64)> {
        self.values.iter().next_back().map(|(&e, &v)| (e, v))
    }

    /// The best finite value over the recorded epochs, in the goal's direction.
    pub fn best(&self, goal: Goal) -> Option<f64> {
        self.values.values().copied().filter(|v| v.is_finite()).min_by(|a, b| goal.order(*a, *b))
    }
}

/// The trials of one sweep and the objective they are judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The objective's name, e.g. `val_iou` (pruners name it in their reasons).
    pub metric: String,
    pub goal: Goal,
    pub trials: Vec<TrialRecord>,
    /// The directions of the sweep's objectives where it has several (each trial's
    /// [`TrialRecord::scores`] follow them); empty for one.
    pub objectives: Vec<Goal>,
    /// Where the sweep has several objectives: the others, which pruners judge beside the metric
    /// at an epoch, with their directions (see [`History::with_fixed`]): those known before a
    /// trial trains (what its model costs), and those recorded every epoch (as of the judged
    /// epoch); empty otherwise.
    pub fixed: Vec<(String, Goal)>,
    /// Each trial's values of [`History::fixed`], by number; a trial without them is absent.
    pub fixed_values: BTreeMap<usize, Vec<f64>>,
}

impl History {
    pub fn new(metric: impl Into<String>, goal: Goal, trials: Vec<TrialRecord>) -> History {
        History { metric: metric.into(), goal, trials, objectives: Vec::new(), fixed: Vec::new(), fixed_values: BTreeMap::new() }
    }

    /// The same history judged by several objectives in these directions.
    pub fn with_objectives(mut self, goals: Vec<Goal>) -> History {
        self.objectives = goals;
        self
    }

    /// The same history with objectives known before training (`fixed`: names and directions)
    /// and each trial's values of them (`values`, by trial number), which pruners judge beside
    /// the metric.
    pub fn with_fixed(mut self, fixed: Vec<(String, Goal)>, values: BTreeMap<usize, Vec<f64>>) -> History {
        self.fixed = fixed;
        self.fixed_values = values;
        self
    }

    /// The trial with this number.
    pub fn trial(&self, number: usize) -> Option<&TrialRecord> {
        self.trials.iter().find(|t| t.number == number)
    }

    /// Orders two values best first in the goal's direction; NaN ranks after every number
    /// ([`Goal::order`]).
    pub fn compare(&self, a: f64, b: f64) -> Ordering {
        self.goal.order(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(values: &[(usize, f64)]) -> TrialRecord {
        TrialRecord {
            number: 0,
            point: Default::default(),
            state: SearchState::Completed,
            values: values.iter().copied().collect(),
            scores: Vec::new(),
            violation: 0.0,
        }
    }

    #[test]
    fn values_order_best_first_in_the_goals_direction_with_nan_last() {
        let mut xs = [0.5, f64::NAN, 0.9, 0.1];
        xs.sort_by(|a, b| Goal::Maximize.order(*a, *b));
        assert_eq!(&xs[..3], [0.9, 0.5, 0.1]);
        assert!(xs[3].is_nan());
        xs.sort_by(|a, b| Goal::Minimize.order(*a, *b));
        assert_eq!(&xs[..3], [0.1, 0.5, 0.9]);
        assert!(xs[3].is_nan());
    }

    #[test]
    fn a_trial_knows_its_deepest_epoch_and_its_best_finite_value() {
        let t = record(&[(1, 0.2), (2, 0.6), (3, f64::NAN), (4, 0.5)]);
        assert_eq!(t.last(), Some((4, 0.5)));
        assert_eq!(t.best(Goal::Maximize), Some(0.6));
        assert_eq!(t.best(Goal::Minimize), Some(0.2));
        assert_eq!(t.value_at(2), Some(0.6));
        assert_eq!(record(&[]).last(), None);
    }
}
