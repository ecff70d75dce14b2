//! Text, CSV and JSON renderings of what the tracker holds: run lists, one run's history,
//! comparisons, leaderboards and exports. Pure functions from rows to strings.
//!
//! The `--where` language of `sweep ls` and the dashboard ([`filter`]):
//!
//! ```
//! use sweep::report::filter::Filter;
//! use sweep::store::{TrialRow, TrialStatus};
//!
//! let filter = Filter::parse("train.learning_rate < 0.01 and not status = failed").unwrap();
//! let mut trial = TrialRow { id: "hue-1".into(), status: TrialStatus::Completed, ..TrialRow::default() };
//! trial.params.insert("train.learning_rate".into(), serde_json::json!(0.001));
//! assert!(filter.matches(&trial));
//! trial.status = TrialStatus::Failed;
//! assert!(!filter.matches(&trial));
//! assert!(Filter::parse("val_iou >").unwrap_err().contains("val_iou"), "a message that names the field");
//! ```

pub mod axis;
pub mod best;
pub mod charts;
pub mod filter;
pub mod front;
pub mod html;
pub mod importance;
pub mod logs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::config::Objective;
use crate::config::{FULL_RESOLUTION_METRICS, Goal, METRIC_NAMES};
use crate::store::{CheckpointRow, Extension, Kept, MetricRow, Registering, SeedGroup, SweepInfo, TrialRow, TrialStatus};
use crate::study::spec::{SweepSpec, Trial};
use crate::util::{format_duration, format_utc};
use serde::Serialize;

/// A number the way tables show it: 4 significant digits, no exponent for everyday magnitudes.
/// What can go wrong reading the tracker for a report or a chart.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A flag's value that cannot be used; the message names the flag and the fix.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Plot(#[from] charts::PlotError),
}

impl ReportError {
    /// Whether the user's input was wrong (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReportError::Store(e) => e.is_bad_input(),
            ReportError::Usage(_) => true,
            ReportError::Plot(_) => false,
        }
    }
}

pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == v.trunc() && v.abs() < 1e9 {
        return format!("{v:.0}");
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        let text = format!("{v:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
        return format!("{mantissa}e{exponent}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A JSON parameter value as a table cell.
pub fn fmt_param(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(fmt_num).unwrap_or_else(|| n.to_string()),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A plain-text table with aligned columns (numbers right-aligned).
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, every cell [`terminal_safe`](crate::util::terminal_safe) (a tag's
    /// newline or escape sequence is shown escaped, never breaks a row or reaches the terminal).
    pub fn render(&self) -> String {
        let safe = |cells: &[String]| -> Vec<String> { cells.iter().map(|c| crate::util::terminal_safe(c, false).into_owned()).collect() };
        let headers = safe(&self.headers);
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| safe(r)).collect();
        let n = headers.len();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..n)
            .map(|i| rows.iter().all(|r| r.get(i).is_none_or(|c| c == "-" || c.is_empty() || c.parse::<f64>().is_ok() || c == "NaN")))
            .collect();
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let parts: Vec<String> = (0..n)
                .map(|i| {
                    let c = cells.get(i).map(String::as_str).unwrap_or("");
                    if numeric[i] { format!("{c:>w$}", w = widths[i]) } else { format!("{c:<w$}", w = widths[i]) }
                })
                .collect();
            out.push_str(parts.join("  ").trim_end());
            out.push('\n');
        };
        line(&headers, &mut out);
        for row in &rows {
            line(row, &mut out);
        }
        out
    }
}

/// Parameter keys that take more than one value among `runs` (all keys when there is one run).
pub fn varying_params<T: AsRef<TrialRow>>(runs: &[T]) -> Vec<String> {
    let mut values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.as_ref().params {
            values.entry(k.as_str()).or_default().insert(v.to_string());
        }
    }
    values.into_iter().filter(|(_, vs)| vs.len() > 1 || runs.len() == 1).map(|(k, _)| k.to_string()).collect()
}

/// Every parameter key of `runs`.
pub fn param_keys<T: AsRef<TrialRow>>(runs: &[T]) -> Vec<String> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.as_ref().params.keys()).collect();
    keys.into_iter().cloned().collect()
}

fn cell(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "-".into())
}

/// Every tag name of `runs`.
pub fn tag_names<T: AsRef<TrialRow>>(runs: &[T]) -> Vec<String> {
    let names: BTreeSet<&String> = runs.iter().flat_map(|r| r.as_ref().tags.keys()).collect();
    names.into_iter().cloned().collect()
}

/// A trial's tags as `name=value` pairs, for a table cell.
pub fn tags_cell(tags: &BTreeMap<String, String>) -> String {
    let safe = |s: &str| crate::util::terminal_safe(s, false).into_owned();
    if tags.is_empty() { "-".into() } else { tags.iter().map(|(k, v)| format!("{}={}", safe(k), safe(v))).collect::<Vec<_>>().join(" ") }
}

