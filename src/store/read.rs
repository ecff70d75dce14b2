//! The trials as everything that reads the tracker sees them, and the one ranking of trials.
//!
//! [`TrialData`] is the one read model of a trial with what it recorded: the report, the charts,
//! the exports and the dashboard all take it, fetched by [`super::Store::trial_data`] in one read
//! transaction with one query per table, never one per trial. (The samplers and pruners read a
//! narrower projection, [`super::TrialHistory`]: one metric per trial, under the sweep's lock.)
//!
//! [`rank_completed`] is the rule every caller ranks by (the leaderboard, `sweep best`, the
//! charts' highlighted trial, the dashboard's order): only completed trials rank (Optuna's rule:
//! a pruned trial's value is from fewer epochs, a failed or diverged one's is no result), by the
//! best epoch's value of the objective through [`Goal::order`], ties going to the lower trial
//! number, then to the id across sweeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::sql::{Conditions, Failure, Row, Tx, decode_value};
use super::{CheckpointRow, MetricRow, MetricSummary, StoreError, TrialFilter, TrialRow, TrialStatus, settings_of};
use crate::config::{Goal, TrialConfig};

/// A trial with what it recorded, as much of it as a [`Detail`] asked for.
#[derive(Debug, Clone, Default)]
pub struct TrialData {
    /// Its row: status, parameters, metric summaries, tags; `row.settings` filled when asked.
    pub row: TrialRow,
    /// Every recorded value, by (epoch, split, name); empty unless [`Detail::metrics`].
    pub metrics: Vec<MetricRow>,
    /// Its checkpoints by kind; empty unless [`Detail::checkpoints`].
    pub checkpoints: Vec<CheckpointRow>,
}

impl AsRef<TrialRow> for TrialData {
    fn as_ref(&self) -> &TrialRow {
        &self.row
    }
}

impl TrialData {
    /// The finite (epoch, value) points of `<split>_<name>`, by epoch.
    pub fn points(&self, split: &str, name: &str) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> =
            self.metrics.iter().filter(|m| m.split == split && m.name == name && m.value.is_finite()).map(|m| (m.epoch as f64, m.value)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    }

    /// The values grouped by metric key (`val_iou`), each ordered by epoch.
    pub fn metric_series(&self) -> BTreeMap<String, Vec<&MetricRow>> {
        let mut out: BTreeMap<String, Vec<&MetricRow>> = BTreeMap::new();
        for m in &self.metrics {
            out.entry(m.key()).or_default().push(m);
        }
        out
    }

    /// When the trial started (its creation when it never did), in Unix seconds.
    pub fn start_time(&self) -> f64 {
        self.row.started.unwrap_or(self.row.created)
    }

    /// Why the trial ended as it did: a pruning decision or an error, when there is one.
    pub fn reason(&self) -> Option<&str> {
        self.row.error.as_deref().filter(|e| !e.is_empty())
    }
}

impl MetricRow {
    /// The metric's name outside the tracker: `<split>_<name>`, as `sweep ls` and sweep files say.
    pub fn key(&self) -> String {
        crate::config::Split::key(&self.split, &self.name)
    }
}

/// What [`super::Store::trial_data`] fetches besides each trial's row (one query each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detail {
    pub metrics: bool,
    pub checkpoints: bool,
    /// Every setting of the resolved config into `row.settings` (`train.learning_rate`).
    pub settings: bool,
}

impl Detail {
    /// The rows alone.
    pub const ROWS: Detail = Detail { metrics: false, checkpoints: false, settings: false };
    /// The rows and every recorded value: what the charts draw.
    pub const METRICS: Detail = Detail { metrics: true, checkpoints: false, settings: false };
    /// Everything: what `show` and the exports need.
    pub const ALL: Detail = Detail { metrics: true, checkpoints: true, settings: true };
}

impl AsRef<TrialRow> for TrialRow {
    fn as_ref(&self) -> &TrialRow {
        self
    }
}

