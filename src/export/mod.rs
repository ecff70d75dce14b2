//! Exports to the tools people already use: an MLflow tracking server ([`mlflow`], through its
//! REST API) and TensorBoard event files ([`tensorboard`]).
//!
//! Both read the same [`TrialRecord`]s: a trial's row, every setting of its resolved config, its
//! per-epoch metrics and its checkpoints, gathered once from the tracker through the `Store`
//! trait (exports never write the tracker). Queued trials have nothing to show yet and are left
//! out; both exports can be run again at any time and update what they wrote before.

pub mod mlflow;
pub mod tensorboard;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::store::{CheckpointRow, MetricRow, Store, StoreError, TrialFilter, TrialRow, TrialStatus, settings_of};

/// One trial as the exports see it.
#[derive(Debug, Clone)]
pub struct TrialRecord {
    pub row: TrialRow,
    /// Every setting of the resolved config by dotted key (`train.learning_rate`), swept or not.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Every recorded metric value, ordered by epoch.
    pub metrics: Vec<MetricRow>,
    pub checkpoints: Vec<CheckpointRow>,
}

impl TrialRecord {
    /// The trial's metric values grouped by their export name (`val_iou`), each ordered by epoch.
    pub fn metric_series(&self) -> BTreeMap<String, Vec<&MetricRow>> {
        let mut out: BTreeMap<String, Vec<&MetricRow>> = BTreeMap::new();
        for m in &self.metrics {
            out.entry(metric_key(m)).or_default().push(m);
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

/// A metric's name outside the tracker: `<split>_<name>`, as `sweep ls` and the sweep file call it.
pub fn metric_key(m: &MetricRow) -> String {
    format!("{}_{}", m.split, m.name)
}

/// The trials an export sends: those `filter` selects that have started (queued trials are
/// skipped), ordered as the tracker lists them. Returns the records and how many were skipped.
pub fn gather(store: &dyn Store, filter: &TrialFilter) -> Result<(Vec<TrialRecord>, usize), StoreError> {
    if let Some(s) = &filter.sweep {
        crate::store::find_sweep(store, s)?;
    }
    let rows = store.trials(filter)?;
    let queued = rows.iter().filter(|r| r.status == TrialStatus::Queued).count();
    let records = rows
        .into_iter()
        .filter(|r| r.status != TrialStatus::Queued)
        .map(|row| {
            Ok(TrialRecord {
                settings: settings_of(&store.trial_config(&row.id)?),
                metrics: store.metrics(&row.id)?,
                checkpoints: store.checkpoints(&row.id)?,
                row,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((records, queued))
}

/// What can go wrong exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A flag's value that cannot be used (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached, or the connection broke.
    #[error("MLflow server {url}: {what} failed: {detail}; is the server running and the URL right?")]
    Unreachable { url: String, what: String, detail: String },
    /// The server answered with an error.
    #[error("MLflow server {url}: {what} was refused (HTTP {status}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused { url: String, what: String, status: u16, code: Option<String>, message: String },
    /// The server is in a state the export cannot write to.
    #[error("MLflow server {url}: {message}")]
    State { url: String, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// An export that stopped part-way: what reached the server, and where it stopped.
    #[error("{cause}\n{}", progress_note(done, failed, mlflow_run.as_deref(), *remaining))]
    Incomplete { cause: Box<ExportError>, done: Vec<String>, failed: String, mlflow_run: Option<String>, remaining: usize },
}

fn progress_note(done: &[String], failed: &str, mlflow_run: Option<&str>, remaining: usize) -> String {
    let done = if done.is_empty() { "none".to_string() } else { done.join(", ") };
    let marked = match mlflow_run {
        Some(id) => format!(" (MLflow run {id}, tagged sweep.export = incomplete)"),
        None => String::new(),
    };
    format!(
        "exported completely: {done}; stopped at trial {failed}{marked}; not sent: {remaining} more. \
         Run the same command again: it updates what is there without duplicating it."
    )
}

impl ExportError {
    /// Whether the user's input was wrong (exit code 2); an unreachable or refusing server is a
    /// runtime failure (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ExportError::Usage(_))
    }
}