/// The `sweep ls` table: id, status, epochs, parameters, best validation metrics, and the tags
/// when a trial has some.
pub fn trials_table(runs: &[TrialRow]) -> String {
    let keys = param_keys(runs);
    // The built-in trainer's four validation metrics, or a program's (up to six).
    let metrics = program_metrics(runs.iter().flat_map(|r| r.metrics.keys()), 6)
        .unwrap_or_else(|| ["val_iou", "val_dice", "val_loss", "val_fg_iou"].map(String::from).to_vec());
    let tagged = runs.iter().any(|r| !r.tags.is_empty());
    let mut t = Table::new(
        ["run", "status", "epochs"]
            .into_iter()
            .map(String::from)
            .chain(keys.iter().cloned())
            .chain(metrics.iter().cloned())
            .chain(tagged.then(|| "tags".to_string())),
    );
    for r in runs {
        let mut row = vec![r.id.clone(), r.status.as_str().to_string(), r.epochs().to_string()];
        row.extend(keys.iter().map(|k| r.params.get(k).map(fmt_param).unwrap_or_else(|| "-".into())));
        row.extend(metrics.iter().map(|m| cell(filter::metric(r, m))));
        if tagged {
            row.push(tags_cell(&r.tags));
        }
        t.row(row);
    }
    t.render()
}

/// The CSV columns of tags and the note, after the others: `tag.<name>` per tag name of `runs`,
/// and `note` when a trial has one.
pub(crate) fn annotation_header<T: AsRef<TrialRow>>(runs: &[T]) -> (Vec<String>, bool) {
    (tag_names(runs), runs.iter().any(|r| r.as_ref().note.is_some()))
}

pub(crate) fn annotation_cells(r: &TrialRow, (tags, note): &(Vec<String>, bool)) -> Vec<String> {
    let mut cells: Vec<String> = tags.iter().map(|t| r.tags.get(t).cloned().unwrap_or_default()).collect();
    if *note {
        cells.push(r.note.clone().unwrap_or_default());
    }
    cells
}

pub(crate) fn annotation_columns((tags, note): &(Vec<String>, bool)) -> Vec<String> {
    tags.iter().map(|t| format!("tag.{t}")).chain(note.then(|| "note".to_string())).collect()
}

/// Runs as CSV: attributes, every parameter, best and final value of every metric.
pub fn trials_csv(runs: &[TrialRow]) -> String {
    let keys = param_keys(runs);
    let metric_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let groups = group_ids(runs);
    let mut header = vec!["run".to_string(), "sweep".into(), "status".into(), "attempt".into(), "epochs".into(), "seed".into()];
    if !groups.is_empty() {
        header.push("group".into());
    }
    header.extend(keys.iter().cloned());
    // A cost is one value a trial: one column.
    let cost = |m: &str| crate::config::COST_METRICS.contains(&m);
    for m in &metric_keys {
        if cost(m) {
            header.push(m.to_string());
        } else {
            header.push(format!("best_{m}"));
            header.push(format!("final_{m}"));
        }
    }
    let annotations = annotation_header(runs);
    header.extend(annotation_columns(&annotations));
    let mut out = csv_line(&header);
    for r in runs {
        let mut row =
            vec![r.id.clone(), r.sweep.clone(), r.status.as_str().into(), r.attempt.to_string(), r.epochs().to_string(), r.seed.to_string()];
        if !groups.is_empty() {
            row.push(groups.get(&r.id).cloned().unwrap_or_default());
        }
        row.extend(keys.iter().map(|k| r.params.get(k).map(fmt_param_exact).unwrap_or_default()));
        for m in &metric_keys {
            if !cost(m) {
                row.push(r.best(m, Goal::for_metric(m)).map(|(v, _)| v.to_string()).unwrap_or_default());
            }
            row.push(r.last(m).map(|v| v.to_string()).unwrap_or_default());
        }
        row.extend(annotation_cells(r, &annotations));
        out.push_str(&csv_line(&row));
    }
    out
}

/// A seed group's objective: `0.8123 ± 0.0042 (n=3)`, `0.8123 (n=1)`, or `-` before any of its
/// trials completed.
pub fn group_cell(g: &SeedGroup) -> String {
    match (g.mean, g.std) {
        (Some(mean), Some(std)) => format!("{} ± {} (n={})", fmt_num(mean), fmt_num(std), g.n()),
        (Some(mean), None) => format!("{} (n=1)", fmt_num(mean)),
        _ => "-".to_string(),
    }
}

/// `sweep ls --group`: one row per seed group, ranked by its mean ([`crate::store::rank_groups`]).
pub fn groups_table(groups: &[SeedGroup], objective: &str) -> String {
    let keys: BTreeSet<&String> = groups.iter().flat_map(|g| g.params.keys()).collect();
    let mut t = Table::new(
        ["rank", "group", "trials"]
            .into_iter()
            .map(String::from)
            .chain(keys.iter().map(|k| k.to_string()))
            .chain([format!("{objective} mean ± std (n)"), "members".to_string()]),
    );
    for (i, g) in groups.iter().enumerate() {
        let rank = if g.mean.is_some() { (i + 1).to_string() } else { "-".to_string() };
        let mut row = vec![rank, g.id.clone(), g.trials.len().to_string()];
        row.extend(keys.iter().map(|k| g.params.get(*k).map(fmt_param).unwrap_or_else(|| "-".into())));
        row.push(group_cell(g));
        row.push(g.trials.join(" "));
        t.row(row);
    }
    t.render()
}

