//! The tracker: sweeps, runs, their parameters, per-epoch metrics and checkpoints.
//!
//! [`Store`] is the contract every backend keeps (SQLite here, PostgreSQL for multi-machine
//! sweeps); the story test in `tests/common/story.rs` runs against each. The policy that keeps it
//! is written once, in `policy` (the operations), `schema` (the tables) and `sql` (what the
//! policy asks of a backend, and where the two SQL dialects differ); the backend modules hold
//! only what is their engine's own. The guarantees, per operation:
//!
//! - Every state change is one transaction: a reader never sees half of it, and a process killed
//!   at any point leaves the store as it was before the change or after it.
//! - [`Store::enqueue`] never duplicates a trial: a run is identified within its sweep by the hash
//!   of its resolved config, and a config that only raises a run's `train.epochs` continues that
//!   run ([`plan_registration`]).
//! - [`Store::claim`] hands each queued run to exactly one worker, and also takes over a
//!   `running` run whose worker died: its heartbeat is older than `stale_after`, or its worker's
//!   pid is gone on this host ([`Reclaim`]). Each claim increments the run's `attempt`; the
//!   [`Lease`] it returns carries that attempt, and every later write for the run (heartbeat,
//!   epoch, finish) is refused with [`StoreError::LeaseLost`] once another worker holds a newer
//!   attempt, so a worker thought dead cannot overwrite its successor.
//! - The crash rule is one rule, whoever notices the death: a supervisor that saw its worker die
//!   ([`Store::record_crash`]) or a claim that takes over an abandoned run. Each death counts one
//!   crash; `max_attempts` crashes in a row fail the run; only a newly recorded epoch (not one
//!   replayed on resume) starts the count again.
//! - [`Store::log_epoch`] commits an epoch's metrics and its checkpoint rows together (the caller
//!   writes the checkpoint files first). Logging the same epoch again changes nothing: metrics
//!   are kept once per (run, epoch, split, name).
//! - NaN and infinite metric values round-trip (stored as a value plus a kind).
//! - [`Store::history`] reads a sweep's trials and one metric's per-epoch values in one query, so
//!   every trial and value it returns belongs to one committed state.
//! - [`Store::ask`] reads the history, asks the sampler and enqueues its point in one write
//!   transaction that holds the sweep's lock, so askers on any number of machines are
//!   serialised per sweep: each sees the trials the ones before it added, and together they
//!   never exceed the cap, duplicate a config or leave a gap in the run numbers.
//! - [`Store::best`] ranks only `completed` trials (a failed, diverged or pruned trial's value is
//!   not a judgement of its point), ties going to the earlier trial by its number.
//! - [`Store::remove`] removes trials and everything recorded for them in one transaction, and
//!   refuses, removing nothing, when one of them is running; a removed trial's number is never
//!   given again.
//! - Names never escape the runs directory: sweep names are restricted to `[A-Za-z0-9._-]`, and
//!   every value reaches SQL as a bound parameter.

pub mod credentials;
mod policy;
pub mod postgres;
mod read;
mod registration;
mod schema;
mod sql;
pub mod sqlite;
pub mod warm;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Goal;
use crate::config::{Split, TrialConfig};

pub use credentials::redact as redact_url;
pub use postgres::PostgresStore;
pub use read::{
    Detail, Ranked, SeedGroup, TrialData, best_id, best_ranked, group_params, has_seed_groups, leaderboard_order, rank_completed, rank_groups,
};
pub use registration::{EnqueueReport, Extension, Kept, KnownTrial, NewTrial, Registering, SweepRegistration, plan_registration};
pub use sqlite::SqliteStore;

/// A run's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    #[default]
    Queued,
    Running,
    Completed,
    Failed,
    Pruned,
    Diverged,
    /// Stopped by hand (`sweep stop`, the dashboard): never claimed until `sweep resume` queues it
    /// again, when it continues from its last checkpoint.
    Stopped,
    /// A `[[constraints]]` bound broken: before training (a cost known from the settings; no
    /// epoch spent) or when it completed. Never ranked best, and TPE learns its region is bad.
    Infeasible,
}

