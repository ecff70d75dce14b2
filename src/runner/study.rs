//! A sweep's study as the workers run it: the sweep file read back from the tracker, its sampler
//! asked for a new trial when the queue is empty (`method = "bayes"`), and its pruner consulted
//! after every epoch (`[early_terminate]`).
//!
//! Everything is derived from the tracker, never from a worker's memory: the sampler and the
//! pruner see the history the tracker holds at the moment they are asked, and asking happens
//! inside one store transaction under the sweep's lock. So any number of workers on any machines
//! cooperate without a coordinator, and a killed sweep resumes with the same study.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{Extremes, HistoryView, NewTrial, PeerValues, Store, TrialHistory, TrialStatus, warm};
use crate::study::history::{History, Point, SearchState, TrialRecord};
use crate::study::pruner::{Decision, Pruner, Reads};
use crate::study::sampler::{Sampler, matches_fixed};
use crate::study::spec::{self, SweepSpec};

/// The tag that marks a trial put first (`sweep enqueue`, `[[enqueue]]`); workers claim such
/// trials before the sweep's other queued ones.
pub const ENQUEUED_TAG: &str = "enqueued";

/// The tag of a trial whose point TPE drew from a history that `[bayes] warm_start` sweeps lent
/// to; its value names them.
pub const WARM_START_TAG: &str = "warm_start";

/// What [`Study::enqueue`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// A new trial, this id.
    Added(String),
    /// The sweep already has a trial with every named value: this one.
    Exists(String),
    /// The sampler has no point with these values that the sweep does not have.
    Exhausted,
    /// The drawn configuration is one the settings refuse: why.
    Refused(String),
}

/// The sampler and pruner of one sweep.
pub struct Study {
    spec: SweepSpec,
    sampler: Box<dyn Sampler + Send>,
    pruner: Option<Box<dyn Pruner + Send>>,
    /// Set once this process has said what `warm_start` learns from.
    warm_noted: std::sync::Once,
}

impl Study {
    /// The study of `sweep`, from the sweep file the tracker keeps. None when the tracker has no
    /// such sweep, or when its recorded file does not parse with this build (a sweep registered
    /// through the library, or by another version): its queued trials are then trained as they
    /// are, without asking for more or pruning, and a warning says so.
    pub fn load(store: &dyn Store, sweep: &str) -> crate::Result<Option<Study>> {
        let Some(info) = store.sweeps()?.into_iter().find(|s| s.name == sweep) else { return Ok(None) };
        match spec::stored(&info) {
            Ok(spec) => Ok(Some(Study::of(spec))),
            Err(e) => {
                let first = e.problems.first().map(ToString::to_string).unwrap_or_default();
                crate::errln!(
                    "warning: sweep {sweep}: its recorded sweep file does not parse ({first}); training its queued trials without sampling or pruning"
                );
                Ok(None)
            }
        }
    }

    /// The study of a parsed sweep file.
    pub fn of(spec: SweepSpec) -> Study {
        Study { sampler: spec.sampler(), pruner: spec.early_terminate.as_ref().map(|e| e.pruner()), spec, warm_noted: std::sync::Once::new() }
    }

    pub fn spec(&self) -> &SweepSpec {
        &self.spec
    }