/// `sweep ls --group --csv`: the same, at full precision, the members separated by spaces.
pub fn groups_csv(groups: &[SeedGroup], objective: &str) -> String {
    let keys: BTreeSet<&String> = groups.iter().flat_map(|g| g.params.keys()).collect();
    let mut header = vec!["group".to_string(), "trials".into()];
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend([format!("mean_{objective}"), format!("std_{objective}"), "n".into(), "members".into()]);
    let mut out = csv_line(&header);
    for g in groups {
        let mut row = vec![g.id.clone(), g.trials.len().to_string()];
        row.extend(keys.iter().map(|k| g.params.get(*k).map(fmt_param_exact).unwrap_or_default()));
        row.push(g.mean.map(|v| v.to_string()).unwrap_or_default());
        row.push(g.std.map(|v| v.to_string()).unwrap_or_default());
        row.push(g.n().to_string());
        row.push(g.trials.join(" "));
        out.push_str(&csv_line(&row));
    }
    out
}

/// Each trial's seed group id (its group's first trial), for the exports: empty where no
/// configuration of `runs` was trained with several seeds.
pub fn group_ids<T: AsRef<TrialRow>>(runs: &[T]) -> BTreeMap<String, String> {
    if !crate::store::has_seed_groups(runs) {
        return BTreeMap::new();
    }
    // The objective does not change who is in a group.
    let groups = crate::store::rank_groups(runs, "val_iou", Goal::Maximize);
    groups.iter().flat_map(|g| g.trials.iter().map(move |t| (t.clone(), g.id.clone()))).collect()
}

/// A parameter's value as written (a string without its quotes), for CSV.
pub(crate) fn fmt_param_exact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV record (RFC 4180 quoting).
pub fn csv_line(cells: &[String]) -> String {
    let quoted: Vec<String> =
        cells.iter().map(|c| if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }).collect();
    format!("{}\n", quoted.join(","))
}

/// Pivots metric rows to one row per epoch: (epoch, `<split>_<name>` -> value).
/// A compact `key=value` list, naming parameters by their last segment.
pub fn short_params(params: &BTreeMap<String, serde_json::Value>) -> String {
    params.iter().map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), fmt_param(v))).collect::<Vec<_>>().join(" ")
}

/// What a sweep optimises: its file's `[[objectives]]` (or `[metric]` alone); the one
/// [`sweep_objective`] finds when the file does not parse with this build.
pub fn sweep_objectives(store: &dyn crate::store::Store, info: &SweepInfo) -> Result<Vec<Objective>, crate::store::StoreError> {
    match crate::study::spec::stored(info) {
        Ok(spec) => Ok(spec.objectives),
        Err(_) => Ok(vec![sweep_objective(store, info)?]),
    }
}

/// A sweep's objective, by one rule: the `[metric]` of the sweep file the tracker keeps; when that
/// file does not parse with this build (registered by another version), its first trial's; the
/// default (`val_iou`, maximize) for a sweep with neither.
pub fn sweep_objective(store: &dyn crate::store::Store, info: &SweepInfo) -> Result<Objective, crate::store::StoreError> {
    if let Ok(spec) = crate::study::spec::stored(info) {
        return Ok(spec.metric);
    }
    let first = store.trials(&crate::store::TrialFilter { sweep: Some(info.name.clone()), status: None })?.into_iter().next();
    Ok(match first {
        Some(trial) => store.trial_config(&trial.id)?.metric,
        None => Objective::default(),
    })
}

/// The completed trial whose best epoch is best by the objective, with that value and epoch
/// (the leaderboard's first: ties go to the lower trial number, as in [`crate::store::Store::best`];
/// where seed groups exist, the best trial of the best group: [`crate::store::best_ranked`]).
pub fn best_so_far<'a>(runs: &'a [TrialRow], objective: &Objective) -> Option<(&'a TrialRow, f64, i64)> {
    crate::store::best_ranked(runs, &objective.name, objective.goal).map(|r| (r.trial, r.value, r.epoch))
}

/// `sweep status` for one sweep: counts per status, the running trials, its batch jobs
/// (`jobs`: one line each) and the best so far. `now` is the current Unix time.
pub fn sweep_status(sweep: &SweepInfo, runs: &[TrialRow], objective: &Objective, jobs: &[String], now: f64) -> String {
    let mut out = String::new();
    let counts: Vec<String> = TrialStatus::ALL.iter().filter_map(|s| sweep.counts.get(s.as_str()).map(|n| format!("{n} {}", s.as_str()))).collect();
    let _ = writeln!(out, "sweep {}: {} trial(s): {}", sweep.name, runs.len(), counts.join(", "));
    let running: Vec<_> = runs.iter().filter(|r| r.status == TrialStatus::Running).collect();
    if !running.is_empty() {
        let mut t = Table::new(["running", "epochs", "host", "pid", "heartbeat", "params"]);
        for r in running {
            let age = r.heartbeat.map(|h| format!("{} ago", format_duration(now - h))).unwrap_or_else(|| "-".into());
            t.row(vec![
                r.id.clone(),
                r.epochs().to_string(),
                r.host.clone().unwrap_or_default(),
                r.pid.map(|p| p.to_string()).unwrap_or_default(),
                age,
                short_params(&r.params),
            ]);
        }
        out.push_str(&t.render());
    }
    for job in jobs {
        let _ = writeln!(out, "{job}");
    }
    match best_so_far(runs, objective) {
        Some((r, v, e)) => {
            let _ = writeln!(out, "best so far: {} {} = {} (epoch {e}) {}", r.id, objective.name, fmt_num(v), short_params(&r.params));
        }
        None => out.push_str("best so far: none yet\n"),
    }
    out
}