impl TrialStatus {
    pub const ALL: [TrialStatus; 8] = [
        TrialStatus::Queued,
        TrialStatus::Running,
        TrialStatus::Completed,
        TrialStatus::Failed,
        TrialStatus::Pruned,
        TrialStatus::Diverged,
        TrialStatus::Stopped,
        TrialStatus::Infeasible,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TrialStatus::Queued => "queued",
            TrialStatus::Running => "running",
            TrialStatus::Completed => "completed",
            TrialStatus::Failed => "failed",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Diverged => "diverged",
            TrialStatus::Stopped => "stopped",
            TrialStatus::Infeasible => "infeasible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the run ended without a result to rank: failed or diverged.
    pub fn is_unsuccessful(&self) -> bool {
        matches!(self, TrialStatus::Failed | TrialStatus::Diverged)
    }

    /// Whether the run has ended (it will not be claimed again unless requeued or resumed).
    pub fn is_final(&self) -> bool {
        !matches!(self, TrialStatus::Queued | TrialStatus::Running)
    }
}

/// What a person asks of a trial from outside its worker (`sweep stop`, `sweep prune`, the
/// dashboard's buttons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intervention {
    /// End it as `stopped`, resumable from its last checkpoint.
    Stop,
    /// End it as `pruned`, with the person's note as its reason.
    Prune { note: String },
}

impl Intervention {
    /// The verb: for messages, and as the request a running trial's row keeps (`runs.request`).
    pub fn verb(&self) -> &'static str {
        match self {
            Intervention::Stop => "stop",
            Intervention::Prune { .. } => "prune",
        }
    }

    /// The status a trial ends with when this is done to it.
    pub fn ends_as(&self) -> TrialStatus {
        match self {
            Intervention::Stop => TrialStatus::Stopped,
            Intervention::Prune { .. } => TrialStatus::Pruned,
        }
    }

    /// The reason a trial ended this way keeps (its `error` column, as the pruner's reasons are).
    pub fn reason(&self, id: &str) -> String {
        match self {
            Intervention::Stop => format!("stopped by hand; `sweep resume {id}` continues it from its last checkpoint"),
            Intervention::Prune { note } if note.trim().is_empty() => "pruned by hand".to_string(),
            Intervention::Prune { note } => format!("pruned by hand: {}", note.trim()),
        }
    }
}

/// What [`Store::intervene`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intervened {
    /// The trial was not running: it has its new status already.
    Now(TrialStatus),
    /// The trial is running: its worker reads the request at its next heartbeat and ends it.
    Asked,
}