/// A completed trial's place in a ranking: its best value of the metric and that value's epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked<'a, T> {
    pub trial: &'a T,
    pub value: f64,
    pub epoch: i64,
}

/// The completed trials that have a value of `metric` (`<split>_<name>`), best first.
///
/// ```
/// use sweep::config::Goal;
/// use sweep::store::{MetricSummary, TrialRow, TrialStatus, rank_completed};
///
/// let trial = |id: &str, seq: i64, status: TrialStatus, best: f64| {
///     let mut row = TrialRow { id: id.into(), seq, status, ..TrialRow::default() };
///     let summary = MetricSummary { max: Some(best), max_epoch: Some(3), ..MetricSummary::default() };
///     row.metrics.insert("val_iou".into(), summary);
///     row
/// };
/// let trials = [
///     trial("s-1", 1, TrialStatus::Completed, 0.80),
///     trial("s-2", 2, TrialStatus::Pruned, 0.95), // pruned: never ranks
///     trial("s-3", 3, TrialStatus::Completed, 0.90),
///     trial("s-4", 4, TrialStatus::Completed, 0.90), // a tie: the lower number first
/// ];
/// let ranked: Vec<&str> = rank_completed(&trials, "val_iou", Goal::Maximize).iter().map(|r| r.trial.id.as_str()).collect();
/// assert_eq!(ranked, ["s-3", "s-4", "s-1"]);
/// ```
pub fn rank_completed<'a, T: AsRef<TrialRow>>(trials: &'a [T], metric: &str, goal: Goal) -> Vec<Ranked<'a, T>> {
    let mut ranked: Vec<Ranked<'a, T>> = trials
        .iter()
        .filter(|t| t.as_ref().status == TrialStatus::Completed)
        .filter_map(|t| t.as_ref().best(metric, goal).map(|(value, epoch)| Ranked { trial: t, value, epoch }))
        .collect();
    ranked.sort_by(|a, b| {
        let (ra, rb) = (a.trial.as_ref(), b.trial.as_ref());
        goal.order(a.value, b.value).then(ra.seq.cmp(&rb.seq)).then_with(|| ra.id.cmp(&rb.id))
    });
    ranked
}

/// One configuration trained with several seeds: the trials of a sweep whose swept values are the
/// same but for [`crate::config::SEED_KEY`] (every trial is a group of one where nothing varies
/// the seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedGroup {
    /// Named after its first trial (the lowest number), e.g. `hue-1`.
    pub id: String,
    /// The swept values the group shares (its seed left out).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Every trial of the group, by number.
    pub trials: Vec<String>,
    /// The completed trials' best values of the objective, by trial number (as
    /// [`rank_completed`] ranks each).
    pub values: Vec<f64>,
    /// Their mean, and sample standard deviation (None below two values); None without a value.
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

impl SeedGroup {
    /// How many completed trials the mean is over.
    pub fn n(&self) -> usize {
        self.values.len()
    }
}

