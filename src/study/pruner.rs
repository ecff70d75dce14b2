//! Pruners: whether a trial that has just finished an epoch should go on. A pruner is a pure
//! function of the [`History`] (which already holds the epoch just recorded) and returns a
//! [`Decision`]; the worker acts on it. The reason is a sentence for people, recorded with the
//! pruned trial.
//!
//! The rules: the median and percentile rules (Optuna's semantics: the trial's best value so far
//! against the completed trials' values at the same epoch), the patient rule (no improvement for
//! `patience` epochs), thresholds (a value out of bounds), asynchronous successive halving (ASHA)
//! and Hyperband (several ASHA brackets, the W&B `hyperband` keys `min_iter`, `max_iter`, `eta`).
//! All compare values with what has arrived and never wait for other trials, so that workers
//! never block on each other. Failed trials take no part: their values do not judge their point.

use crate::config::Goal;
use crate::study::history::{History, SearchState, TrialRecord};
use crate::study::pareto;

/// What a trial should do after an epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Continue,
    Prune { reason: String },
}

/// An early-stopping rule.
pub trait Pruner {
    /// The decision for trial `number` at the end of `epoch` (counted from 1). A trial or epoch
    /// the history does not hold continues: there is nothing to judge.
    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision;

    /// What the decision at `epoch` reads of the other trials' values (the judged trial's own
    /// values up to `epoch` are always read), so that the tracker reads no more: at 10,000
    /// trials a decision that reads every trial costs a hundred milliseconds, one that reads the
    /// trial's own values almost nothing.
    fn reads(&self, epoch: usize) -> Reads {
        let _ = epoch;
        Reads::PeersAtEpoch
    }
}

/// What a pruner's decision at an epoch reads of the other trials' values ([`Pruner::reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// None: it reads the judged trial's own values, or makes no decision at that epoch.
    Own,
    /// Their values at the epoch.
    PeersAtEpoch,
    /// Their values up to the epoch (it compares best values so far).
    PeersUpToEpoch,
}

/// Settings a pruner refuses, said in the sweep file's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrunerError {
    #[error("eta = {0} must be at least 2 (each rung keeps the top 1/eta)")]
    Eta(usize),
    #[error("min_iter = {0} must be at least 1 (epochs count from 1)")]
    MinIter(usize),
    #[error("min_iter = {min_iter} must not exceed max_iter = {max_iter}")]
    MinAboveMax { min_iter: usize, max_iter: usize },
}

/// Optuna's `PercentilePruner` (and `MedianPruner`, its 50th percentile): prunes a trial whose
/// best value so far is worse than the given percentile of the completed trials' values at the
/// same epoch. Only completed trials are peers: a pruned trial's early values would drag the bar
/// down, a running one's would make the decision depend on who happens to be training.
#[derive(Debug, Clone, PartialEq)]
pub struct Percentile {
    /// Where the bar sits among the completed trials' values, from the best: 25 keeps the
    /// trials in the best quarter, 50 is the median.
    pub percentile: f64,
    /// Epochs `1..=warmup_epochs` are never judged: early values say little.
    pub warmup_epochs: usize,
    /// Nothing is pruned until this many trials have completed.
    pub startup_trials: usize,
    /// An epoch is judged only when at least this many completed trials recorded it.
    pub min_trials: usize,
    /// Judged every `interval` epochs after the warm-up (the first epoch after it, then every
    /// `interval`th).
    pub interval: usize,
}

impl Percentile {
    /// The median rule with Optuna's defaults but the given warm-up and startup.
    pub fn median(warmup_epochs: usize, startup_trials: usize) -> Percentile {
        Percentile { percentile: 50.0, warmup_epochs, startup_trials, min_trials: 1, interval: 1 }
    }

    fn name(&self) -> String {
        if self.percentile == 50.0 { "the median".into() } else { format!("the {} percentile", fmt(self.percentile)) }
    }
}

impl Default for Percentile {
    /// Optuna's `MedianPruner()`: five completed trials, no warm-up, every epoch.
    fn default() -> Self {
        Percentile::median(0, 5)
    }
}

impl Percentile {
    /// Whether an epoch is judged: after the warm-up, every `interval`th.
    fn judges(&self, epoch: usize) -> bool {
        epoch > self.warmup_epochs && (epoch - self.warmup_epochs - 1).is_multiple_of(self.interval.max(1))
    }
}