/// What can go wrong with the tracker.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: not a sweep tracker (the file is not an SQLite database); point --store at another file", path.display())]
    NotADatabase { path: PathBuf },
    #[error(
        "{}: not a sweep tracker but another application's SQLite database (tables {}); it was left untouched: \
         point --store at a new file or at an existing tracker",
        path.display(), tables.join(", ")
    )]
    ForeignDatabase { path: PathBuf, tables: Vec<String> },
    #[error("{}: is a directory; --store takes a tracker file, e.g. {}", path.display(), path.join("sweep.db").display())]
    IsADirectory { path: PathBuf },
    #[error("{}: the tracker is read-only ({detail}); make it writable or choose another file with --store", path.display())]
    ReadOnly { path: PathBuf, detail: String },
    #[error("{}: the disk is full; free some space and run again (nothing recorded so far was lost)", path.display())]
    DiskFull { path: PathBuf },
    #[error(
        "{}: written by a newer sweep (schema version {found}; this build knows up to {supported}); \
         upgrade sweep to read it",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("{}: no tracker here yet; run a sweep first, or point --store at an existing file", path.display())]
    Missing { path: PathBuf },
    #[error("no trial {id:?}{}", suggestion_suffix(suggestions))]
    UnknownTrial { id: String, suggestions: Vec<String> },
    #[error("no sweep {name:?}{}", suggestion_suffix(suggestions))]
    UnknownSweep { name: String, suggestions: Vec<String> },
    #[error("{what} {name:?} {reason}")]
    InvalidName { what: &'static str, name: String, reason: &'static str },
    #[error(
        "{}: this trial directory belongs to the tracker {owner} (id {owner_id}), not to {this} (id {this_id}); \
         nothing in it was changed. Give each tracker its own --runs-dir, or use --store {owner}",
        dir.display()
    )]
    OtherTracker { dir: PathBuf, owner: String, owner_id: String, this: String, this_id: String },
    #[error("trial {run}: lease lost (attempt {attempt} was reclaimed by another worker)")]
    LeaseLost { run: String, attempt: i64 },
    #[error(
        "{}: the tracker file is on a network file system ({fs}), where SQLite's locking is unreliable and \
         concurrent workers can corrupt it; put it on a local disk, or use a PostgreSQL store \
         (--store postgres://user@host/db). Set SWEEP_ALLOW_NETWORK_SQLITE=1 to use it anyway.",
        path.display()
    )]
    NetworkFilesystem { path: PathBuf, fs: &'static str },
    #[error("trial {id} is {}: {}", status.as_str(), intervention_hint(*status, action))]
    CannotIntervene { id: String, status: TrialStatus, action: &'static str },
    #[error("{} running: a running trial is never removed (nothing was removed); wait for it to end, or stop its sweep first", describe_running(ids))]
    Running { ids: Vec<String> },
    #[error("{}: {detail}", path.display())]
    Backend { path: PathBuf, detail: String },
}

fn describe_running(ids: &[String]) -> String {
    match ids {
        [one] => format!("trial {one} is"),
        many => format!("trials {} are", many.join(", ")),
    }
}

/// `action` is a past participle: "stopped", "pruned", "resumed".
fn intervention_hint(status: TrialStatus, action: &str) -> String {
    match (action, status) {
        ("resumed", TrialStatus::Queued | TrialStatus::Running) => "only a stopped trial is resumed; this one is under way already".to_string(),
        ("resumed", _) => "only a stopped trial is resumed; this one has ended".to_string(),
        ("stopped", TrialStatus::Stopped) => "it is stopped already".to_string(),
        _ => format!("only a queued, running (or, to prune, stopped) trial can be {action}; this one has ended"),
    }
}

fn suggestion_suffix(s: &[String]) -> String {
    if s.is_empty() { String::new() } else { format!("; did you mean {}?", s.join(" or ")) }
}

impl StoreError {
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StoreError::NotADatabase { .. }
                | StoreError::ForeignDatabase { .. }
                | StoreError::IsADirectory { .. }
                | StoreError::OtherTracker { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::NewerSchema { .. }
                | StoreError::Missing { .. }
                | StoreError::UnknownTrial { .. }
                | StoreError::UnknownSweep { .. }
                | StoreError::InvalidName { .. }
                | StoreError::NetworkFilesystem { .. }
                | StoreError::Running { .. }
                | StoreError::CannotIntervene { .. }
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Checks a sweep name: it becomes a directory under the runs directory and a run-id prefix.
pub fn validate_sweep_name(name: &str) -> StoreResult<()> {
    let invalid = |reason| Err(StoreError::InvalidName { what: "sweep name", name: name.to_string(), reason });
    if name.is_empty() || name.len() > 64 {
        return invalid("must have 1 to 64 characters");
    }
    if name.starts_with('.') || name.contains("..") {
        return invalid("must not start with '.' or contain '..'");
    }
    if name.starts_with('-') {
        return invalid("must not start with '-' (it would read as an option on a command line)");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return invalid("may only contain letters, digits, '_', '-' and '.' (no '/' or spaces)");
    }
    Ok(())
}

/// Checks a run id given on the command line before it is used to build a path.
pub fn validate_trial_id(id: &str) -> StoreResult<()> {
    validate_sweep_name(id).map_err(|_| StoreError::InvalidName {
        what: "trial id",
        name: id.to_string(),
        reason: "is not a trial id (ids look like hue-3)",
    })
}

/// Checks a tag's name (`sweep tag TRIAL name=value`): 1 to 64 letters, digits, '_', '-' and '.',
/// starting with a letter or digit, so that `--where tag.<name> = ...` can name it; names under
/// `sweep.` and `mlflow.` are the exports' own.
pub fn validate_tag_name(name: &str) -> StoreResult<()> {
    let invalid = |reason| Err(StoreError::InvalidName { what: "tag name", name: name.to_string(), reason });
    if name.is_empty() || name.len() > 64 {
        return invalid("must have 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return invalid("must start with a letter or digit and hold only letters, digits, '_', '-' and '.'");
    }
    if name.starts_with("sweep.") || name.starts_with("mlflow.") {
        return invalid("is reserved: names under sweep. and mlflow. are the tags the MLflow export writes");
    }
    Ok(())
}

/// Who is claiming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    pub host: String,
    pub pid: u32,
}

impl WorkerInfo {
    pub fn this_process() -> Self {
        Self { host: crate::util::hostname(), pid: std::process::id() }
    }
}

/// When a claim takes over a `running` run whose worker died, and when it fails the run instead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reclaim {
    /// A run whose heartbeat is older than this many seconds is abandoned (its worker, on any
    /// machine, is presumed dead). A run whose worker's pid is gone on this host is abandoned at
    /// once.
    pub stale_after: f64,
    /// A run whose worker died this many times in a row, without recording a new epoch in
    /// between, fails instead of being taken over again.
    pub max_attempts: i64,
}

impl Reclaim {
    /// `--max-attempts`' default.
    pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;

    /// Runs abandoned for `stale_after` seconds are taken over, up to the default attempts.
    pub fn after(stale_after: f64) -> Self {
        Self { stale_after, max_attempts: Self::DEFAULT_MAX_ATTEMPTS }
    }
}

/// The right to write for one attempt of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The trial's id.
    pub trial: String,
    pub attempt: i64,
}

/// A claimed run: its lease and what the worker needs to train it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub lease: Lease,
    pub sweep: String,
    pub config: TrialConfig,
    pub params: BTreeMap<String, serde_json::Value>,
    /// Whether an earlier attempt started it (a checkpoint may exist to resume from).
    pub resumed: bool,
}

