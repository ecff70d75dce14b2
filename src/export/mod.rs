//! Exports to the tools people already use: an MLflow tracking server ([`mlflow`], through its
//! REST API), TensorBoard event files ([`tensorboard`]), and CSV or JSON files ([`table`]).
//!
//! All read the same [`TrialData`]: a trial's row, every setting of its resolved config, its
//! per-epoch metrics and its checkpoints, gathered in one read of the tracker through the `Store`
//! trait (exports never write the tracker). Queued trials have nothing to show yet and are left
//! out; every export can be run again at any time and updates what it wrote before.
//!
//! ```
//! use sweep::store::{MetricRow, TrialData, TrialRow};
//! let metric = |epoch, value| MetricRow { epoch, split: "val".into(), name: "iou".into(), value, wall: 0.0 };
//! let trial = TrialData { row: TrialRow { id: "hue-1".into(), sweep: "hue".into(), ..TrialRow::default() },
//!                         metrics: vec![metric(1, 0.5), metric(2, f64::NAN)], checkpoints: Vec::new() };
//! let csv = sweep::export::table::csv(&[trial]);
//! assert_eq!(csv.lines().collect::<Vec<_>>(), ["run,sweep,status,seed,epoch,val_iou", "hue-1,hue,queued,0,1,0.5", "hue-1,hue,queued,0,2,NaN"]);
//! ```

pub mod mlflow;
pub mod table;
pub mod tensorboard;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::store::{Detail, Store, StoreError, TrialData, TrialFilter, TrialStatus};

/// What an export sends: the trials `filter` selects that have started, ordered as the tracker
/// lists them; how many queued ones were skipped; and each sent trial's seed group
/// ([`crate::report::group_ids`], found among every selected trial, queued ones included, so that
/// a group keeps the name `sweep ls --group` gives it).
pub struct Gathered {
    pub trials: Vec<TrialData>,
    pub queued: usize,
    pub groups: BTreeMap<String, String>,
}

/// [`Gathered`] for `filter`.
pub fn gather(store: &dyn Store, filter: &TrialFilter) -> Result<Gathered, StoreError> {
    if let Some(s) = &filter.sweep {
        crate::store::find_sweep(store, s)?;
    }
    let mut trials = store.trial_data(filter, Detail::ALL)?;
    let groups = crate::report::group_ids(&trials);
    let queued = trials.iter().filter(|t| t.row.status == TrialStatus::Queued).count();
    trials.retain(|t| t.row.status != TrialStatus::Queued);
    drop_settings_that_did_not_apply(store, &mut trials)?;
    Ok(Gathered { trials, queued, groups })
}

/// Leaves out of each trial's settings the swept parameters that its sweep's `when` conditions
/// did not apply to it (an Adam trial's `train.momentum` in a sweep that sweeps momentum for SGD
/// only): the value there is a default that played no part, and MLflow's params or TensorBoard's
/// HParams would show it as if it had. A swept parameter is one of the sweep file's (or, if the
/// stored file cannot be read, one some exported trial of the sweep records).
fn drop_settings_that_did_not_apply(store: &dyn Store, trials: &mut [TrialData]) -> Result<(), StoreError> {
    let mut swept: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for info in store.sweeps()? {
        if let Ok(spec) = crate::study::spec::stored(&info) {
            swept.insert(info.name.clone(), spec.parameters.iter().map(|p| p.key.clone()).collect());
        }
    }
    let recorded: BTreeMap<String, BTreeSet<String>> = trials.iter().fold(BTreeMap::new(), |mut acc, t| {
        acc.entry(t.row.sweep.clone()).or_default().extend(t.row.params.keys().cloned());
        acc
    });
    for t in trials.iter_mut() {
        let keys = swept.get(&t.row.sweep).unwrap_or(&recorded[&t.row.sweep]);
        let params = &t.row.params;
        t.row.settings.retain(|k, _| !keys.contains(k) || params.contains_key(k));
    }
    Ok(())
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