/// One line of the dry-run table: a trial of the sweep file and what registering it would do.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunRow {
    /// Position in the file's expansion, from 1.
    pub index: usize,
    /// The trial's id when the tracker knows its config already.
    pub trial: Option<String>,
    /// `new`, the known trial's status, `extend A -> B`, or `<status> (kept)`.
    pub status: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub config_hash: String,
}

/// The rows of a dry run: `trials` as the file expands them, against the trials `known` to the
/// tracker, by the registration `plan`.
pub fn dry_run_rows(trials: &[Trial], known: &[TrialRow], plan: &[Registering]) -> Vec<DryRunRow> {
    let status_of: std::collections::HashMap<&str, &str> = known.iter().map(|r| (r.id.as_str(), r.status.as_str())).collect();
    trials
        .iter()
        .zip(plan)
        .enumerate()
        .map(|(i, (trial, registering))| {
            let (id, status) = match registering {
                Registering::New => (None, "new".to_string()),
                Registering::Known(id) => (Some(id.clone()), status_of.get(id.as_str()).unwrap_or(&"known").to_string()),
                Registering::Extend(e) => (Some(e.id.clone()), format!("extend {} -> {}", e.from, e.to)),
                Registering::Keep(k) => (Some(k.id.clone()), format!("{} (kept)", status_of.get(k.id.as_str()).unwrap_or(&"known"))),
            };
            DryRunRow { index: i + 1, trial: id, status, params: trial.params.clone(), config_hash: trial.config.hash() }
        })
        .collect()
}

/// The dry-run table of a grid or random sweep, with the notes on trials that would continue.
pub fn dry_run(spec: &SweepSpec, trials: &[Trial], known: &[TrialRow], plan: &[Registering]) -> String {
    let keys: Vec<String> = spec.parameters.iter().map(|p| p.key.clone()).collect();
    let mut t = Table::new(["#", "run", "status"].into_iter().map(String::from).chain(keys.iter().cloned()).chain(["config".to_string()]));
    for r in dry_run_rows(trials, known, plan) {
        let mut row = vec![r.index.to_string(), r.trial.unwrap_or_else(|| "-".into()), r.status];
        row.extend(keys.iter().map(|k| r.params.get(k).map(fmt_param).unwrap_or_else(|| "-".into())));
        row.push(r.config_hash[..10].to_string());
        t.row(row);
    }
    let (extended, kept) = continuations(plan);
    format!(
        "sweep {} ({}, {} trial(s), {})\n{}{}",
        spec.name,
        spec.method.as_str(),
        trials.len(),
        objectives_said(spec),
        t.render(),
        extension_notes(&extended, &kept, true, spec.early_terminate.as_ref().map(|e| e.kind()))
    )
}

/// What a sweep optimises, in a line: `metric val_iou maximize`, or `objectives val_iou maximize,
/// infer_ms minimize`, then its constraints (`; constraints params <= 2000000`).
pub fn objectives_said(spec: &SweepSpec) -> String {
    let each = |o: &Objective| format!("{} {}", o.name, o.goal.as_str());
    let mut said = match spec.objectives.as_slice() {
        [_, _, ..] => format!("objectives {}", spec.objectives.iter().map(each).collect::<Vec<_>>().join(", ")),
        _ => format!("metric {}", each(&spec.metric)),
    };
    if !spec.constraints.is_empty() {
        let bounds: Vec<String> = spec
            .constraints
            .iter()
            .map(|c| match (c.min, c.max) {
                (Some(lo), Some(hi)) => format!("{} <= {} <= {}", fmt_num(lo), c.metric, fmt_num(hi)),
                (Some(lo), None) => format!("{} >= {}", c.metric, fmt_num(lo)),
                (None, Some(hi)) => format!("{} <= {}", c.metric, fmt_num(hi)),
                (None, None) => c.metric.clone(),
            })
            .collect();
        said.push_str(&format!("; constraints {}", bounds.join(", ")));
    }
    said
}

/// A dry run as JSON: the sweep, its method and objective, and (for grid and random search) the
/// trials as [`dry_run_rows`] gives them; a bayes sweep asks its trials lazily, so it lists only
/// `run_cap` and which trials already recorded would continue or stay.
pub fn dry_run_json(spec: &SweepSpec, trials: &[Trial], known: &[TrialRow], plan: &[Registering]) -> serde_json::Value {
    let (extended, kept) = continuations(plan);
    let mut out = serde_json::json!({
        "sweep": spec.name,
        "method": spec.method.as_str(),
        "metric": spec.metric.name,
        "goal": spec.metric.goal.as_str(),
        "extended": extended,
        "kept": kept,
    });
    if spec.is_lazy() {
        out["run_cap"] = serde_json::json!(spec.run_cap);
        out["startup_trials"] = serde_json::json!(spec.startup_trials());
    } else {
        out["trials"] = serde_json::json!(dry_run_rows(trials, known, plan));
    }
    out
}