/// One metric value of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub split: Split,
    pub name: String,
    pub value: f64,
}

/// A checkpoint row: the file a run's `best` or `last` points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointRow {
    pub kind: String,
    pub epoch: i64,
    pub path: String,
    #[serde(with = "crate::config::nonfinite")]
    pub metric_value: f64,
}

/// One epoch to record.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLog {
    pub epoch: i64,
    pub wall: f64,
    pub metrics: Vec<MetricValue>,
    pub checkpoints: Vec<CheckpointRow>,
}

/// One stored metric value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    pub epoch: i64,
    pub split: String,
    pub name: String,
    #[serde(with = "crate::config::nonfinite")]
    pub value: f64,
    pub wall: f64,
}

/// Per (run, split, metric): the final value and the extremes over epochs (finite values only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct MetricSummary {
    pub last_epoch: i64,
    #[serde(with = "crate::config::nonfinite")]
    pub last: f64,
    pub min: Option<f64>,
    pub min_epoch: Option<i64>,
    pub max: Option<f64>,
    pub max_epoch: Option<i64>,
}

impl MetricSummary {
    /// The best value and its epoch in the direction `goal`.
    pub fn best(&self, goal: Goal) -> Option<(f64, i64)> {
        match goal {
            Goal::Minimize => self.min.zip(self.min_epoch),
            Goal::Maximize => self.max.zip(self.max_epoch),
        }
    }
}

/// A run as listed: its row, parameters and metric summaries (keyed `<split>_<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TrialRow {
    pub id: String,
    pub sweep: String,
    pub seq: i64,
    pub status: TrialStatus,
    pub attempt: i64,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub created: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub heartbeat: Option<f64>,
    pub error: Option<String>,
    pub code_version: Option<String>,
    pub config_hash: String,
    pub seed: i64,
    pub params: BTreeMap<String, serde_json::Value>,
    pub metrics: BTreeMap<String, MetricSummary>,
    /// The keys of `metrics` that hold a cost metric (split `cost`). `train_seconds` names both a
    /// trial's cost (its epochs' total, recorded when it completes) and, before that, the summary
    /// of its per-epoch durations (split `train`): only this says which one `metrics` holds.
    #[serde(skip)]
    pub costs: BTreeSet<String>,
    /// Tags people put on the trial (`sweep tag`).
    pub tags: BTreeMap<String, String>,
    /// The trial's note (`sweep note`).
    pub note: Option<String>,
    /// Settings of the resolved config beyond the swept `params`, by dotted key; filled only
    /// where a query asks for them (see [`settings_of`]), empty otherwise.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// A resolved config as dotted settings: `train.learning_rate` -> 0.001, `metric.name` ->
/// "val_iou", every key a sweep file can set.
pub fn settings_of(config: &TrialConfig) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    if let Ok(serde_json::Value::Object(sections)) = serde_json::to_value(config) {
        for (section, value) in sections {
            match value {
                // A program's parameters are settings under their own names, as they are swept.
                serde_json::Value::Object(mut keys) if section == "program" => {
                    if let Some(serde_json::Value::Object(params)) = keys.remove("params") {
                        out.extend(params);
                    }
                    out.extend(keys.into_iter().map(|(k, v)| (format!("program.{k}"), v)));
                }
                serde_json::Value::Object(keys) => out.extend(keys.into_iter().map(|(k, v)| (format!("{section}.{k}"), as_written(v)))),
                other => drop(out.insert(section, other)),
            }
        }
    }
    // Left out of the canonical JSON at its default; a setting all the same.
    out.entry("data.split_by".to_string()).or_insert_with(|| serde_json::json!("image"));
    out.entry("data.eval_full_resolution".to_string()).or_insert_with(|| serde_json::json!(false));
    out
}

