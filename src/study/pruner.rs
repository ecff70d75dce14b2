//! Pruners: whether a trial that has just finished an epoch should go on. A pruner is a pure
//! function of the [`History`] (which already holds the epoch just recorded) and returns a
//! [`Decision`]; the worker acts on it. The reason is a sentence for people, recorded with the
//! pruned trial.
//!
//! Three rules: the median rule, asynchronous successive halving (ASHA) and Hyperband (several
//! ASHA brackets, the W&B `hyperband` keys `min_iter`, `max_iter`, `eta`). All compare values
//! with what has arrived and never wait for other trials, so that workers never block on each
//! other. Failed trials take no part: their values do not judge their point.

use crate::config::Goal;
use crate::study::history::{History, TrialRecord, TrialState};

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

/// Prunes a trial whose value is worse than the median of the other trials' values at the same
/// epoch (Optuna's `MedianPruner`).
#[derive(Debug, Clone, PartialEq)]
pub struct Median {
    /// Epochs `1..=warmup_epochs` are never judged: early values say little.
    pub warmup_epochs: usize,
    /// Nothing is pruned until this many trials have completed, so that the median means
    /// something.
    pub startup_trials: usize,
}

impl Default for Median {
    /// Optuna's defaults: five completed trials, no warm-up.
    fn default() -> Self {
        Median { warmup_epochs: 0, startup_trials: 5 }
    }
}

impl Pruner for Median {
    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        let Some(value) = history.trial(number).and_then(|t| t.value_at(epoch)) else { return Decision::Continue };
        if epoch <= self.warmup_epochs {
            return Decision::Continue;
        }
        if let Some(reason) = not_a_number(history, value, epoch) {
            return Decision::Prune { reason };
        }
        let completed = history.trials.iter().filter(|t| t.state == TrialState::Completed).count();
        if completed < self.startup_trials {
            return Decision::Continue;
        }
        let others: Vec<f64> = judged(history).filter(|t| t.number != number).filter_map(|t| t.value_at(epoch)).filter(|v| !v.is_nan()).collect();
        let n = others.len();
        let Some(median) = median(others) else { return Decision::Continue };
        if history.compare(value, median).is_le() {
            return Decision::Continue;
        }
        let side = match history.goal {
            Goal::Maximize => "below",
            Goal::Minimize => "above",
        };
        Decision::Prune {
            reason: format!("{} {} at epoch {epoch} is {side} the median {} of {n} trial{}", history.metric, fmt(value), fmt(median), plural(n)),
        }
    }
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
        Ok(Halving { min_iter, max_iter, eta, bootstrap: 0 })
    }

    /// The epochs at which trials are compared. `max_iter` itself is no rung: a trial that
    /// reaches it has finished anyway.
    pub fn rungs(&self) -> Vec<usize> {
        std::iter::successors(Some(self.min_iter), |r| r.checked_mul(self.eta)).take_while(|&r| r < self.max_iter).collect()
    }

    /// The ASHA decision at a rung among `competitors` (the trials that may be compared with
    /// this one, itself included): continue if at most `max(1, n / eta) - 1` of the `n` values
    /// recorded at the rung are strictly better. Without a bootstrap the first trial to reach a
    /// rung always goes on, which is the price of never waiting for stragglers; with one, the
    /// first `bootstrap` trials stop there instead (`n <= bootstrap`).
    fn decide<'a>(&self, history: &History, number: usize, epoch: usize, competitors: impl Iterator<Item = &'a TrialRecord>) -> Decision {
        let Some(value) = history.trial(number).and_then(|t| t.value_at(epoch)) else { return Decision::Continue };
        if !self.rungs().contains(&epoch) {
            return Decision::Continue;
        }
        if let Some(reason) = not_a_number(history, value, epoch) {
            return Decision::Prune { reason };
        }
        let others: Vec<f64> = competitors.filter(|t| t.number != number).filter_map(|t| t.value_at(epoch)).collect();
        let n = others.len() + 1;
        if n <= self.bootstrap {
            return Decision::Prune {
                reason: format!(
                    "{} {} at epoch {epoch}: trial {n} to reach this rung, and bootstrap_count = {} stops the first {} (a rung promotes once more values compare)",
                    history.metric,
                    fmt(value),
                    self.bootstrap,
                    self.bootstrap
                ),
            };
        }
        let keep = (n / self.eta).max(1);
        let better = others.iter().filter(|&&o| history.compare(o, value).is_lt()).count();
        if better < keep {
            return Decision::Continue;
        }
        Decision::Prune {
            reason: format!(
                "{} {} at epoch {epoch} ranks {} of the {n} trials at this rung; only the best {keep} (1/{}) continue",
                history.metric,
                fmt(value),
                better + 1,
                self.eta
            ),
        }
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
}