/// The swept values that name a trial's seed group: its parameters without the seed.
pub fn group_params(row: &TrialRow) -> BTreeMap<String, serde_json::Value> {
    row.params.iter().filter(|(k, _)| k.as_str() != crate::config::SEED_KEY).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The trials' seed groups (per sweep, by their swept values without the seed), ranked by the
/// mean of their completed trials' best values (`Goal::order`; ties to the group with the
/// lower first trial), the groups without a completed trial last, by number. The one ranking of
/// groups, as [`rank_completed`] is of trials.
pub fn rank_groups<T: AsRef<TrialRow>>(trials: &[T], metric: &str, goal: Goal) -> Vec<SeedGroup> {
    let mut order: Vec<&TrialRow> = trials.iter().map(AsRef::as_ref).collect();
    order.sort_by(|a, b| a.sweep.cmp(&b.sweep).then(a.seq.cmp(&b.seq)).then_with(|| a.id.cmp(&b.id)));
    let mut groups: Vec<(String, SeedGroup, i64)> = Vec::new();
    for row in order {
        let params = group_params(row);
        let at = match groups.iter().position(|(sweep, g, _)| *sweep == row.sweep && g.params == params) {
            Some(at) => at,
            None => {
                let group = SeedGroup { id: row.id.clone(), params, trials: Vec::new(), values: Vec::new(), mean: None, std: None };
                groups.push((row.sweep.clone(), group, row.seq));
                groups.len() - 1
            }
        };
        let group = &mut groups[at].1;
        group.trials.push(row.id.clone());
        if row.status == TrialStatus::Completed
            && let Some((value, _)) = row.best(metric, goal)
        {
            group.values.push(value);
        }
    }
    for (_, g, _) in &mut groups {
        let n = g.values.len() as f64;
        g.mean = (n > 0.0).then(|| g.values.iter().sum::<f64>() / n);
        g.std = g.mean.filter(|_| n > 1.0).map(|m| (g.values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    }
    groups.sort_by(|(sa, a, qa), (sb, b, qb)| match (a.mean, b.mean) {
        (Some(x), Some(y)) => goal.order(x, y).then(qa.cmp(qb)).then_with(|| sa.cmp(sb)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => sa.cmp(sb).then(qa.cmp(qb)),
    });
    groups.into_iter().map(|(_, g, _)| g).collect()
}

/// Whether any configuration of these trials was trained with several seeds.
pub fn has_seed_groups<T: AsRef<TrialRow>>(trials: &[T]) -> bool {
    trials.iter().any(|t| t.as_ref().params.contains_key(crate::config::SEED_KEY))
}

/// Every trial in the order a leaderboard shows them: the ranked ones ([`rank_completed`]) first,
/// then the others by trial number.
pub fn leaderboard_order<'a, T: AsRef<TrialRow>>(trials: &'a [T], metric: &str, goal: Goal) -> Vec<&'a T> {
    let ranked = rank_completed(trials, metric, goal).into_iter().map(|r| r.trial);
    // The ones rank_completed leaves out: not completed, or without a value of the metric.
    let unranked = |t: &&T| t.as_ref().status != TrialStatus::Completed || t.as_ref().best(metric, goal).is_none();
    let mut rest: Vec<&'a T> = trials.iter().filter(unranked).collect();
    rest.sort_by(|a, b| {
        let (ra, rb) = (a.as_ref(), b.as_ref());
        ra.seq.cmp(&rb.seq).then_with(|| ra.id.cmp(&rb.id))
    });
    ranked.into_iter().chain(rest).collect()
}

/// The best completed trial by `metric`: [`rank_completed`]'s first, or, where configurations
/// were trained with several seeds, the best trial of the best seed group ([`rank_groups`]): a
/// lucky seed of a worse configuration is not the best.
pub fn best_ranked<'a, T: AsRef<TrialRow>>(trials: &'a [T], metric: &str, goal: Goal) -> Option<Ranked<'a, T>> {
    let ranked = rank_completed(trials, metric, goal);
    if !has_seed_groups(trials) {
        return ranked.into_iter().next();
    }
    let group = rank_groups(trials, metric, goal).into_iter().next().filter(|g| g.mean.is_some())?;
    ranked.into_iter().find(|r| group.trials.contains(&r.trial.as_ref().id))
}

/// The id of the best completed trial by `metric` ([`best_ranked`]).
pub fn best_id<T: AsRef<TrialRow>>(trials: &[T], metric: &str, goal: Goal) -> Option<String> {
    best_ranked(trials, metric, goal).map(|r| r.trial.as_ref().id.clone())
}