/// A number stored as `f32` (`augment.hue_delta`) reads back as the decimal a user wrote (0.1),
/// not as its widened `f64` (0.10000000149011612), so that `hue_delta = 0.1` matches.
fn as_written(v: serde_json::Value) -> serde_json::Value {
    match v.as_f64() {
        Some(x) if v.is_f64() && (x as f32) as f64 == x => {
            (x as f32).to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(v, serde_json::Value::Number)
        }
        _ => v,
    }
}

/// Whether `name` is a dotted config setting (`train.learning_rate`).
pub fn is_setting(name: &str) -> bool {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| settings_of(&TrialConfig::default()).into_keys().collect()).iter().any(|k| k == name)
}

impl TrialRow {
    /// The best value of `<split>_<metric>` over the run's epochs, with its epoch.
    pub fn best(&self, metric: &str, goal: Goal) -> Option<(f64, i64)> {
        self.metrics.get(metric)?.best(goal)
    }

    /// The final epoch's value of a metric.
    pub fn last(&self, metric: &str) -> Option<f64> {
        self.metrics.get(metric).map(|m| m.last)
    }

    /// Recorded epochs: the latest epoch of any metric.
    pub fn epochs(&self) -> i64 {
        self.metrics.values().map(|m| m.last_epoch).max().unwrap_or(0)
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct TrialFilter {
    pub sweep: Option<String>,
    pub status: Option<TrialStatus>,
}

/// A sweep as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepInfo {
    pub name: String,
    pub spec: String,
    pub spec_hash: String,
    pub created: f64,
    /// The last activity: the sweep file's registration, or a trial's queueing, start, heartbeat
    /// (every epoch) or end, whichever is latest.
    pub updated: f64,
    pub counts: BTreeMap<String, i64>,
}

/// A batch job that runs workers for a sweep (a SLURM job array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub sweep: String,
    /// `slurm`.
    pub launcher: String,
    pub job_id: String,
    pub workers: i64,
    /// Where the submitted script was written.
    pub script: String,
    pub submitted: f64,
}

/// One trial as a sampler sees it: what it tried, how it ended, and one metric per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialHistory {
    pub id: String,
    pub seq: i64,
    pub status: TrialStatus,
    /// The swept parameters and their values, as enqueued: shared, since a trial's never change
    /// and a sampler reads every trial's at each ask (see `policy::parsed_params`).
    pub params: std::sync::Arc<BTreeMap<String, serde_json::Value>>,
    /// The metric's value at each recorded epoch that the [`HistoryView`] read holds (NaN and
    /// infinities as recorded).
    pub values: BTreeMap<i64, f64>,
    /// Of each of the `others` metrics [`Store::ask`] names (a sweep's other objectives and its
    /// constraints' metrics), what the trial recorded; absent where it recorded none.
    pub extremes: BTreeMap<String, Extremes>,
}

/// A trial's record of one metric in brief, from the per-metric summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extremes {
    /// The lowest and highest finite values (a cost's one value, twice).
    pub lowest: Option<f64>,
    pub highest: Option<f64>,
    /// The deepest epoch's value (NaN and infinities as recorded).
    pub last: f64,
}

/// How much of each trial's record of a metric [`Store::history`] reads. Samplers and pruners
/// each read one narrow view, so that asking for a trial or judging an epoch costs about one row
/// a trial however many epochs the sweep's trials trained (a sweep of 10,000 trials of 50 epochs
/// holds 500,000 values of its objective).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryView<'a> {
    /// Every recorded epoch.
    Full,
    /// Only the epochs that hold a trial's lowest and highest finite values and its deepest
    /// epoch, read from the per-metric summary: all a sampler reads (a trial's best value in
    /// either direction, how deep it got and its value there, its point).
    Summary,
    /// What a pruner reads to judge trial `trial` after `epoch`: that trial's values up to
    /// `epoch`, and of the other trials what `peers` says. Epochs after `epoch` are left out, and
    /// so are the points (`params` is empty): no pruner reads them.
    Judging { trial: &'a str, epoch: i64, peers: PeerValues },
}

/// What [`HistoryView::Judging`] reads of the trials other than the judged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerValues {
    /// Nothing: the judged trial is the only one answered.
    None,
    /// Their values at the epoch.
    AtEpoch,
    /// Their values up to the epoch.
    UpToEpoch,
}

/// The best trial by a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct BestTrial {
    pub trial: TrialRow,
    pub value: f64,
    pub epoch: i64,
}