impl Pruner for Percentile {
    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        let Some(trial) = history.trial(number) else { return Decision::Continue };
        if trial.value_at(epoch).is_none() || !self.judges(epoch) {
            return Decision::Continue;
        }
        let Some(best) = best_so_far(history, trial, epoch) else {
            return Decision::Prune { reason: format!("{} is not a number at any epoch up to {epoch}", history.metric) };
        };
        let completed: Vec<&TrialRecord> = history.trials.iter().filter(|t| t.state == SearchState::Completed && t.number != number).collect();
        if completed.len() < self.startup_trials {
            return Decision::Continue;
        }
        let peers: Vec<(usize, f64)> =
            completed.iter().filter_map(|t| t.value_at(epoch).map(|v| (t.number, v))).filter(|(_, v)| !v.is_nan()).collect();
        if peers.is_empty() || peers.len() < self.min_trials {
            return Decision::Continue;
        }
        if let Some(standing) = Standing::of(history, number, best, &peers) {
            // Kept: the first `percentile` percent of the trials by Pareto rank and crowding.
            let keep = ((standing.n as f64 * self.percentile / 100.0).ceil() as usize).max(1);
            if standing.position < keep {
                return Decision::Continue;
            }
            let said = format!("best {} so far {} (epochs 1-{epoch})", history.metric, fmt(best));
            let among = format!("among the completed trials at epoch {epoch}");
            return Decision::Prune {
                reason: format!("{said}{}; {} keeps the first {keep}", standing.describe(history, number, &among), self.name()),
            };
        }
        let peers: Vec<f64> = peers.into_iter().map(|(_, v)| v).collect();
        let n = peers.len();
        // The bar `percentile` percent of the way from the best value to the worst.
        let from_best = match history.goal {
            Goal::Minimize => self.percentile,
            Goal::Maximize => 100.0 - self.percentile,
        };
        let bar = percentile(peers, from_best);
        if history.compare(best, bar).is_le() {
            return Decision::Continue;
        }
        let side = match history.goal {
            Goal::Maximize => "below",
            Goal::Minimize => "above",
        };
        Decision::Prune {
            reason: format!(
                "best {} so far {} (epochs 1-{epoch}) is {side} {} {} of {n} completed trial{} at epoch {epoch}",
                history.metric,
                fmt(best),
                self.name(),
                fmt(bar),
                plural(n)
            ),
        }
    }

    fn reads(&self, epoch: usize) -> Reads {
        if self.judges(epoch) { Reads::PeersAtEpoch } else { Reads::Own }
    }
}

/// Optuna's `PatientPruner` on its own: stops a trial whose best value over its last
/// `patience + 1` epochs is no better, by more than `min_delta`, than its best before them.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub patience: usize,
    pub min_delta: f64,
}

impl Pruner for Patient {
    /// Its own values only.
    fn reads(&self, _epoch: usize) -> Reads {
        Reads::Own
    }

    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        let Some(trial) = history.trial(number) else { return Decision::Continue };
        let values: Vec<(usize, f64)> = trial.values.range(..=epoch).map(|(&e, &v)| (e, v)).collect();
        if trial.value_at(epoch).is_none() || values.len() <= self.patience + 1 {
            return Decision::Continue;
        }
        let (before, recent) = values.split_at(values.len() - self.patience - 1);
        let best = |vs: &[(usize, f64)]| vs.iter().map(|&(_, v)| v).filter(|v| !v.is_nan()).min_by(|a, b| history.compare(*a, *b));
        let Some(before_best) = best(before) else { return Decision::Continue };
        let improved = match (best(recent), history.goal) {
            (None, _) => false,
            (Some(r), Goal::Maximize) => r >= before_best + self.min_delta,
            (Some(r), Goal::Minimize) => r <= before_best - self.min_delta,
        };
        if improved {
            return Decision::Continue;
        }
        let since = before.last().map_or(0, |&(e, _)| e);
        let by = if self.min_delta > 0.0 { format!(" by min_delta = {}", fmt(self.min_delta)) } else { String::new() };
        Decision::Prune {
            reason: format!(
                "{} has not improved{by} on its best {} (up to epoch {since}) in the {} epochs since (patience = {})",
                history.metric,
                fmt(before_best),
                recent.len(),
                self.patience
            ),
        }
    }
}

/// Optuna's `ThresholdPruner`: stops a trial at once when its value leaves `[lower, upper]`
/// (divergence, or a hopeless start), or is not a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Epochs `1..=warmup_epochs` are never judged.
    pub warmup_epochs: usize,
}

impl Pruner for Threshold {
    /// Its own values only.
    fn reads(&self, _epoch: usize) -> Reads {
        Reads::Own
    }

    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        let Some(value) = history.trial(number).and_then(|t| t.value_at(epoch)) else { return Decision::Continue };
        if epoch <= self.warmup_epochs {
            return Decision::Continue;
        }
        if let Some(reason) = not_a_number(history, value, epoch) {
            return Decision::Prune { reason };
        }
        let reason = match (self.lower, self.upper) {
            (Some(lower), _) if value < lower => format!("{} {} at epoch {epoch} is below lower = {}", history.metric, fmt(value), fmt(lower)),
            (_, Some(upper)) if value > upper => format!("{} {} at epoch {epoch} is above upper = {}", history.metric, fmt(value), fmt(upper)),
            _ => return Decision::Continue,
        };
        Decision::Prune { reason }
    }
}

/// The trial's best non-NaN value over epochs `1..=epoch`; None if it has none.
fn best_so_far(history: &History, trial: &TrialRecord, epoch: usize) -> Option<f64> {
    trial.values.range(..=epoch).map(|(_, &v)| v).filter(|v| !v.is_nan()).min_by(|a, b| history.compare(*a, *b))
}

/// The `p`th percentile (0 to 100) of numbers in ascending order, interpolating linearly
/// between the closest ranks (numpy's default).
fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = (p / 100.0).clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (at - lo as f64)
}

/// Successive-halving settings: rungs at `min_iter * eta^k` epochs below `max_iter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halving {
    min_iter: usize,
    max_iter: usize,
    eta: usize,
    /// The first `bootstrap` trials to reach a rung stop there (Optuna's `bootstrap_count`): a
    /// rung promotes only once it has more values than that to compare.
    bootstrap: usize,
    /// Judge each trial by its best value up to the rung rather than its value at the rung.
    best_so_far: bool,
}