/// Trials by id, or by sweep and status, in (sweep, seq) order, with what `detail` asks for: one
/// query per table whatever the number of trials.
pub(super) fn trial_data(tx: &mut dyn Tx, filter: &TrialFilter, id: Option<&str>, detail: Detail) -> Result<Vec<TrialData>, Failure> {
    let rows = read_runs(tx, filter, id)?;
    let index: HashMap<String, usize> = rows.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
    let mut trials: Vec<TrialData> = rows.into_iter().map(|row| TrialData { row, ..TrialData::default() }).collect();
    if trials.is_empty() {
        return Ok(trials);
    }
    let conditions = run_conditions(filter, id);
    if detail.metrics {
        let sql = format!(
            "SELECT m.run, m.epoch, m.split, m.name, m.value, m.kind, m.wall FROM metrics m JOIN runs r ON r.id = m.run {} {} m.split <> 'cost'
             ORDER BY m.run, m.epoch, m.split, m.name",
            conditions.sql(),
            if conditions.sql().is_empty() { "WHERE" } else { "AND" }
        );
        for r in &tx.query(&sql, &conditions.values)? {
            if let Some(&i) = index.get(&r.text(0)?) {
                trials[i].metrics.push(metric_row(r, 1)?);
            }
        }
    }
    if detail.checkpoints {
        let sql = format!(
            "SELECT c.run, c.kind, c.epoch, c.path, c.metric_value, c.metric_kind FROM checkpoints c JOIN runs r ON r.id = c.run {}
             ORDER BY c.run, c.kind",
            conditions.sql()
        );
        for r in &tx.query(&sql, &conditions.values)? {
            if let Some(&i) = index.get(&r.text(0)?) {
                trials[i].checkpoints.push(checkpoint_row(r, 1)?);
            }
        }
    }
    if detail.settings {
        let sql = format!("SELECT k.run, k.config FROM run_configs k JOIN runs r ON r.id = k.run {}", conditions.sql());
        for r in &tx.query(&sql, &conditions.values)? {
            let run = r.text(0)?;
            if let Some(&i) = index.get(&run) {
                let config: TrialConfig =
                    serde_json::from_str(&r.text(1)?).map_err(|e| Failure::Invalid(format!("run {run}: unreadable config: {e}")))?;
                trials[i].row.settings = settings_of(&config);
            }
        }
    }
    Ok(trials)
}

/// The `WHERE` of the trials a filter or an id selects, over `runs r`.
fn run_conditions(filter: &TrialFilter, id: Option<&str>) -> Conditions {
    let mut conditions = Conditions::after(Vec::new());
    conditions.equal("r.id", id);
    conditions.equal("r.sweep", filter.sweep.as_deref());
    conditions.equal("r.status", filter.status.map(|s| s.as_str()));
    conditions
}

/// A `metrics` row's (epoch, split, name, value, kind, wall) from column `at` on.
pub(super) fn metric_row(r: &Row, at: usize) -> Result<MetricRow, Failure> {
    let value = decode_value(r.opt_real(at + 3)?, &r.text(at + 4)?);
    Ok(MetricRow { epoch: r.int(at)?, split: r.text(at + 1)?, name: r.text(at + 2)?, value, wall: r.real(at + 5)? })
}

/// A `checkpoints` row's (kind, epoch, path, metric_value, metric_kind) from column `at` on.
pub(super) fn checkpoint_row(r: &Row, at: usize) -> Result<CheckpointRow, Failure> {
    let metric_value = decode_value(r.opt_real(at + 3)?, &r.text(at + 4)?);
    Ok(CheckpointRow { kind: r.text(at)?, epoch: r.int(at + 1)?, path: r.text(at + 2)?, metric_value })
}

pub(super) fn trial(tx: &mut dyn Tx, id: &str) -> Result<TrialRow, Failure> {
    match read_runs(tx, &TrialFilter::default(), Some(id))?.pop() {
        Some(run) => Ok(run),
        None => Err(unknown_trial(tx, id)),
    }
}