/// The tracker's contract. See the module documentation for the guarantees each backend keeps.
pub trait Store: Send {
    /// Where the store lives, for messages.
    fn location(&self) -> String;

    /// The tracker's identity: drawn once when the tracker is created and never changed, so that
    /// a trial directory can say which tracker it belongs to.
    fn tracker_id(&self) -> StoreResult<String>;

    /// Records a sweep's spec (the file as written). A spec that differs from the stored one is
    /// recorded as a new version and reported, never silently replaced.
    fn register_sweep(&mut self, name: &str, spec: &str) -> StoreResult<SweepRegistration>;

    /// Adds the trials whose config hash the sweep does not have yet, as `queued` runs with ids
    /// `<sweep>-<n>`, in the given order, in one transaction; a trial that only raises the
    /// epoch target of one the sweep has continues that one instead (its config and hash become
    /// the new ones, a completed one is queued again, see [`plan_registration`]).
    fn enqueue(&mut self, sweep: &str, trials: &[NewTrial]) -> StoreResult<EnqueueReport>;

    /// Raises the epoch targets as [`Store::enqueue`] would, and adds no trial: for a sweep whose
    /// trials a sampler asks for (TPE), `trials` are its trials' points under the current file.
    fn extend(&mut self, sweep: &str, trials: &[NewTrial]) -> StoreResult<EnqueueReport>;

    /// Puts the sweep's `failed` runs back in the queue with their crash count reset; returns
    /// how many. `diverged` runs stay: a diverged trial is a result (the same config and seed
    /// diverge again), not a failure to retry.
    fn requeue_failed(&mut self, sweep: &str) -> StoreResult<usize>;

    /// Claims the next run of `sweep` (or of any sweep): first a `running` one whose worker died
    /// (see [`Reclaim`]; taking it over counts a crash, and a run at `max_attempts` crashes is
    /// failed instead), then the lowest-numbered `queued` run.
    fn claim(&mut self, sweep: Option<&str>, worker: &WorkerInfo, reclaim: &Reclaim) -> StoreResult<Option<Claim>>;

    /// Refreshes the lease's heartbeat, returning what a person asked of the trial meanwhile
    /// ([`Store::intervene`]), if anything. Fails with `LeaseLost` if the run was reclaimed.
    fn heartbeat(&mut self, lease: &Lease) -> StoreResult<Option<Intervention>>;

    /// Records one epoch's metrics and checkpoint rows together, and refreshes the heartbeat.
    fn log_epoch(&mut self, lease: &Lease, epoch: &EpochLog) -> StoreResult<()>;

    /// Ends the run with `status` (completed, failed, pruned, diverged, stopped) and an optional error.
    /// Ending it again the same way under the same lease is recognised as done (a retried write).
    fn finish(&mut self, lease: &Lease, status: TrialStatus, error: Option<&str>) -> StoreResult<()>;

    /// Gives the run back to the queue (a worker stopped on request); it resumes later.
    fn release(&mut self, lease: &Lease) -> StoreResult<()>;

    /// A worker process died while holding `lease`: the run goes back to the queue, or is marked
    /// failed with `message` once `max_attempts` attempts in a row died before recording a new
    /// epoch (an epoch replayed from a checkpoint on resume is not progress).
    fn record_crash(&mut self, lease: &Lease, message: &str, max_attempts: i64) -> StoreResult<TrialStatus>;

    /// Every sweep with its run counts per status.
    fn sweeps(&self) -> StoreResult<Vec<SweepInfo>>;

    /// Runs matching `filter`, ordered by sweep and number, with params and metric summaries.
    fn trials(&self, filter: &TrialFilter) -> StoreResult<Vec<TrialRow>>;

    /// One run by id.
    fn trial(&self, id: &str) -> StoreResult<TrialRow>;

    /// The trials `filter` selects, in (sweep, seq) order, each with what `detail` asks for, read
    /// in one transaction with one query per table (never one per trial).
    fn trial_data(&self, filter: &TrialFilter, detail: Detail) -> StoreResult<Vec<TrialData>>;

    /// One trial with what `detail` asks for; an unknown id is `UnknownTrial` with a suggestion.
    fn trial_data_of(&self, id: &str, detail: Detail) -> StoreResult<TrialData>;

    /// One run's resolved config.
    fn trial_config(&self, id: &str) -> StoreResult<TrialConfig>;

    /// Every metric value of a run, by epoch, split and name.
    fn metrics(&self, id: &str) -> StoreResult<Vec<MetricRow>>;

    /// A run's checkpoint rows.
    fn checkpoints(&self, id: &str) -> StoreResult<Vec<CheckpointRow>>;