/// The trials of a registration plan whose epoch target would rise, and those kept as they are.
pub fn continuations(plan: &[Registering]) -> (Vec<Extension>, Vec<Kept>) {
    let extended = plan.iter().filter_map(|p| if let Registering::Extend(e) = p { Some(e.clone()) } else { None }).collect();
    let kept = plan.iter().filter_map(|p| if let Registering::Keep(k) = p { Some(k.clone()) } else { None }).collect();
    (extended, kept)
}

/// Lines that say which trials continue to a higher epoch target (`would`: in a dry run) and
/// which the file asks for with another target but stay as they are; empty when none.
pub fn extension_notes(extended: &[Extension], kept: &[Kept], would: bool, pruned_by: Option<&str>) -> String {
    let mut out = String::new();
    let list = |trials: &[&Extension]| trials.iter().map(|e| format!("{} ({} -> {} epochs)", e.id, e.from, e.to)).collect::<Vec<_>>().join(", ");
    let (failed, continuing): (Vec<&Extension>, Vec<&Extension>) = extended.iter().partition(|e| e.failed);
    if !continuing.is_empty() {
        let verb = if would { "would continue" } else { "continue" };
        let _ = writeln!(out, "{} trial(s) {verb} from their last checkpoint to the new train.epochs: {}", continuing.len(), list(&continuing));
    }
    if !failed.is_empty() {
        let verb = if would { "would take" } else { "take" };
        let _ =
            writeln!(out, "{} failed trial(s) {verb} the new train.epochs and run again only with --retry-failed: {}", failed.len(), list(&failed));
    }
    // A continued trial passes rungs it had not reached: the pruner judges it there, and it can
    // end pruned where it had completed.
    if let Some(pruner) = pruned_by {
        for e in extended.iter().filter(|e| !e.failed || would) {
            let _ = writeln!(
                out,
                "note: {} {} judged by the {pruner} pruner at each epoch past {} on its way to {}, and may end pruned, not completed",
                e.id,
                if would { "would be" } else { "is" },
                e.from,
                e.to
            );
        }
    }
    for k in kept {
        let _ = writeln!(out, "note: {} {}: it {} as it is", k.id, k.reason, if would { "would stay" } else { "stays" });
    }
    out
}

pub fn epochs_of(metrics: &[MetricRow]) -> BTreeMap<i64, BTreeMap<String, f64>> {
    let mut by_epoch: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
    for m in metrics {
        by_epoch.entry(m.epoch).or_default().insert(m.key(), m.value);
    }
    by_epoch
}

/// The metric columns of a table, split by split, from the keys `recorded`: the built-in
/// trainer's (`train_loss` ... `val_fg_iou`, and `val_full_dice` ... where recorded) unless only a
/// program's metrics are, then every other recorded key of those splits (a program's `val_accuracy`),
/// sorted. `train_lr` and `train_seconds` are left to the callers that show them.
pub fn metric_columns<S: AsRef<str>>(splits: &[&str], recorded: impl IntoIterator<Item = S>) -> Vec<String> {
    let recorded: BTreeSet<String> = recorded.into_iter().map(|k| k.as_ref().to_string()).collect();
    let built_in = |key: &str| {
        key.split_once('_').is_some_and(|(_, m)| METRIC_NAMES.contains(&m) || FULL_RESOLUTION_METRICS.contains(&m))
            || matches!(key, "train_lr" | "train_seconds")
    };
    let trainer = recorded.is_empty() || by_trainer(&recorded);
    let mut columns = Vec::new();
    for split in splits {
        if trainer {
            columns.extend(METRIC_NAMES.iter().map(|m| format!("{split}_{m}")));
            if *split == "val" {
                columns.extend(FULL_RESOLUTION_METRICS.iter().map(|m| format!("val_{m}")).filter(|k| recorded.contains(k)));
            }
        }
        let prefix = format!("{split}_");
        let own = |k: &str| !(matches!(k, "train_lr" | "train_seconds") || (trainer && built_in(k)));
        columns.extend(recorded.iter().filter(|k| k.starts_with(&prefix) && own(k)).cloned());
    }
    columns
}

/// Whether metrics with these keys were recorded by the built-in trainer: only its trials have
/// `gflops` (recorded when claimed), and before the cost metrics it recorded every epoch its
/// duration, its learning rate and the car IoU; a program reports what it likes (and is timed by
/// the worker: `train_seconds` alone says nothing).
fn by_trainer(recorded: &BTreeSet<String>) -> bool {
    recorded.contains("gflops") || ["train_seconds", "train_lr", "val_fg_iou"].iter().all(|k| recorded.contains(*k))
}

/// A program's metric columns for a table of trials (at most `n`, validation first); None for
/// the built-in trainer's trials, whose tables name their metrics themselves.
pub fn program_metrics<S: AsRef<str>>(recorded: impl IntoIterator<Item = S>, n: usize) -> Option<Vec<String>> {
    let recorded: BTreeSet<String> = recorded.into_iter().map(|k| k.as_ref().to_string()).collect();
    if recorded.is_empty() || by_trainer(&recorded) {
        return None;
    }
    Some(metric_columns(&["val", "train"], recorded).into_iter().take(n).collect())
}