impl Halving {
    pub fn new(min_iter: usize, max_iter: usize, eta: usize) -> Result<Halving, PrunerError> {
        if eta < 2 {
            return Err(PrunerError::Eta(eta));
        }
        if min_iter < 1 {
            return Err(PrunerError::MinIter(min_iter));
        }
        if min_iter > max_iter {
            return Err(PrunerError::MinAboveMax { min_iter, max_iter });
        }
        Ok(Halving { min_iter, max_iter, eta, bootstrap: 0, best_so_far: false })
    }

    /// The epochs at which trials are compared. `max_iter` itself is no rung: a trial that
    /// reaches it has finished anyway.
    pub fn rungs(&self) -> Vec<usize> {
        std::iter::successors(Some(self.min_iter), |r| r.checked_mul(self.eta)).take_while(|&r| r < self.max_iter).collect()
    }

    /// What a decision at `epoch` reads: the others' values at a rung (up to it with
    /// `best_so_far`), nothing of theirs elsewhere.
    fn reads(&self, epoch: usize) -> Reads {
        match (self.rungs().contains(&epoch), self.best_so_far) {
            (false, _) => Reads::Own,
            (true, false) => Reads::PeersAtEpoch,
            (true, true) => Reads::PeersUpToEpoch,
        }
    }

    /// The ASHA decision at a rung among `competitors` (the trials that may be compared with
    /// this one, itself included): continue if at most `max(1, n / eta) - 1` of the `n` values
    /// recorded at the rung are strictly better. Without a bootstrap the first trial to reach a
    /// rung always goes on, which is the price of never waiting for stragglers; with one, the
    /// first `bootstrap` trials stop there instead (`n <= bootstrap`).
    fn decide<'a>(&self, history: &History, number: usize, epoch: usize, competitors: impl Iterator<Item = &'a TrialRecord>) -> Decision {
        let Some(trial) = history.trial(number) else { return Decision::Continue };
        let Some(at_rung) = trial.value_at(epoch) else { return Decision::Continue };
        if !self.rungs().contains(&epoch) {
            return Decision::Continue;
        }
        // A trial's value at the rung, or its best up to it (NaN if it has no number by then).
        let judged_value = |t: &TrialRecord| {
            if self.best_so_far { t.value_at(epoch).map(|_| best_so_far(history, t, epoch).unwrap_or(f64::NAN)) } else { t.value_at(epoch) }
        };
        let value = if self.best_so_far { best_so_far(history, trial, epoch).unwrap_or(at_rung) } else { at_rung };
        if let Some(reason) = not_a_number(history, value, epoch) {
            return Decision::Prune { reason };
        }
        let said = if self.best_so_far {
            format!("best {} {} up to epoch {epoch}", history.metric, fmt(value))
        } else {
            format!("{} {} at epoch {epoch}", history.metric, fmt(value))
        };
        let others: Vec<(usize, f64)> = competitors.filter(|t| t.number != number).filter_map(|t| judged_value(t).map(|v| (t.number, v))).collect();
        // Several objectives: the trial's place by Pareto front and crowding; one: by its value.
        let standing = Standing::of(history, number, value, &others);
        let n = standing.as_ref().map_or(others.len() + 1, |s| s.n);
        if n <= self.bootstrap {
            return Decision::Prune {
                reason: format!(
                    "{said}: trial {n} to reach this rung, and bootstrap_count = {} stops the first {} (a rung promotes once more values compare)",
                    self.bootstrap, self.bootstrap
                ),
            };
        }
        let keep = (n / self.eta).max(1);
        let (place, ranked) = match &standing {
            Some(s) => (s.position, s.describe(history, number, "at this rung")),
            None => {
                let better = others.iter().filter(|(_, o)| history.compare(*o, value).is_lt()).count();
                (better, format!(" ranks {} of the {n} trials at this rung", better + 1))
            }
        };
        if place < keep {
            return Decision::Continue;
        }
        Decision::Prune { reason: format!("{said}{ranked}; only the best {keep} (1/{}) continue", self.eta) }
    }
}

/// Asynchronous successive halving (ASHA): at each rung a trial continues if it is in the top
/// 1/eta of the values recorded at that rung so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asha {
    pub halving: Halving,
}

impl Asha {
    pub fn new(min_iter: usize, max_iter: usize, eta: usize) -> Result<Asha, PrunerError> {
        Ok(Asha { halving: Halving::new(min_iter, max_iter, eta)? })
    }

    /// The first `count` trials to reach each rung stop there (see [`Halving`]).
    pub fn with_bootstrap(mut self, count: usize) -> Asha {
        self.halving.bootstrap = count;
        self
    }

    /// Trials compete with their best value up to a rung, not their value at it.
    pub fn with_best_so_far(mut self, on: bool) -> Asha {
        self.halving.best_so_far = on;
        self
    }
}

impl Pruner for Asha {
    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        self.halving.decide(history, number, epoch, judged(history))
    }

    fn reads(&self, epoch: usize) -> Reads {
        self.halving.reads(epoch)
    }
}

/// Hyperband: brackets of ASHA whose first rungs are `min_iter * eta^s` for `s = 0, 1, ...` up
/// to `max_iter` (the last bracket never prunes: plain random search at full budget), hedging
/// between stopping early and trusting early values. A trial's bracket is its number modulo the
/// number of brackets, so it is known from the number alone, on any worker, after any restart;
/// trials compete only with trials of their own bracket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hyperband {
    brackets: Vec<Halving>,
}