    /// Every trial of `sweep` in `seq` order, each with the values of `metric` (`<split>_<name>`,
    /// e.g. `val_iou`) by epoch that `view` asks for; read in one query, so the answer is one
    /// committed state. An unknown sweep is [`StoreError::UnknownSweep`] (a known one without
    /// trials answers empty).
    fn history(&self, sweep: &str, metric: &str, view: HistoryView) -> StoreResult<Vec<TrialHistory>>;

    /// Of each trial of the sweep that recorded `metric` (`<split>_<name>`, or a cost), its
    /// number and its record of it in brief, by number.
    fn extremes(&self, sweep: &str, metric: &str) -> StoreResult<BTreeMap<i64, Extremes>>;

    /// Adds the sweep's next trial as `sample` picks it from the sweep's history (of `metric`, in
    /// the [`HistoryView::Summary`] view: what a sampler reads),
    /// in one write transaction that holds the sweep's lock (SQLite: the whole file, taken by
    /// `BEGIN IMMEDIATE`; PostgreSQL: the sweep's row, `FOR UPDATE`), so that concurrent askers
    /// each see the trials added before them. Returns the new trial's id (`<sweep>-<n>`, enqueued
    /// as [`Store::enqueue`] would); None when the sweep already has `cap` trials (then `sample`
    /// is not called), when `sample` returns None, or when its trial's config is already in the
    /// sweep. An unknown sweep is [`StoreError::UnknownSweep`].
    ///
    /// On PostgreSQL a transaction cut by a lost connection is run again, `sample` with it, so
    /// `sample` may be called more than once: pass a deterministic function of the history. A
    /// transaction rolled back by the cut adds nothing; one whose commit went through but whose
    /// reply was lost is seen by the retry as part of the history, which may then add one more
    /// trial (the cap and the no-duplicate rule still hold).
    fn ask(
        &mut self,
        sweep: &str,
        metric: &str,
        others: &[&str],
        cap: Option<usize>,
        sample: &mut dyn FnMut(Vec<TrialHistory>) -> Option<NewTrial>,
    ) -> StoreResult<Option<String>>;

    /// The completed trial whose best epoch is best by `metric` (`<split>_<name>`) in direction
    /// `goal`: [`rank_completed`]'s first (ties go to the lower trial number; failed, diverged,
    /// pruned, queued and running trials never rank).
    fn best(&self, metric: &str, goal: Goal, sweep: Option<&str>) -> StoreResult<Option<BestTrial>>;

    /// Remembers a submitted batch job of a sweep (so that `status` can ask the scheduler).
    /// Recording the same (launcher, job id) again changes nothing.
    fn record_job(&mut self, job: &JobRow) -> StoreResult<()>;

    /// The batch jobs of a sweep (or of all), oldest first.
    fn jobs(&self, sweep: Option<&str>) -> StoreResult<Vec<JobRow>>;

    /// Sets tags of a trial (`Some(value)`) and removes others (`None`), in one transaction.
    /// Names are checked with [`validate_tag_name`]; an unknown trial is
    /// [`StoreError::UnknownTrial`].
    fn tag(&mut self, id: &str, changes: &[(String, Option<String>)]) -> StoreResult<()>;

    /// Stops or prunes a trial by hand: a queued one (or, to prune, a stopped one) at once, a
    /// running one through its worker, which reads the request at its next heartbeat and ends
    /// the trial with [`Intervention::reason`]. Any other status is
    /// [`StoreError::CannotIntervene`]; asking a running trial twice keeps the last request.
    fn intervene(&mut self, id: &str, intervention: &Intervention) -> StoreResult<Intervened>;

    /// Queues a stopped trial again: the next claim continues it from its last checkpoint.
    /// Any other status is [`StoreError::CannotIntervene`].
    fn resume(&mut self, id: &str) -> StoreResult<()>;

    /// Replaces the trial's note; None or an empty text clears it.
    fn set_note(&mut self, id: &str, note: Option<&str>) -> StoreResult<()>;

    /// Removes trials with their configs, parameters, metrics, checkpoint rows and tags, in one
    /// transaction, and returns their rows as they were. Nothing is removed when one of them is
    /// running ([`StoreError::Running`], naming them) or unknown. The removed trials' numbers are
    /// kept (table `removed_runs`), so that a config enqueued again gets a new id.
    fn remove(&mut self, ids: &[String]) -> StoreResult<Vec<TrialRow>>;