/// The per-epoch table of `sweep show`.
pub fn epoch_table(metrics: &[MetricRow]) -> String {
    let columns: Vec<String> = metric_columns(&["train", "val"], metrics.iter().map(MetricRow::key))
        .into_iter()
        .chain(["train_lr".to_string(), "train_seconds".to_string()].into_iter().filter(|k| metrics.iter().any(|m| m.key() == *k)))
        .collect();
    let mut t = Table::new(
        std::iter::once("epoch".to_string()).chain(columns.iter().map(|c| c.replace("train_seconds", "seconds").replace("train_lr", "lr"))),
    );
    for (epoch, values) in epochs_of(metrics) {
        let mut row = vec![epoch.to_string()];
        row.extend(columns.iter().map(|c| cell(values.get(c).copied())));
        t.row(row);
    }
    t.render()
}

/// How long a finished trial took: its wall clock from start to finish, or, when it ran more
/// than once (resumed after a crash, or extended to more epochs), the time its epochs took beside
/// the wall clock since it first started, which holds the idle time between its runs.
pub fn took(run: &TrialRow, metrics: &[MetricRow]) -> Option<String> {
    let (started, finished) = (run.started?, run.finished?);
    let trained: f64 = metrics.iter().filter(|m| m.key() == "train_seconds" && m.value.is_finite()).map(|m| m.value).sum();
    Some(if run.attempt > 1 && trained > 0.0 {
        format!("trained {} over {} runs; {} since it first started", format_duration(trained), run.attempt, format_duration(finished - started))
    } else {
        format!("took {}", format_duration(finished - started))
    })
}

/// A trial's cost metrics in one line (`1,941,105 params, 0.50 GFLOPs an image, infer 3.1 ms,
/// trained 41s`), with what is recorded of them (a program's completed trial: its training time
/// alone); None when none is.
pub fn cost_line(run: &TrialRow) -> Option<String> {
    let parts: Vec<String> = [
        run.last("params").map(|p| format!("{} params", thousands(p))),
        run.last("gflops").map(|g| format!("{g:.2} GFLOPs an image")),
        run.last("infer_ms").map(|ms| format!("infer {} ms", fmt_num(ms))),
        cost_of(run, "train_seconds").map(|s| format!("trained {}", format_duration(s))),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A trial's recorded cost metric `key` ([`crate::config::COST_METRICS`]). Where no cost
/// `train_seconds` is recorded (a trial that has not completed, or one of a tracker older than
/// the cost metrics), the name holds the per-epoch durations' summary, which is not the cost.
pub fn cost_of(run: &TrialRow, key: &str) -> Option<f64> {
    if key == "train_seconds" && !run.costs.contains(key) {
        return None;
    }
    run.last(key)
}

/// A whole number with its thousands apart: 1941105 -> `1,941,105`.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0.0 { format!("-{out}") } else { out }
}

/// `sweep show RUN`.
pub fn show_trial(run: &TrialRow, metrics: &[MetricRow], checkpoints: &[CheckpointRow], objective: &Objective) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "trial        {} (sweep {}, #{})", run.id, run.sweep, run.seq);
    let _ = writeln!(out, "status       {} (attempt {})", run.status.as_str(), run.attempt);
    if let (Some(host), Some(pid)) = (&run.host, run.pid) {
        let _ = writeln!(out, "worker       {host} pid {pid}");
    }
    if let Some(started) = run.started {
        let _ = writeln!(out, "started      {} UTC", format_utc(started));
    }
    match (run.started, run.finished) {
        (Some(_), Some(finished)) => {
            let _ = writeln!(out, "finished     {} UTC ({})", format_utc(finished), took(run, metrics).unwrap_or_default());
        }
        (Some(started), None) if run.status == crate::store::TrialStatus::Running => {
            let beat = run.heartbeat.unwrap_or(started);
            let _ = writeln!(out, "running for  {} (last heartbeat {} UTC)", format_duration(beat - started), format_utc(beat));
        }
        _ => {}
    }
    let _ = writeln!(out, "objective    {} ({})", objective.name, objective.goal.as_str());
    if let Some(cost) = cost_line(run) {
        let _ = writeln!(out, "cost         {cost}");
    }
    let _ = writeln!(
        out,
        "config       {} (seed {}, {})",
        &run.config_hash[..12.min(run.config_hash.len())],
        run.seed,
        run.code_version.as_deref().unwrap_or("?")
    );
    if run.params.is_empty() {
        let _ = writeln!(out, "params       (none swept)");
    }
    for (i, (k, v)) in run.params.iter().enumerate() {
        let _ = writeln!(out, "{:<13}{k} = {}", if i == 0 { "params" } else { "" }, fmt_param(v));
    }
    if !run.tags.is_empty() {
        let _ = writeln!(out, "tags         {}", tags_cell(&run.tags));
    }
    if let Some(note) = &run.note {
        for (i, line) in note.lines().enumerate() {
            let _ = writeln!(out, "{:<13}{line}", if i == 0 { "note" } else { "" });
        }
    }
    if let Some(e) = &run.error {
        // A pruned trial's text is the pruner's reason, not an error.
        let label = if run.status == TrialStatus::Pruned { "pruned       because" } else { "error       " };
        let _ = writeln!(out, "{label} {e}");
    }
    out.push('\n');
    if metrics.is_empty() {
        out.push_str("no epoch recorded yet\n");
    } else {
        out.push_str(&epoch_table(metrics));
    }
    if !checkpoints.is_empty() {
        out.push_str("\ncheckpoints\n");
        for c in checkpoints {
            let _ = writeln!(out, "  {:<5} epoch {:<4} {} = {}  {}", c.kind, c.epoch, objective.name, fmt_num(c.metric_value), c.path);
        }
    }
    // The note keeps its lines; any other control character is shown escaped.
    crate::util::terminal_safe(&out, true).into_owned()
}