impl Hyperband {
    pub fn new(min_iter: usize, max_iter: usize, eta: usize) -> Result<Hyperband, PrunerError> {
        let first = Halving::new(min_iter, max_iter, eta)?;
        let brackets = std::iter::successors(Some(first.min_iter), |r| r.checked_mul(eta))
            .take_while(|&r| r <= max_iter)
            .map(|r| Halving { min_iter: r, max_iter, eta, bootstrap: 0, best_so_far: false })
            .collect();
        Ok(Hyperband { brackets })
    }

    /// The first `count` trials to reach each rung of a bracket stop there (see [`Halving`]).
    pub fn with_bootstrap(mut self, count: usize) -> Hyperband {
        self.brackets.iter_mut().for_each(|b| b.bootstrap = count);
        self
    }

    /// Trials compete with their best value up to a rung, not their value at it.
    pub fn with_best_so_far(mut self, on: bool) -> Hyperband {
        self.brackets.iter_mut().for_each(|b| b.best_so_far = on);
        self
    }

    pub fn brackets(&self) -> &[Halving] {
        &self.brackets
    }

    /// The bracket of trial `number`.
    pub fn bracket_of(&self, number: usize) -> usize {
        number % self.brackets.len()
    }
}

impl Pruner for Hyperband {
    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        let bracket = self.bracket_of(number);
        let same_bracket = judged(history).filter(|t| self.bracket_of(t.number) == bracket);
        self.brackets[bracket].decide(history, number, epoch, same_bracket)
    }

    fn reads(&self, epoch: usize) -> Reads {
        // The bracket is the judged trial's, which the number alone says; any bracket's rung may
        // be its.
        self.brackets.iter().map(|b| b.reads(epoch)).max_by_key(|r| *r as u8).unwrap_or(Reads::Own)
    }
}

/// Where a sweep has several objectives ([`History::fixed`]), where a trial stands among others
/// at an epoch: each judged by its value of the metric there together with its values of the
/// other objectives (those known before training, and those recorded every epoch as of that
/// epoch), ordered by Pareto front, within a front by crowding
/// distance (the more isolated first: it spreads the front), then by number.
struct Standing {
    /// The trial's place in that order (0 first) among `n` trials, itself included.
    position: usize,
    n: usize,
    /// Its front (0: no other dominates it).
    rank: usize,
    /// The trials that dominate it, by number.
    dominated_by: Vec<usize>,
}

impl Standing {
    /// None where the history judges one objective, or the trial has no values of the fixed
    /// ones. `others` (number, value) without fixed values are left out.
    fn of(history: &History, number: usize, value: f64, others: &[(usize, f64)]) -> Option<Standing> {
        if history.fixed.is_empty() {
            return None;
        }
        let own = history.fixed_values.get(&number)?;
        let mut numbers = vec![number];
        let mut points = vec![std::iter::once(value).chain(own.iter().copied()).collect::<Vec<f64>>()];
        for &(other, v) in others {
            if let Some(fixed) = history.fixed_values.get(&other) {
                numbers.push(other);
                points.push(std::iter::once(v).chain(fixed.iter().copied()).collect());
            }
        }
        let goals: Vec<Goal> = std::iter::once(history.goal).chain(history.fixed.iter().map(|(_, g)| *g)).collect();
        let mut order: Vec<usize> = Vec::with_capacity(points.len());
        let mut rank = 0;
        for (r, front) in pareto::fronts(&points, &goals).into_iter().enumerate() {
            let distance = pareto::crowding(&front, &points, &goals);
            let mut members: Vec<(usize, f64)> = front.into_iter().zip(distance).collect();
            members.sort_by(|a, b| b.1.total_cmp(&a.1).then(numbers[a.0].cmp(&numbers[b.0])));
            if members.iter().any(|&(i, _)| i == 0) {
                rank = r;
            }
            order.extend(members.into_iter().map(|(i, _)| i));
        }
        let position = order.iter().position(|&i| i == 0).expect("every point is in a front");
        let mut dominated_by: Vec<usize> =
            (1..points.len()).filter(|&i| pareto::dominates(&points[i], &points[0], &goals)).map(|i| numbers[i]).collect();
        dominated_by.sort_unstable();
        Some(Standing { position, n: points.len(), rank, dominated_by })
    }

    /// ", params 1.2e6: Pareto front 2, 5th of the 9 trials {among} by front and crowding;
    /// dominated by trials 3, 4 and 7" (its fixed values named as the history names them).
    fn describe(&self, history: &History, number: usize, among: &str) -> String {
        let fixed = history.fixed_values.get(&number).map(Vec::as_slice).unwrap_or_default();
        let values: Vec<String> = history.fixed.iter().zip(fixed).map(|((name, _), v)| format!("{name} {}", fmt(*v))).collect();
        const NAMED: usize = 8;
        let mut by: Vec<String> = self.dominated_by.iter().take(NAMED).map(usize::to_string).collect();
        if self.dominated_by.len() > NAMED {
            by.push(format!("{} more", self.dominated_by.len() - NAMED));
        }
        let dominated =
            if by.is_empty() { String::new() } else { format!("; dominated by trial{} {}", plural(self.dominated_by.len()), by.join(", ")) };
        format!(
            ", {}: Pareto front {}, {} of the {} trials {among} by front and crowding{dominated}",
            values.join(", "),
            self.rank + 1,
            self.position + 1,
            self.n
        )
    }
}