    /// Asks the sampler for the next trial and enqueues it, under the sweep's lock, unless the
    /// sweep already has `run_cap` trials. Returns the new trial's id; None when the cap is
    /// reached or the sampler has nothing new, and then, below the cap, why the sweep stops
    /// asking (said by the worker, so that a sweep that ends short of its cap says why).
    pub fn ask(&self, store: &mut dyn Store) -> crate::Result<Option<String>> {
        let spec = &self.spec;
        // Set whenever the sampler is asked (below the cap): why its answer may add no trial.
        let mut why: Option<String> = None;
        let warm = self.warm_trials(store)?;
        let mut sample = |rows: Vec<TrialHistory>| {
            let mut history = history(spec, rows);
            history.trials.extend(warm.iter().cloned());
            let Some(point) = self.sampler.ask(&history) else {
                why = Some("the sampler has no new point left to propose (the space holds fewer configs than run_cap)".into());
                return None;
            };
            // Points come from validated domains; a combination the config refuses is skipped.
            let trial = match spec.trial_of(&point) {
                Ok(trial) => trial,
                Err(problems) => {
                    let said: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
                    why = Some(format!("the sampler proposed {}, which the settings refuse ({})", serde_json::json!(point), said.join("; ")));
                    return None;
                }
            };
            why = Some(format!(
                "the sampler proposed {}, a config the sweep already has (a small or coarse space is exhausted: more values, finer q, or a lower run_cap)",
                serde_json::json!(trial.params)
            ));
            Some(NewTrial { config: trial.config, params: trial.params })
        };
        let others = read_beside(spec);
        let asked = store.ask(&spec.name, &spec.metric.name, &others, spec.run_cap, &mut sample)?;
        // Says, on the trial, that its point was drawn from a history other sweeps lent to.
        if let Some(id) = &asked
            && !warm.is_empty()
        {
            store.tag(id, &[(WARM_START_TAG.to_string(), Some(spec.warm_start.join(",")))])?;
        }
        if asked.is_none()
            && let Some(why) = why
        {
            crate::errln!("sweep {}: no more trials are asked below run_cap = {}: {why}", spec.name, spec.run_cap.unwrap_or(0));
        }
        Ok(asked)
    }

    /// The history the sampler would decide from if asked now (the sweep's trials with what
    /// it reads beside the objective, and the warm start's), read as [`Study::ask`] reads it
    /// but adding nothing.
    pub fn sampled_history(&self, store: &mut dyn Store) -> crate::Result<History> {
        let warm = self.warm_trials(store)?;
        let mut seen: Option<History> = None;
        let others = read_beside(&self.spec);
        store.ask(&self.spec.name, &self.spec.metric.name, &others, None, &mut |rows| {
            seen = Some(history(&self.spec, rows));
            None
        })?;
        let mut history = seen.unwrap_or_else(|| history(&self.spec, Vec::new()));
        history.trials.extend(warm);
        Ok(history)
    }

    /// The finished trials of the `warm_start` sweeps that TPE learns from beside the sweep's
    /// own (see [`warm::sources`]): each with this sweep's objective, its point cut to the
    /// parameters this sweep has, and numbered 0 (older than every trial of the sweep, for the
    /// recency weights). What is used and left out is said once per process.
    pub fn warm_trials(&self, store: &dyn Store) -> crate::Result<Vec<TrialRecord>> {
        let spec = &self.spec;
        if spec.warm_start.is_empty() {
            return Ok(Vec::new());
        }
        let swept: BTreeSet<&str> = spec.parameters.iter().map(|p| p.key.as_str()).collect();
        let others = read_beside(spec);
        let sources = warm::sources(store, &spec.warm_start, &spec.metric.name, &others, &swept, &spec.base)?;
        self.warm_noted.call_once(|| {
            let said: Vec<String> = sources.iter().map(warm::WarmSource::describe).collect();
            crate::errln!("sweep {}: warm start: TPE also learns from {}", spec.name, said.join(", "));
        });
        let mut used = Vec::new();
        for source in sources {
            // Judged by this sweep's constraints as its own trials are: a bound on what is known
            // before training holds for every lent trial, every bound for a completed one (a
            // bounded metric it never recorded breaks it); one that breaks one is infeasible here.
            let judged: Vec<f64> = source
                .trials
                .iter()
                .map(|r| lent_excess(spec, r.status == TrialStatus::Completed, r.values.iter().next_back().map(|(_, v)| *v), &r.extremes))
                .collect();
            for (mut record, excess) in history(spec, source.trials).trials.into_iter().zip(judged) {
                if excess > 0.0 {
                    (record.state, record.violation) = (SearchState::Infeasible, excess);
                }
                record.number = 0;
                std::sync::Arc::make_mut(&mut record.point).retain(|k, _| swept.contains(k.as_str()));
                used.push(record);
            }
        }
        Ok(used)
    }