/// The leaderboard printed at the end of `sweep run` and by `sweep status`: the top `n` runs by
/// `metric`, with the parameters that vary.
pub fn leaderboard(runs: &[TrialRow], metric: &str, goal: Goal, n: usize) -> String {
    let ranked = crate::store::rank_completed(runs, metric, goal);
    let keys = varying_params(runs);
    let mut t = Table::new(
        ["rank", "run", "status"].into_iter().map(String::from).chain(keys.iter().cloned()).chain([format!("best {metric}"), "epoch".to_string()]),
    );
    for (i, ranked) in ranked.iter().take(n).enumerate() {
        let r = ranked.trial;
        let mut row = vec![(i + 1).to_string(), r.id.clone(), r.status.as_str().into()];
        row.extend(keys.iter().map(|k| r.params.get(k).map(fmt_param).unwrap_or_else(|| "-".into())));
        row.push(fmt_num(ranked.value));
        row.push(ranked.epoch.to_string());
        t.row(row);
    }
    let unranked = runs.iter().filter(|r| r.status != TrialStatus::Completed).count();
    let note = if unranked > 0 { format!("({unranked} trial(s) not completed are not ranked)\n") } else { String::new() };
    if t.is_empty() { format!("no completed trial has a {metric} yet\n{note}") } else { format!("{}{note}", t.render()) }
}

fn setting_value<'a>(r: &'a TrialRow, k: &str) -> Option<&'a serde_json::Value> {
    r.params.get(k).or_else(|| r.settings.get(k))
}

/// The settings whose values differ between `runs` (swept or not, where [`TrialRow::settings`]
/// holds them); for one run, its swept parameters.
pub fn differing_settings(runs: &[TrialRow]) -> Vec<String> {
    if runs.len() < 2 {
        return param_keys(runs);
    }
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys().chain(r.settings.keys())).collect();
    let value = |r: &TrialRow, k: &str| setting_value(r, k).map(fmt_param);
    keys.into_iter().filter(|k| runs.iter().map(|r| value(r, k)).collect::<BTreeSet<_>>().len() > 1).cloned().collect()
}

/// `sweep compare`: the settings that differ (swept or not, from each run's resolved config when
/// [`TrialRow::settings`] holds it; for one run, its swept parameters), then each metric's best and
/// final values.
pub fn compare(runs: &[TrialRow]) -> String {
    let mut out = String::new();
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let value = |r: &TrialRow, k: &str| setting_value(r, k).map(fmt_param);
    let differing = differing_settings(runs);
    let mut t = Table::new(std::iter::once("setting".to_string()).chain(ids.iter().cloned()));
    for k in &differing {
        let mut row = vec![k.clone()];
        row.extend(runs.iter().map(|r| value(r, k).unwrap_or_else(|| "-".into())));
        t.row(row);
    }
    if t.is_empty() {
        out.push_str("the runs share every setting\n");
    } else {
        out.push_str(&t.render());
    }
    out.push('\n');
    out.push_str(&metrics_table(runs));
    out
}

/// The metrics half of `sweep compare`: status, epochs, then each metric's best (with its epoch)
/// and final value, one column per trial.
pub fn metrics_table(runs: &[TrialRow]) -> String {
    let ids = runs.iter().map(|r| r.id.clone());
    let mut t = Table::new(std::iter::once("metric".to_string()).chain(ids));
    let mut row = vec!["status".to_string()];
    row.extend(runs.iter().map(|r| r.status.as_str().to_string()));
    t.row(row);
    let mut row = vec!["epochs".to_string()];
    row.extend(runs.iter().map(|r| r.epochs().to_string()));
    t.row(row);
    for key in metric_columns(&["val", "train"], runs.iter().flat_map(|r| r.metrics.keys())) {
        for (label, best) in [("best", true), ("final", false)] {
            let mut row = vec![format!("{label} {key}")];
            row.extend(runs.iter().map(|r| {
                if best { r.best(&key, Goal::for_metric(&key)).map(|(v, e)| format!("{} @{e}", fmt_num(v))) } else { r.last(&key).map(fmt_num) }
                    .unwrap_or_else(|| "-".into())
            }));
            t.row(row);
        }
    }
    // What each trial's model costs, where recorded (the built-in trainer's trials).
    for key in crate::config::COST_METRICS.iter().filter(|k| runs.iter().any(|r| cost_of(r, k).is_some())) {
        let mut row = vec![key.to_string()];
        row.extend(runs.iter().map(|r| cost_of(r, key).map_or_else(|| "-".into(), fmt_num)));
        t.row(row);
    }
    t.render()
}