    /// Removes a sweep: every trial as [`Store::remove`] does, then the sweep itself (its file and
    /// its versions, its jobs, its removed trials' numbers), in one transaction, returning the
    /// trials' rows. Nothing is removed when one of its trials is running. The name is free
    /// afterwards: a new sweep under it numbers its trials from 1.
    fn remove_sweep(&mut self, name: &str) -> StoreResult<Vec<TrialRow>>;
}

/// The sweep called `name`, or an error that suggests the closest name the tracker has.
pub fn find_sweep(store: &dyn Store, name: &str) -> StoreResult<SweepInfo> {
    let sweeps = store.sweeps()?;
    if let Some(found) = sweeps.iter().find(|s| s.name == name) {
        return Ok(found.clone());
    }
    let names = sweeps.iter().map(|s| s.name.as_str());
    Err(StoreError::UnknownSweep {
        name: name.to_string(),
        suggestions: crate::util::did_you_mean(name, names).map(|s| vec![s.to_string()]).unwrap_or_default(),
    })
}

/// The kept checkpoint that holds `epoch`: the `best` one if it is of that epoch, else the `last`
/// one if it is; None when neither is (a trial keeps only those two).
pub fn checkpoint_for_epoch(checkpoints: &[CheckpointRow], epoch: i64) -> Option<&CheckpointRow> {
    let of_kind = |kind: &str| checkpoints.iter().find(|c| c.kind == kind && c.epoch == epoch);
    of_kind("best").or_else(|| of_kind("last"))
}

/// Whether `location` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens the tracker at `location`: a `postgres://` URL, or a SQLite file path. With `create`, a
/// missing SQLite file is created; without, it must exist (commands that only read).
pub fn open(location: &str, create: bool) -> StoreResult<Box<dyn Store>> {
    if is_postgres(location) {
        return Ok(Box::new(PostgresStore::open(location)?));
    }
    let path = std::path::Path::new(location);
    let store = if create { SqliteStore::open(path)? } else { SqliteStore::open_existing(path)? };
    Ok(Box::new(store))
}

/// [`open`] for a command a person waits on: an unreachable PostgreSQL server is an error after
/// [`postgres::INTERACTIVE_RETRY_FOR`], not after a worker's five minutes. The tracker must exist.
pub fn open_interactive(location: &str) -> StoreResult<Box<dyn Store>> {
    if is_postgres(location) {
        return Ok(Box::new(PostgresStore::open_with(location, postgres::INTERACTIVE_RETRY_FOR)?));
    }
    open(location, false)
}

/// The version of this build, recorded with every run.
pub fn code_version() -> String {
    format!("sweep {}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_trial(epochs: usize, params: &[(&str, serde_json::Value)]) -> NewTrial {
        let config = TrialConfig::default().with_epochs(epochs);
        NewTrial { config, params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() }
    }

    fn known(id: &str, seq: i64, status: TrialStatus, epochs: usize) -> KnownTrial {
        let config = TrialConfig::default().with_epochs(epochs);
        KnownTrial { id: id.into(), seq, status, config_hash: config.hash(), config }
    }

    #[test]
    fn a_higher_epoch_target_continues_the_trial_with_the_most_epochs_unless_it_runs() {
        let plan =
            |status, trial: &NewTrial| plan_registration(std::slice::from_ref(trial), &[known("s-1", 1, status, 2), known("s-2", 2, status, 3)]);
        let extend = Registering::Extend(Extension { id: "s-2".into(), from: 3, to: 5, requeued: true, failed: false });
        assert_eq!(plan(TrialStatus::Completed, &new_trial(5, &[])), [extend]);
        assert_eq!(plan(TrialStatus::Completed, &new_trial(3, &[])), [Registering::Known("s-2".into())]);
        assert!(matches!(&plan(TrialStatus::Running, &new_trial(5, &[]))[0], Registering::Keep(k) if k.reason.starts_with("is running")));
        assert!(matches!(&plan(TrialStatus::Queued, &new_trial(5, &[]))[0], Registering::Extend(e) if !e.requeued));
        assert_eq!(plan(TrialStatus::Completed, &new_trial(5, &[("train.epochs", serde_json::json!(5))])), [Registering::New], "a swept epoch count");
    }

    #[test]
    fn a_trial_the_file_asks_for_is_never_taken_over_by_another_epoch_target() {
        let known = [known("s-1", 1, TrialStatus::Completed, 2)];
        let plan = plan_registration(&[new_trial(2, &[]), new_trial(4, &[])], &known);
        assert_eq!(plan, [Registering::Known("s-1".into()), Registering::New]);
    }
}