/// The trials whose values count: every one that has not failed.
fn judged(history: &History) -> impl Iterator<Item = &TrialRecord> {
    history.trials.iter().filter(|t| t.state != SearchState::Failed)
}

/// A NaN is pruned at once: it is no value to compare, and training rarely recovers from one.
fn not_a_number(history: &History, value: f64, epoch: usize) -> Option<String> {
    value.is_nan().then(|| format!("{} is not a number at epoch {epoch}", history.metric))
}

/// A value as people read it in a reason: four decimals at most, trailing zeros dropped.
fn fmt(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial with values at epochs 1, 2, ...
    fn trial(number: usize, state: SearchState, values: &[f64]) -> TrialRecord {
        TrialRecord {
            number,
            point: Default::default(),
            state,
            values: values.iter().enumerate().map(|(i, v)| (i + 1, *v)).collect(),
            scores: Vec::new(),
            violation: 0.0,
        }
    }

    fn history(goal: Goal, trials: Vec<TrialRecord>) -> History {
        History::new(if goal == Goal::Maximize { "val_iou" } else { "val_loss" }, goal, trials)
    }

    fn prune(reason: &str) -> Decision {
        Decision::Prune { reason: reason.into() }
    }

    use SearchState::{Completed, Failed, Pruned, Running};

    #[test]
    fn median_compares_the_best_value_so_far_with_the_completed_trials_at_the_same_epoch() {
        let h = history(
            Goal::Maximize,
            vec![
                trial(1, Completed, &[0.5, 0.70, 0.80]),
                trial(2, Completed, &[0.5, 0.78, 0.85]),
                trial(3, Completed, &[0.5, 0.80, 0.90]),
                trial(4, Pruned, &[0.5, 0.99]),
                trial(5, Failed, &[0.5, 0.99]),
                trial(6, Running, &[0.5, 0.71]),
                trial(7, Running, &[0.79, 0.6]),
                trial(8, Running, &[0.5, 0.99]),
            ],
        );
        let median = Percentile::median(0, 3);
        // Peers at epoch 2 are the completed trials only (0.70, 0.78, 0.80: median 0.78); the
        // pruned, failed and running trials' 0.99 do not count.
        assert_eq!(median.decide(&h, 6, 2), prune("best val_iou so far 0.71 (epochs 1-2) is below the median 0.78 of 3 completed trials at epoch 2"));
        // Trial 7's value at epoch 2 is 0.6, but its best so far (0.79, at epoch 1) clears the bar.
        assert_eq!(median.decide(&h, 7, 2), Decision::Continue);
        assert_eq!(median.decide(&h, 6, 1), Decision::Continue, "equal to the median is not below it");
        assert_eq!(median.decide(&h, 6, 3), Decision::Continue, "an epoch the trial has not reached");
    }

    #[test]
    fn percentile_warm_up_startup_min_trials_and_interval() {
        let done = |n, vs: &[f64]| trial(n, Completed, vs);
        let h = history(
            Goal::Minimize,
            vec![
                done(1, &[0.9, 0.5, 0.4, 0.3, 0.2]),
                done(2, &[0.9, 0.6, 0.5, 0.4, 0.3]),
                done(3, &[0.9, 0.7, 0.6, 0.5]),
                done(4, &[0.9, 0.8]),
                trial(5, Running, &[0.95, 0.62, 0.55, 0.45, 0.35]),
            ],
        );
        // The 25th percentile of the losses 0.5, 0.6, 0.7, 0.8 at epoch 2 (numpy's linear rule):
        // 0.5 + 0.75 * 0.1 = 0.575; the trial's best so far 0.62 is above it.
        let p25 = Percentile { percentile: 25.0, warmup_epochs: 1, startup_trials: 4, min_trials: 1, interval: 1 };
        assert_eq!(
            p25.decide(&h, 5, 2),
            prune("best val_loss so far 0.62 (epochs 1-2) is above the 25 percentile 0.575 of 4 completed trials at epoch 2")
        );
        assert_eq!(p25.decide(&h, 5, 1), Decision::Continue, "epoch 1 is warm-up");
        assert_eq!(Percentile { startup_trials: 5, ..p25.clone() }.decide(&h, 5, 2), Decision::Continue, "four completed trials of five");
        // At epoch 5 only trials 1 and 2 recorded a value: fewer than min_trials = 3.
        assert_eq!(Percentile { min_trials: 3, ..p25.clone() }.decide(&h, 5, 5), Decision::Continue);
        assert!(matches!(Percentile { min_trials: 2, ..p25.clone() }.decide(&h, 5, 5), Decision::Prune { .. }));
        // Interval 2 after a warm-up of 1: epochs 2 and 4 are judged, 3 and 5 are not.
        let every_other = Percentile { interval: 2, ..p25 };
        assert!(matches!(every_other.decide(&h, 5, 2), Decision::Prune { .. }));
        assert_eq!(every_other.decide(&h, 5, 3), Decision::Continue);
        assert!(matches!(every_other.decide(&h, 5, 4), Decision::Prune { .. }));
        assert_eq!(every_other.decide(&h, 5, 5), Decision::Continue);
    }

    #[test]
    fn median_waits_for_its_startup_trials_and_prunes_a_trial_with_no_number() {
        let h = history(
            Goal::Minimize,
            vec![trial(1, Completed, &[0.3]), trial(2, Completed, &[0.5]), trial(3, Completed, &[0.4]), trial(4, Running, &[f64::NAN])],
        );
        assert_eq!(Percentile::median(0, 1).decide(&h, 4, 1), prune("val_loss is not a number at any epoch up to 1"));
        let h = history(Goal::Maximize, vec![trial(1, Completed, &[0.9, 0.9]), trial(2, Completed, &[0.8, 0.8]), trial(3, Running, &[0.1, 0.1])]);
        assert_eq!(Percentile::median(0, 3).decide(&h, 3, 2), Decision::Continue, "two completed trials of three");
        assert_eq!(
            Percentile::median(1, 2).decide(&h, 3, 2),
            prune("best val_iou so far 0.1 (epochs 1-2) is below the median 0.85 of 2 completed trials at epoch 2")
        );
    }

    #[test]
    fn patient_stops_a_trial_that_has_not_improved_for_its_patience() {
        let h = history(Goal::Maximize, vec![trial(1, Running, &[0.5, 0.7, 0.69, 0.71, 0.705])]);
        let patient = Patient { patience: 2, min_delta: 0.0 };
        // Epoch 3: 3 values, not more than patience + 1.
        assert_eq!(patient.decide(&h, 1, 3), Decision::Continue);
        // Epoch 4: before = [0.5], last three [0.7, 0.69, 0.71]: improved.
        assert_eq!(patient.decide(&h, 1, 4), Decision::Continue);
        // Epoch 5: before = [0.5, 0.7] (best 0.7), last three best 0.71 >= 0.7: improved.
        assert_eq!(patient.decide(&h, 1, 5), Decision::Continue);
        let strict = Patient { patience: 2, min_delta: 0.02 };
        assert_eq!(
            strict.decide(&h, 1, 5),
            prune("val_iou has not improved by min_delta = 0.02 on its best 0.7 (up to epoch 2) in the 3 epochs since (patience = 2)")
        );
        let h = history(Goal::Minimize, vec![trial(1, Running, &[1.0, 0.5, 0.6, 0.55])]);
        assert_eq!(
            Patient { patience: 1, min_delta: 0.0 }.decide(&h, 1, 4),
            prune("val_loss has not improved on its best 0.5 (up to epoch 2) in the 2 epochs since (patience = 1)")
        );
        assert_eq!(Patient { patience: 1, min_delta: 0.0 }.decide(&h, 1, 3), Decision::Continue, "0.5 at epoch 2 improved on 1.0");
    }

    #[test]
    fn threshold_stops_a_value_out_of_bounds_at_once() {
        let h = history(Goal::Minimize, vec![trial(1, Running, &[0.9, 3.5]), trial(2, Running, &[0.01]), trial(3, Running, &[f64::NAN])]);
        let t = Threshold { lower: Some(0.05), upper: Some(2.0), warmup_epochs: 0 };
        assert_eq!(t.decide(&h, 1, 1), Decision::Continue);
        assert_eq!(t.decide(&h, 1, 2), prune("val_loss 3.5 at epoch 2 is above upper = 2"));
        assert_eq!(t.decide(&h, 2, 1), prune("val_loss 0.01 at epoch 1 is below lower = 0.05"));
        assert_eq!(t.decide(&h, 3, 1), prune("val_loss is not a number at epoch 1"));
        assert_eq!(Threshold { lower: None, upper: Some(2.0), warmup_epochs: 2 }.decide(&h, 1, 2), Decision::Continue, "warm-up");
    }

    #[test]
    fn asha_can_judge_by_the_best_value_up_to_the_rung() {
        // Rung 3: trial 2 dipped at epoch 3 but was best at epoch 2.
        let h = history(Goal::Maximize, vec![trial(1, Completed, &[0.5, 0.6, 0.7]), trial(2, Running, &[0.5, 0.8, 0.65])]);
        let at_rung = Asha::new(3, 27, 3).unwrap();
        assert_eq!(at_rung.decide(&h, 2, 3), prune("val_iou 0.65 at epoch 3 ranks 2 of the 2 trials at this rung; only the best 1 (1/3) continue"));
        let best = Asha::new(3, 27, 3).unwrap().with_best_so_far(true);
        assert_eq!(best.decide(&h, 2, 3), Decision::Continue);
        assert_eq!(
            best.decide(&h, 1, 3),
            prune("best val_iou 0.7 up to epoch 3 ranks 2 of the 2 trials at this rung; only the best 1 (1/3) continue")
        );
    }

    #[test]
    fn halving_settings_are_checked_with_messages_in_the_files_words() {
        assert_eq!(Asha::new(1, 27, 1).unwrap_err().to_string(), "eta = 1 must be at least 2 (each rung keeps the top 1/eta)");
        assert_eq!(Asha::new(0, 27, 3).unwrap_err().to_string(), "min_iter = 0 must be at least 1 (epochs count from 1)");
        assert_eq!(Hyperband::new(9, 3, 3).unwrap_err().to_string(), "min_iter = 9 must not exceed max_iter = 3");
    }

    #[test]
    fn asha_rungs_for_eta_three_sit_at_one_three_and_nine_epochs_of_twenty_seven() {
        assert_eq!(Asha::new(1, 27, 3).unwrap().halving.rungs(), [1, 3, 9]);
        assert_eq!(Asha::new(2, 20, 3).unwrap().halving.rungs(), [2, 6, 18]);
        assert_eq!(Asha::new(5, 5, 2).unwrap().halving.rungs(), Vec::<usize>::new());
    }

    #[test]
    fn asha_promotes_the_top_third_of_what_has_arrived_at_a_rung_without_waiting() {
        let asha = Asha::new(1, 27, 3).unwrap();
        // Trials reach rung 1 one after another with these values.
        let arrivals = [0.50, 0.40, 0.60, 0.55, 0.70, 0.45, 0.65];
        let mut trials = Vec::new();
        let mut decisions = Vec::new();
        for (i, v) in arrivals.iter().enumerate() {
            trials.push(trial(i + 1, Running, &[*v]));
            let h = history(Goal::Maximize, trials.clone());
            decisions.push(asha.decide(&h, i + 1, 1) == Decision::Continue);
        }
        // n = 1: keep 1, first arrival goes on. n = 2: keep 1, 0.40 < 0.50. n = 3: keep 1, 0.60 is
        // best. n = 4: keep 1, 0.55 < 0.60. n = 5: keep 1, 0.70 best. n = 6: keep 2, 0.45 has five
        // better. n = 7: keep 2, 0.65 has one better (0.70).
        assert_eq!(decisions, [true, false, true, false, true, false, true]);
        let h = history(Goal::Maximize, trials);
        assert_eq!(asha.decide(&h, 6, 1), prune("val_iou 0.45 at epoch 1 ranks 6 of the 7 trials at this rung; only the best 2 (1/3) continue"));
        assert_eq!(asha.decide(&h, 6, 2), Decision::Continue, "epoch 2 is no rung");
    }

    #[test]
    fn asha_with_a_bootstrap_stops_the_first_arrivals_at_each_rung() {
        let asha = Asha::new(1, 27, 3).unwrap().with_bootstrap(2);
        let arrivals = [0.50, 0.40, 0.60, 0.55, 0.70, 0.45, 0.65];
        let mut trials = Vec::new();
        let mut decisions = Vec::new();
        for (i, v) in arrivals.iter().enumerate() {
            trials.push(trial(i + 1, Running, &[*v, 0.9, 0.9]));
            let h = history(Goal::Maximize, trials.clone());
            decisions.push(asha.decide(&h, i + 1, 1) == Decision::Continue);
        }
        // n = 1 and 2 are the bootstrap; from n = 3 on, the rule of the test above.
        assert_eq!(decisions, [false, false, true, false, true, false, true]);
        let h = history(Goal::Maximize, trials[..1].to_vec());
        assert_eq!(
            asha.decide(&h, 1, 1),
            prune(
                "val_iou 0.5 at epoch 1: trial 1 to reach this rung, and bootstrap_count = 2 stops the first 2 (a rung promotes once more values compare)"
            )
        );
        // Rung 3 counts its own arrivals: with all seven there, trial 3 is the third to compare.
        let h = history(Goal::Maximize, trials);
        assert_eq!(asha.decide(&h, 3, 3), Decision::Continue, "0.9 ties the best: none strictly better");
        let hb = Hyperband::new(1, 27, 3).unwrap().with_bootstrap(1);
        let h = history(Goal::Maximize, vec![trial(0, Running, &[0.5]), trial(1, Running, &[0.9])]);
        // Trials 0 and 1 are in brackets 0 and 1: each is the first of its own bracket at rung 1,
        // but bracket 1's first rung is epoch 3.
        assert!(matches!(hb.decide(&h, 0, 1), Decision::Prune { .. }));
        assert_eq!(hb.decide(&h, 1, 1), Decision::Continue, "epoch 1 is no rung of bracket 1");
    }

    #[test]
    fn asha_compares_only_values_recorded_at_the_same_rung_and_skips_failed_trials() {
        let asha = Asha::new(1, 27, 3).unwrap();
        let h = history(
            Goal::Minimize,
            vec![
                trial(1, Completed, &[0.9, 0.8, 0.3]),
                trial(2, Pruned, &[0.9, 0.8, 0.5]),
                trial(3, Failed, &[0.9, 0.8, 0.1]),
                trial(4, Running, &[0.9, 0.8, 0.4]),
            ],
        );
        // At rung 3 (loss): 0.3, 0.5 and this trial's 0.4; n = 3, keep 1, one better: pruned.
        assert_eq!(asha.decide(&h, 4, 3), prune("val_loss 0.4 at epoch 3 ranks 2 of the 3 trials at this rung; only the best 1 (1/3) continue"));
        assert_eq!(asha.decide(&h, 1, 3), Decision::Continue);
    }

    #[test]
    fn hyperband_brackets_start_at_min_iter_times_powers_of_eta() {
        let hb = Hyperband::new(1, 27, 3).unwrap();
        let rungs: Vec<Vec<usize>> = hb.brackets().iter().map(Halving::rungs).collect();
        assert_eq!(rungs, [vec![1, 3, 9], vec![3, 9], vec![9], vec![]]);
        assert_eq!((0..9).map(|n| hb.bracket_of(n)).collect::<Vec<_>>(), [0, 1, 2, 3, 0, 1, 2, 3, 0]);
        let hb = Hyperband::new(2, 10, 2).unwrap();
        assert_eq!(hb.brackets().iter().map(Halving::rungs).collect::<Vec<_>>(), [vec![2, 4, 8], vec![4, 8], vec![8]]);
    }

    #[test]
    fn hyperband_trials_compete_only_within_their_bracket() {
        let hb = Hyperband::new(1, 27, 3).unwrap();
        // Trials 0 and 4 are in bracket 0 (rungs 1, 3, 9); 1 and 5 in bracket 1 (rungs 3, 9).
        let h = history(
            Goal::Maximize,
            vec![
                trial(0, Completed, &[0.9, 0.9, 0.9]),
                trial(1, Completed, &[0.1, 0.1, 0.1]),
                trial(4, Running, &[0.5]),
                trial(5, Running, &[0.5, 0.5, 0.5]),
            ],
        );
        assert_eq!(hb.decide(&h, 4, 1), prune("val_iou 0.5 at epoch 1 ranks 2 of the 2 trials at this rung; only the best 1 (1/3) continue"));
        assert_eq!(hb.decide(&h, 5, 1), Decision::Continue, "epoch 1 is no rung of bracket 1");
        assert_eq!(hb.decide(&h, 5, 3), Decision::Continue, "0.5 beats trial 1's 0.1; trial 0 is in another bracket");
    }

    #[test]
    fn reasons_show_values_as_people_write_them() {
        assert_eq!(fmt(0.71), "0.71");
        assert_eq!(fmt(0.783333), "0.7833");
        assert_eq!(fmt(2.0), "2");
        assert_eq!(fmt(0.00012), "1.20e-4");
    }

    /// Trials judged by IoU (up) together with their parameter count (down), known up front.
    fn with_params(h: History, params: &[(usize, f64)]) -> History {
        h.with_fixed(vec![("params".into(), Goal::Minimize)], params.iter().map(|&(n, p)| (n, vec![p])).collect())
    }

    #[test]
    fn with_several_objectives_asha_keeps_a_trial_on_the_pareto_front_that_one_objective_would_stop() {
        let asha = Asha::new(1, 9, 3).unwrap();
        // At rung 1: IoU 0.8 (1M params), 0.7 (1M), 0.6 (1M), 0.5 (1M), and trial 5 with the
        // worst IoU, 0.4, but the smallest model (0.1M): nothing beats it on both.
        let trials = vec![
            trial(1, Completed, &[0.8, 0.9]),
            trial(2, Completed, &[0.7, 0.9]),
            trial(3, Pruned, &[0.6]),
            trial(4, Pruned, &[0.5]),
            trial(5, Running, &[0.4]),
            trial(6, Running, &[0.55]),
        ];
        let params = [(1, 1e6), (2, 1e6), (3, 1e6), (4, 1e6), (5, 1e5), (6, 1e6)];
        let one = history(Goal::Maximize, trials.clone());
        assert!(matches!(asha.decide(&one, 5, 1), Decision::Prune { .. }), "by IoU alone it ranks last");
        let several = with_params(history(Goal::Maximize, trials), &params);
        // Front 1: trials 1 (best IoU) and 5 (smallest), both extremes (infinite crowding): by
        // number, 1 then 5; n = 6 keeps 2: trial 5 continues.
        assert_eq!(asha.decide(&several, 5, 1), Decision::Continue);
        assert_eq!(asha.decide(&several, 1, 1), Decision::Continue);
        // Trial 6 (0.55, 1M) is dominated by 1, 2 and 3: front 4, fifth of six.
        assert_eq!(
            asha.decide(&several, 6, 1),
            prune(
                "val_iou 0.55 at epoch 1, params 1000000: Pareto front 4, 5 of the 6 trials at this rung by front and crowding; dominated by trials 1, 2, 3; only the best 2 (1/3) continue"
            )
        );
        // A trial without its parameter count is judged by the metric alone.
        let partial = with_params(history(Goal::Maximize, vec![trial(1, Completed, &[0.8]), trial(2, Running, &[0.4])]), &[(1, 1e6)]);
        assert!(matches!(asha.decide(&partial, 2, 1), Decision::Prune { reason } if !reason.contains("Pareto")));
    }

    #[test]
    fn with_several_objectives_the_median_rule_keeps_the_first_half_by_front_and_crowding() {
        let median = Percentile::median(0, 2);
        // Completed at epoch 1: (0.9, 4M), (0.8, 2M), (0.7, 1M), (0.6, 3M); judged: 0.65 with 0.5M.
        let trials = vec![
            trial(1, Completed, &[0.9]),
            trial(2, Completed, &[0.8]),
            trial(3, Completed, &[0.7]),
            trial(4, Completed, &[0.6]),
            trial(5, Running, &[0.65]),
            trial(6, Running, &[0.5]),
        ];
        let params = [(1, 4e6), (2, 2e6), (3, 1e6), (4, 3e6), (5, 5e5), (6, 5e6)];
        let h = with_params(history(Goal::Maximize, trials), &params);
        // Trial 5 is on the front (the smallest); below the median by IoU alone.
        assert!(matches!(median.decide(&history(Goal::Maximize, h.trials.clone()), 5, 1), Decision::Prune { .. }));
        assert_eq!(median.decide(&h, 5, 1), Decision::Continue);
        // Trial 6 (0.5, 5M) is dominated by every completed trial.
        assert_eq!(
            median.decide(&h, 6, 1),
            prune(
                "best val_iou so far 0.5 (epochs 1-1), params 5000000: Pareto front 3, 5 of the 5 trials among the completed trials at epoch 1 by front and crowding; dominated by trials 1, 2, 3, 4; the median keeps the first 3"
            )
        );
    }
}