/// The error for a run id that is not there, suggesting a near one of the same sweep.
pub(super) fn unknown_trial(tx: &mut dyn Tx, id: &str) -> Failure {
    let like = format!("{}%", id.split('-').next().unwrap_or(id));
    let ids: Vec<String> = match tx.query("SELECT id FROM runs WHERE id LIKE $1 ORDER BY seq LIMIT 200", &[like.into()]) {
        Ok(rows) => rows.iter().filter_map(|r| r.text(0).ok()).collect(),
        Err(e) => return e,
    };
    let suggestions = crate::util::did_you_mean(id, ids.iter().map(String::as_str)).map(|s| vec![s.to_string()]).unwrap_or_default();
    StoreError::UnknownTrial { id: id.to_string(), suggestions }.into()
}

/// Runs by id, or by sweep and status, with their metric summaries.
pub(super) fn read_runs(tx: &mut dyn Tx, filter: &TrialFilter, id: Option<&str>) -> Result<Vec<TrialRow>, Failure> {
    let conditions = run_conditions(filter, id);
    let sql = format!(
        "SELECT r.id, r.sweep, r.seq, r.status, r.attempt, r.host, r.pid, r.created, r.started, r.finished, r.heartbeat, r.error,
                r.code_version, r.config_hash, r.seed, r.params, r.note
         FROM runs r {} ORDER BY r.sweep, r.seq",
        conditions.sql()
    );
    let mut runs = tx.query(&sql, &conditions.values)?.iter().map(run_row).collect::<Result<Vec<_>, Failure>>()?;
    if runs.is_empty() {
        return Ok(runs);
    }
    let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
    let columns = "s.run, s.split, s.name, s.last_epoch, s.last_value, s.last_kind, s.min_value, s.min_epoch, s.max_value, s.max_epoch";
    let summaries = match id {
        Some(id) => tx.query(&format!("SELECT {columns} FROM metric_summary s WHERE s.run = $1"), &[id.into()])?,
        None => tx.query(&format!("SELECT {columns} FROM metric_summary s JOIN runs r ON r.id = s.run {}", conditions.sql()), &conditions.values)?,
    };
    for r in &summaries {
        let Some(&i) = index.get(&r.text(0)?) else { continue };
        let summary = MetricSummary {
            last_epoch: r.int(3)?,
            last: decode_value(r.opt_real(4)?, &r.text(5)?),
            min: r.opt_real(6)?,
            min_epoch: r.opt_int(7)?,
            max: r.opt_real(8)?,
            max_epoch: r.opt_int(9)?,
        };
        let (split, name) = (r.text(1)?, r.text(2)?);
        let key = crate::config::Split::key(&split, &name);
        // A trial's cost `train_seconds` (its epochs' total) is what the name means for a trial;
        // the per-epoch durations (split `train`) keep it only where no total is recorded.
        if split == crate::config::Split::Cost.as_str() {
            runs[i].costs.insert(key.clone());
            runs[i].metrics.insert(key, summary);
        } else {
            runs[i].metrics.entry(key).or_insert(summary);
        }
    }
    let tags = match id {
        Some(id) => tx.query("SELECT t.run, t.name, t.value FROM run_tags t WHERE t.run = $1", &[id.into()])?,
        None => {
            tx.query(&format!("SELECT t.run, t.name, t.value FROM run_tags t JOIN runs r ON r.id = t.run {}", conditions.sql()), &conditions.values)?
        }
    };
    for r in &tags {
        if let Some(&i) = index.get(&r.text(0)?) {
            runs[i].tags.insert(r.text(1)?, r.text(2)?);
        }
    }
    Ok(runs)
}