    /// Adds a trial for the configuration `fixed` names (checked against the space), the other
    /// parameters drawn by the sampler from the history as it is now, tagged `enqueued` so that
    /// workers claim it before the sweep's other queued trials. Under the sweep's lock, so any
    /// number of processes enqueueing the same configuration add one trial: a configuration the
    /// sweep already has a trial for (every named value equal) is not added again (Optuna's
    /// `skip_if_exists`). `origin` says where it came from, as the tag's value.
    pub fn enqueue(&self, store: &mut dyn Store, fixed: &Point, origin: &str) -> crate::Result<Enqueued> {
        let spec = &self.spec;
        let mut outcome: Option<Enqueued> = None;
        // The parameters `fixed` leaves out are drawn as `ask` draws them: from the sweep's own
        // trials and those its warm start lends.
        let warm = self.warm_trials(store)?;
        let mut sample = |rows: Vec<TrialHistory>| {
            if let Some(row) = rows.iter().find(|r| matches_fixed(&r.params, fixed)) {
                outcome = Some(Enqueued::Exists(row.id.clone()));
                return None;
            }
            let mut history = history(spec, rows);
            history.trials.extend(warm.iter().cloned());
            let Some(point) = self.sampler.ask_with(&history, fixed) else {
                outcome = Some(Enqueued::Exhausted);
                return None;
            };
            match spec.trial_of(&point) {
                Ok(trial) => Some(NewTrial { config: trial.config, params: trial.params }),
                Err(problems) => {
                    outcome = Some(Enqueued::Refused(problems.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; ")));
                    None
                }
            }
        };
        let others = read_beside(spec);
        match store.ask(&spec.name, &spec.metric.name, &others, None, &mut sample)? {
            Some(id) => {
                let mut tags = vec![(ENQUEUED_TAG.to_string(), Some(origin.to_string()))];
                if !warm.is_empty() {
                    tags.push((WARM_START_TAG.to_string(), Some(spec.warm_start.join(","))));
                }
                store.tag(&id, &tags)?;
                Ok(Enqueued::Added(id))
            }
            None => Ok(outcome.unwrap_or(Enqueued::Exhausted)),
        }
    }

    /// The pruner's decision for trial `id` after `epoch` (counted from 1). Always `Continue`
    /// without `[early_terminate]`.
    pub fn judge(&self, store: &dyn Store, id: &str, epoch: usize) -> crate::Result<Decision> {
        let Some(pruner) = &self.pruner else { return Ok(Decision::Continue) };
        let peers = match pruner.reads(epoch) {
            Reads::Own => PeerValues::None,
            Reads::PeersAtEpoch => PeerValues::AtEpoch,
            Reads::PeersUpToEpoch => PeerValues::UpToEpoch,
        };
        let view = HistoryView::Judging { trial: id, epoch: epoch as i64, peers };
        let rows = store.history(&self.spec.name, &self.spec.metric.name, view)?;
        let Some(number) = rows.iter().find(|r| r.id == id).map(|r| r.seq as usize) else { return Ok(Decision::Continue) };
        let mut history = history(&self.spec, rows);
        let fixed = fixed_objectives(&self.spec);
        let per_epoch = epoch_objectives(&self.spec);
        if (!fixed.is_empty() || !per_epoch.is_empty()) && peers != PeerValues::None {
            // Each trial's values beside the metric, in order: the costs, then the other
            // objectives recorded every epoch (at the epoch, or the best up to it where the rule
            // reads that far); a trial missing one is left out.
            let mut values: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            let mut push = |i: usize, seq: i64, v: f64| {
                let entry = values.entry(seq as usize).or_default();
                if entry.len() == i {
                    entry.push(v);
                }
            };
            for (i, (metric, _, _)) in fixed.iter().enumerate() {
                for (seq, brief) in store.extremes(&self.spec.name, metric)? {
                    if let Some(v) = brief.lowest {
                        push(i, seq, v);
                    }
                }
            }
            let at = epoch as i64;
            for (k, (name, goal)) in per_epoch.iter().enumerate() {
                for r in store.history(&self.spec.name, name, view)? {
                    // A value that is no number ranks last (as the metric's does), not absent.
                    let value = match peers {
                        PeerValues::AtEpoch => r.values.get(&at).copied(),
                        _ => r.values.range(..=at).map(|(_, v)| *v).min_by(|a, b| goal.order(*a, *b)),
                    };
                    if let Some(v) = value {
                        push(fixed.len() + k, r.seq, v);
                    }
                }
            }
            let total = fixed.len() + per_epoch.len();
            values.retain(|_, v| v.len() == total);
            let beside = fixed.into_iter().map(|(_, label, goal)| (label, goal)).chain(per_epoch).collect();
            history = history.with_fixed(beside, values);
        }
        Ok(pruner.decide(&history, number, epoch))
    }
}

/// The tracker's rows as the study core sees them. A diverged trial counts as pruned: it stopped
/// early on its own, and TPE should learn that its region is bad rather than ignore it.
pub fn history(spec: &SweepSpec, rows: Vec<TrialHistory>) -> History {
    let trials = rows
        .into_iter()
        .map(|r| {
            let record = TrialRecord {
                number: r.seq as usize,
                point: r.params,
                state: match r.status {
                    TrialStatus::Queued => SearchState::Queued,
                    TrialStatus::Running => SearchState::Running,
                    TrialStatus::Completed => SearchState::Completed,
                    // A stopped trial's curve ends early, as a pruned one's does: it counts as one
                    // (by how far it got, then its value) until it is resumed.
                    TrialStatus::Pruned | TrialStatus::Diverged | TrialStatus::Stopped => SearchState::Pruned,
                    TrialStatus::Failed => SearchState::Failed,
                    TrialStatus::Infeasible => SearchState::Infeasible,
                },
                values: r.values.iter().map(|(&epoch, &v)| (epoch as usize, v)).collect(),
                scores: Vec::new(),
                violation: 0.0,
            };
            let violation = if record.state == SearchState::Infeasible { violation(spec, &record, &r.extremes) } else { 0.0 };
            TrialRecord { scores: scores(spec, &record, &r.extremes), violation, ..record }
        })
        .collect();
    let history = History::new(spec.metric.name.clone(), spec.metric.goal, trials);
    if spec.objectives.len() > 1 { history.with_objectives(spec.objectives.iter().map(|o| o.goal).collect()) } else { history }
}

/// Where the sweep has several objectives, the costs a pruner judges beside the metric at an
/// epoch, known before a trial trains: (the metric read, its name in reasons, its direction).
/// `params` and `gflops` as recorded; `infer_ms` and `train_seconds`, measured only when a trial
/// completes, through `gflops`, which drives both (said so in reasons); one read per metric.
/// The other objectives recorded every epoch are [`epoch_objectives`]. Empty for one objective.
pub fn fixed_objectives(spec: &SweepSpec) -> Vec<(String, String, crate::config::Goal)> {
    let mut fixed: Vec<(String, String, crate::config::Goal)> = Vec::new();
    if spec.objectives.len() < 2 {
        return fixed;
    }
    for o in &spec.objectives {
        let (read, label) = match o.name.as_str() {
            "params" | "gflops" => (o.name.clone(), o.name.clone()),
            // A program's model is its own: nothing stands in for its time before it ends.
            "infer_ms" | "train_seconds" if spec.base.program.is_none() => ("gflops".to_string(), format!("gflops (for {})", o.name)),
            _ => continue,
        };
        if !fixed.iter().any(|(r, _, _)| *r == read) {
            fixed.push((read, label, o.goal));
        }
    }
    fixed
}

/// Where the sweep has several objectives, the others recorded every epoch (not a cost, not the
/// metric the epochs follow), which a pruner judges at the epoch beside the metric: (name, goal).
fn epoch_objectives(spec: &SweepSpec) -> Vec<(String, crate::config::Goal)> {
    if spec.objectives.len() < 2 {
        return Vec::new();
    }
    let per_epoch = spec.objectives.iter().filter(|o| o.name != spec.metric.name && !crate::config::COST_METRICS.contains(&o.name.as_str()));
    per_epoch.map(|o| (o.name.clone(), o.goal)).collect()
}

/// The metrics a sampler reads beside the one a trial's epochs follow: the other objectives,
/// and what the constraints bound (to rank infeasible trials by how far they are off).
fn read_beside(spec: &SweepSpec) -> Vec<&str> {
    let objectives = spec.objectives.iter().filter(|_| spec.objectives.len() > 1).map(|o| o.name.as_str());
    let mut names: Vec<&str> = Vec::new();
    for name in objectives.chain(spec.constraints.iter().map(|c| c.metric.as_str())) {
        if name != spec.metric.name && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// An infeasible trial's [`TrialRecord::violation`]: each bound's [`Constraint::excess`] at the
/// value the worker judged (a cost's, a metric's at its last epoch), summed. A bounded metric
/// the trial has no value of adds nothing (a model refused before training has no latency);
/// where no known value breaks a bound, the trial is as far off as can be.
///
/// [`Constraint::excess`]: crate::config::Constraint::excess
fn violation(spec: &SweepSpec, record: &TrialRecord, extremes: &BTreeMap<String, Extremes>) -> f64 {
    let last = record.last().map(|(_, v)| v);
    let total: f64 = spec.constraints.iter().filter_map(|c| bounded_value(spec, c, last, extremes).map(|v| c.excess(v))).sum();
    if total > 0.0 { total } else { f64::INFINITY }
}

/// A lent trial's excess over this sweep's constraints, judged as the worker judges its own: a
/// `completed` trial by every bound (one it has no value of is broken outright), any other by
/// the bounds known before training only.
fn lent_excess(spec: &SweepSpec, completed: bool, last: Option<f64>, extremes: &BTreeMap<String, Extremes>) -> f64 {
    spec.constraints
        .iter()
        .filter(|c| completed || c.before_training())
        .map(|c| match bounded_value(spec, c, last, extremes) {
            Some(v) => c.excess(v),
            None if completed => f64::INFINITY,
            None => 0.0,
        })
        .sum()
}

/// The value a constraint judges: the followed metric's deepest (`last`), another's last recorded.
fn bounded_value(spec: &SweepSpec, c: &crate::config::Constraint, last: Option<f64>, extremes: &BTreeMap<String, Extremes>) -> Option<f64> {
    if c.metric == spec.metric.name { last } else { extremes.get(&c.metric).map(|e| e.last) }
}

/// A trial's value of each of the sweep's objectives where it has several: the followed
/// metric's best epoch's, another per-epoch metric's best recorded in its direction, a cost's
/// last (an extended trial's cost is measured again). Empty for one objective, or while some
/// objective has no value yet.
fn scores(spec: &SweepSpec, record: &TrialRecord, extremes: &BTreeMap<String, Extremes>) -> Vec<f64> {
    if spec.objectives.len() < 2 {
        return Vec::new();
    }
    let values: Option<Vec<f64>> = spec
        .objectives
        .iter()
        .map(|o| {
            if o.name == spec.metric.name {
                return record.best(o.goal);
            }
            let brief = extremes.get(&o.name)?;
            match o.goal {
                _ if crate::config::COST_METRICS.contains(&o.name.as_str()) => Some(brief.last).filter(|v| v.is_finite()),
                crate::config::Goal::Minimize => brief.lowest,
                crate::config::Goal::Maximize => brief.highest,
            }
        })
        .collect();
    values.unwrap_or_default()
}