/// A float as JSON: finite values as numbers, NaN and infinities as strings.
pub fn json_number(v: f64) -> serde_json::Value {
    match crate::config::nonfinite::kind_name(v) {
        None => serde_json::json!(v),
        Some(k) => serde_json::Value::String(k.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programs_metrics_are_told_from_the_trainers_by_what_only_the_trainer_records() {
        // A timed program (the worker records train_seconds) shows what it reports.
        let program = ["val_acc", "train_loss", "train_seconds"];
        assert_eq!(program_metrics(program, 6), Some(vec!["val_acc".to_string(), "train_loss".to_string()]));
        // The trainer's trials: just claimed (their costs only), and of a tracker older than the
        // cost metrics (no gflops, but the trainer's every-epoch keys).
        assert_eq!(program_metrics(["params", "gflops"], 6), None);
        assert_eq!(program_metrics(["train_seconds", "train_lr", "val_fg_iou", "val_iou"], 6), None);
        let columns = metric_columns(&["val"], ["params", "gflops"]);
        assert_eq!(columns, METRIC_NAMES.iter().map(|m| format!("val_{m}")).collect::<Vec<_>>());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(0.912345), "0.9123");
        assert_eq!(fmt_num(12.0), "12");
        assert_eq!(fmt_num(0.0001), "1e-4");
        assert_eq!(fmt_num(0.00025119), "2.512e-4");
        assert_eq!(fmt_num(f64::NAN), "NaN");
        assert_eq!(fmt_num(1234.5678), "1235");
        assert_eq!(fmt_num(0.5), "0.5");
    }

    #[test]
    fn compare_shows_every_setting_that_differs_swept_or_not() {
        let run = |id: &str, hue: f64, optimizer: &str| {
            let mut config = crate::config::TrialConfig::default();
            config.augment.hue_delta = hue as f32;
            config.train.optimizer = if optimizer == "sgd" { crate::config::OptimizerKind::Sgd } else { crate::config::OptimizerKind::Adam };
            TrialRow {
                id: id.into(),
                sweep: id[..id.len() - 2].into(),
                status: crate::store::TrialStatus::Completed,
                config_hash: config.hash(),
                params: [("augment.hue_delta".to_string(), serde_json::json!(hue))].into(),
                settings: crate::store::settings_of(&config),
                ..TrialRow::default()
            }
        };
        // Runs of two sweeps: the optimiser was not swept in either, but it differs.
        let text = compare(&[run("hue-1", 0.1, "adam"), run("opt-1", 0.1, "sgd")]);
        let table: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
        assert_eq!(table.len(), 2, "{text}");
        assert!(table[1].starts_with("train.optimizer") && table[1].contains("adam") && table[1].contains("sgd"), "{text}");
        assert_eq!(crate::store::settings_of(&crate::config::TrialConfig::default())["augment.hue_delta"], serde_json::json!(0.1));
        let same = compare(&[run("hue-1", 0.1, "adam"), run("hue-2", 0.1, "adam")]);
        assert!(same.starts_with("the runs share every setting"), "{same}");
    }

    #[test]
    fn best_so_far_and_the_leaderboard_rank_completed_trials_ties_by_trial_number() {
        let run = |seq: i64, status: crate::store::TrialStatus, iou: f64| {
            let summary = crate::store::MetricSummary { last_epoch: 1, last: iou, max: Some(iou), max_epoch: Some(1), ..Default::default() };
            TrialRow {
                id: format!("s-{seq}"),
                sweep: "s".into(),
                seq,
                status,
                metrics: [("val_iou".to_string(), summary)].into(),
                ..TrialRow::default()
            }
        };
        use crate::store::TrialStatus::{Completed, Diverged, Failed};
        // In the tracker's order: s-2 and s-10 tie; s-3 failed and s-4 diverged with better values.
        let runs = [run(2, Completed, 0.8), run(3, Failed, 0.9), run(4, Diverged, 0.95), run(5, Completed, 0.7), run(10, Completed, 0.8)];
        let (best, value, _) = best_so_far(&runs, &Objective::default()).unwrap();
        assert_eq!((best.id.as_str(), value), ("s-2", 0.8), "a tie goes to the lower trial number, as in the tracker's best");
        let board = leaderboard(&runs, "val_iou", Goal::Maximize, 10);
        let order: Vec<&str> = board.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).filter(|id| id.starts_with("s-")).collect();
        assert_eq!(order, ["s-2", "s-10", "s-5"], "{board}");
    }

    #[test]
    fn tables_align_and_csv_quotes() {
        let mut t = Table::new(["a", "bb"]);
        t.row(vec!["x".into(), "1.5".into()]);
        t.row(vec!["long".into(), "10".into()]);
        assert_eq!(t.render(), "a      bb\nx     1.5\nlong   10\n");
        assert_eq!(csv_line(&["a,b".into(), "c\"d".into(), "e".into()]), "\"a,b\",\"c\"\"d\",e\n");
    }
}