fn run_row(r: &Row) -> Result<TrialRow, Failure> {
    Ok(TrialRow {
        id: r.text(0)?,
        sweep: r.text(1)?,
        seq: r.int(2)?,
        status: TrialStatus::parse(&r.text(3)?).unwrap_or(TrialStatus::Failed),
        attempt: r.int(4)?,
        host: r.opt_text(5)?,
        pid: r.opt_int(6)?,
        created: r.real(7)?,
        started: r.opt_real(8)?,
        finished: r.opt_real(9)?,
        heartbeat: r.opt_real(10)?,
        error: r.opt_text(11)?,
        code_version: r.opt_text(12)?,
        config_hash: r.text(13)?,
        seed: r.int(14)?,
        params: serde_json::from_str(&r.text(15)?).unwrap_or_default(),
        note: r.opt_text(16)?,
        tags: BTreeMap::new(),
        metrics: BTreeMap::new(),
        costs: BTreeSet::new(),
        settings: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial of sweep `s` with hue `hue` and seed `seed` (None: no seed swept) whose best
    /// val_loss is `loss`.
    fn trial(seq: i64, hue: f64, seed: Option<u64>, status: TrialStatus, loss: f64) -> TrialRow {
        let mut row = TrialRow { id: format!("s-{seq}"), sweep: "s".into(), seq, status, ..TrialRow::default() };
        row.params.insert("augment.hue_delta".into(), serde_json::json!(hue));
        if let Some(seed) = seed {
            row.params.insert(crate::config::SEED_KEY.into(), serde_json::json!(seed));
        }
        row.metrics.insert("val_loss".into(), MetricSummary { min: Some(loss), min_epoch: Some(2), ..MetricSummary::default() });
        row
    }

    /// Issue 29, item 4: groups' means and sample standard deviations against hand-computed
    /// ones, ranked by the mean (a loss: lowest first), pruned members left out of the values,
    /// a group with no completed trial last; the best trial is the best group's best, not the
    /// luckiest seed of another configuration.
    #[test]
    fn seed_groups_rank_by_the_mean_of_their_completed_trials() {
        let c = TrialStatus::Completed;
        let trials = vec![
            trial(1, 0.0, Some(1), c, 0.30),
            trial(2, 0.0, Some(2), c, 0.34),
            trial(3, 0.0, Some(3), c, 0.20), // the luckiest seed of all, in the worse group
            trial(4, 0.1, Some(1), c, 0.25),
            trial(5, 0.1, Some(2), c, 0.26),
            trial(6, 0.1, Some(3), TrialStatus::Pruned, 0.10), // pruned: not in the mean
            trial(7, 0.2, Some(1), TrialStatus::Queued, f64::NAN),
        ];
        let groups = rank_groups(&trials, "val_loss", Goal::Minimize);
        let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["s-4", "s-1", "s-7"]);
        // By hand: (0.25 + 0.26) / 2 = 0.255, std sqrt(2 * 0.005^2 / 1) = 0.00707...;
        // (0.30 + 0.34 + 0.20) / 3 = 0.28, std sqrt((0.02^2 + 0.06^2 + 0.08^2) / 2) = 0.07211...
        let close = |a: Option<f64>, b: f64| assert!(a.is_some_and(|a| (a - b).abs() < 1e-12), "{a:?} vs {b}");
        close(groups[0].mean, 0.255);
        close(groups[0].std, (2.0f64 * 0.005 * 0.005).sqrt());
        close(groups[1].mean, 0.28);
        close(groups[1].std, ((0.0004f64 + 0.0036 + 0.0064) / 2.0).sqrt());
        assert_eq!((groups[0].n(), groups[0].trials.len()), (2, 3), "the pruned member is in the group, not in its mean");
        assert_eq!((groups[2].mean, groups[2].std, groups[2].n()), (None, None, 0));
        assert!(groups.iter().all(|g| !g.params.contains_key(crate::config::SEED_KEY)));
        assert_eq!(best_id(&trials, "val_loss", Goal::Minimize).as_deref(), Some("s-4"));

        // Without seeds every trial is its own group, and the best is rank_completed's first.
        let plain: Vec<TrialRow> = [(1, 0.0, 0.3), (2, 0.1, 0.2)].into_iter().map(|(n, h, l)| trial(n, h, None, c, l)).collect();
        assert!(!has_seed_groups(&plain));
        assert_eq!(rank_groups(&plain, "val_loss", Goal::Minimize).iter().map(|g| g.n()).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(best_id(&plain, "val_loss", Goal::Minimize).as_deref(), Some("s-2"));
    }
}