impl Pruner for Asha {
    fn decide(&self, history: &History, number: usize, epoch: usize) -> Decision {
        self.halving.decide(history, number, epoch, judged(history))
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
            .map(|r| Halving { min_iter: r, max_iter, eta, bootstrap: 0 })
            .collect();
        Ok(Hyperband { brackets })
    }

    /// The first `count` trials to reach each rung of a bracket stop there (see [`Halving`]).
    pub fn with_bootstrap(mut self, count: usize) -> Hyperband {
        self.brackets.iter_mut().for_each(|b| b.bootstrap = count);
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
}

/// The trials whose values count: every one that has not failed.
fn judged(history: &History) -> impl Iterator<Item = &TrialRecord> {
    history.trials.iter().filter(|t| t.state != TrialState::Failed)
}

/// A NaN is pruned at once: it is no value to compare, and training rarely recovers from one.
fn not_a_number(history: &History, value: f64, epoch: usize) -> Option<String> {
    value.is_nan().then(|| format!("{} is not a number at epoch {epoch}", history.metric))
}

/// The median of numbers (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
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
    use crate::study::history::Point;

    /// A trial with values at epochs 1, 2, ...
    fn trial(number: usize, state: TrialState, values: &[f64]) -> TrialRecord {
        TrialRecord { number, point: Point::new(), state, values: values.iter().enumerate().map(|(i, v)| (i + 1, *v)).collect() }
    }

    fn history(goal: Goal, trials: Vec<TrialRecord>) -> History {
        History::new(if goal == Goal::Maximize { "val_iou" } else { "val_loss" }, goal, trials)
    }

    fn prune(reason: &str) -> Decision {
        Decision::Prune { reason: reason.into() }
    }

    use TrialState::{Completed, Failed, Pruned, Running};

    #[test]
    fn median_prunes_a_trial_below_the_median_of_the_others_at_the_same_epoch() {
        let h = history(
            Goal::Maximize,
            vec![
                trial(1, Completed, &[0.5, 0.70, 0.80]),
                trial(2, Completed, &[0.5, 0.78, 0.85]),
                trial(3, Completed, &[0.5, 0.80, 0.90]),
                trial(4, Pruned, &[0.5, 0.60]),
                trial(5, Failed, &[0.5, 0.99]),
                trial(6, Running, &[0.5, 0.71]),
                trial(7, Running, &[0.5, 0.79]),
            ],
        );
        let median = Median { warmup_epochs: 0, startup_trials: 3 };
        // Others at epoch 2 (failed trial 5 left out): 0.70, 0.78, 0.80, 0.60, 0.79 -> median 0.78.
        assert_eq!(median.decide(&h, 6, 2), prune("val_iou 0.71 at epoch 2 is below the median 0.78 of 5 trials"));
        assert_eq!(median.decide(&h, 7, 2), Decision::Continue);
        assert_eq!(median.decide(&h, 6, 1), Decision::Continue, "equal to the median is not below it");
        assert_eq!(median.decide(&h, 6, 3), Decision::Continue, "an epoch the trial has not reached");
    }

    #[test]
    fn median_waits_for_its_warm_up_epochs_and_startup_trials() {
        let h = history(Goal::Maximize, vec![trial(1, Completed, &[0.9, 0.9]), trial(2, Completed, &[0.8, 0.8]), trial(3, Running, &[0.1, 0.1])]);
        assert_eq!(Median { warmup_epochs: 1, startup_trials: 2 }.decide(&h, 3, 1), Decision::Continue, "epoch 1 is warm-up");
        assert_eq!(Median { warmup_epochs: 0, startup_trials: 3 }.decide(&h, 3, 2), Decision::Continue, "two completed trials of three");
        // Two others at epoch 2: the median is the mean of 0.9 and 0.8.
        assert_eq!(
            Median { warmup_epochs: 1, startup_trials: 2 }.decide(&h, 3, 2),
            prune("val_iou 0.1 at epoch 2 is below the median 0.85 of 2 trials")
        );
    }

    #[test]
    fn median_follows_the_goals_direction_and_prunes_a_nan() {
        let h = history(
            Goal::Minimize,
            vec![
                trial(1, Completed, &[0.3]),
                trial(2, Completed, &[0.5]),
                trial(3, Completed, &[0.4]),
                trial(4, Running, &[0.45]),
                trial(5, Running, &[f64::NAN]),
            ],
        );
        let median = Median { warmup_epochs: 0, startup_trials: 1 };
        // Others for trial 4: 0.3, 0.5, 0.4 (the NaN is no value) -> 0.4; a loss of 0.45 is worse.
        assert_eq!(median.decide(&h, 4, 1), prune("val_loss 0.45 at epoch 1 is above the median 0.4 of 3 trials"));
        assert_eq!(median.decide(&h, 3, 1), Decision::Continue);
        assert_eq!(median.decide(&h, 5, 1), prune("val_loss is not a number at epoch 1"));
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
}
