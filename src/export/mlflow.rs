//! `sweep export --format mlflow`: trials sent to an MLflow tracking server through its REST API
//! (`/api/2.0/mlflow/...`), one experiment per sweep and one MLflow run per trial.
//!
//! An export can be repeated: the MLflow run of a trial is found by its `sweep.trial` tag (one
//! `runs/search` per experiment), and only what the server lacks is sent: missing params, the
//! metric steps its history does not have yet (read back with `metrics/get-history`), then the
//! tags and status, which MLflow overwrites. Nothing is deleted and re-logged, so an MLflow run
//! keeps its id, its links and whatever people added to it in MLflow's UI. A run being exported
//! carries `sweep.export = incomplete` until its last request succeeds, so an export interrupted
//! by a server that goes away leaves a mark on the one run it was writing.
//!
//! The tags people put on a trial (`sweep tag`) go under their own names and its note (`sweep
//! note`) as `mlflow.note.content`, the run's description. `sweep.tags` lists the names the
//! export wrote, so that a tag removed from the trial (or a note cleared) is deleted from the
//! run by the next export, while tags added in MLflow's UI are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Goal;

use super::ExportError;
use crate::store::TrialData;
use crate::store::TrialStatus;

/// MLflow's limits for one `runs/log-batch` request.
const MAX_BATCH_ITEMS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
/// MLflow 2.x keeps tag values up to 5000 characters (later versions more).
const MAX_TAG_CHARS: usize = 5000;
/// The tag that finds a trial's MLflow run again.
pub const TRIAL_TAG: &str = "sweep.trial";

/// The tag naming a trial's seed group (its first trial's id), where its sweep trained a
/// configuration with several seeds.
pub const GROUP_TAG: &str = "sweep.group";
/// `incomplete` while a run is being written, `complete` once everything reached the server.
pub const EXPORT_TAG: &str = "sweep.export";

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct MlflowTarget {
    /// The tracking server, e.g. `http://127.0.0.1:5000`.
    pub url: String,
    /// One experiment for every exported sweep, instead of one per sweep named after it.
    pub experiment: Option<String>,
    /// Also upload each trial's best checkpoint (and its chart, when drawn) as artifacts.
    pub artifacts: bool,
    /// The runs directory, where the charts of a sweep are drawn.
    pub runs_dir: PathBuf,
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MlflowReport {
    /// (experiment name, experiment id) per experiment written to.
    pub experiments: Vec<(String, String)>,
    pub created: Vec<String>,
    pub updated: Vec<String>,
    /// Metric values sent (values already on the server are not sent again).
    pub metric_values: usize,
    pub artifacts: usize,
}

/// The MLflow run status of a trial.
pub fn run_status(status: TrialStatus) -> &'static str {
    match status {
        // (Queued trials are not exported: nothing is recorded for them yet.)
        TrialStatus::Queued => "SCHEDULED",
        TrialStatus::Running => "RUNNING",
        TrialStatus::Completed => "FINISHED",
        TrialStatus::Failed | TrialStatus::Diverged => "FAILED",
        TrialStatus::Pruned | TrialStatus::Stopped | TrialStatus::Infeasible => "KILLED",
    }
}

/// MLflow's own tag for a run's description (the "Description" of its page).
pub const NOTE_TAG: &str = "mlflow.note.content";
/// The names of the trial's own tags (and of the note's tag) the export wrote, comma-separated.
pub const USER_TAGS_TAG: &str = "sweep.tags";

/// The tags of a trial's MLflow run: ours under `sweep.`, the tags people put on the trial under
/// their own names (which `validate_tag_name` keeps out of `sweep.` and `mlflow.`), and the
/// trial's note as the run's description.
pub fn run_tags(rec: &TrialData) -> Vec<(String, String)> {
    let r = &rec.row;
    let mut tags = vec![
        ("mlflow.runName".to_string(), r.id.clone()),
        ("sweep.sweep".to_string(), r.sweep.clone()),
        (TRIAL_TAG.to_string(), r.id.clone()),
        ("sweep.config_hash".to_string(), r.config_hash.clone()),
        ("sweep.status".to_string(), r.status.as_str().to_string()),
    ];
    if let Some(reason) = rec.reason() {
        tags.push(("sweep.reason".to_string(), truncate(reason, MAX_TAG_CHARS)));
    }
    tags.extend(r.tags.iter().map(|(k, v)| (k.clone(), truncate(v, MAX_TAG_CHARS))));
    if let Some(note) = &r.note {
        tags.push((NOTE_TAG.to_string(), truncate(note, MAX_TAG_CHARS)));
    }
    tags.push((USER_TAGS_TAG.to_string(), user_tag_names(rec).into_iter().collect::<Vec<_>>().join(",")));
    tags
}

/// The names of the tags that carry the trial's own tags and note.
fn user_tag_names(rec: &TrialData) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = rec.row.tags.keys().cloned().collect();
    if rec.row.note.is_some() {
        names.insert(NOTE_TAG.to_string());
    }
    names
}

/// The first `max` characters of `text`.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A setting's value as an MLflow param: strings as they are, anything else as JSON.
pub fn param_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sends `records` to the server; see the module documentation for what is sent and when.
/// `groups`: each trial's seed group ([`super::Gathered`]), sent as the tag `sweep.group`.
pub fn export(target: &MlflowTarget, records: &[TrialData], groups: &BTreeMap<String, String>) -> Result<MlflowReport, ExportError> {
    let client = Client::new(&target.url)?;
    let mut report = MlflowReport::default();
    let mut done = Vec::new();
    let mut experiments: BTreeMap<String, (String, BTreeMap<String, ExistingRun>)> = BTreeMap::new();
    for (i, rec) in records.iter().enumerate() {
        let fail = |cause: ExportError, mlflow_run: Option<String>, done: &Vec<String>| ExportError::Incomplete {
            cause: Box::new(cause),
            done: done.clone(),
            failed: rec.row.id.clone(),
            mlflow_run,
            remaining: records.len() - i - 1,
        };
        let name = target.experiment.clone().unwrap_or_else(|| rec.row.sweep.clone());
        if !experiments.contains_key(&name) {
            let id = client.experiment_id(&name).map_err(|e| fail(e, None, &done))?;
            let runs = client.sweep_runs(&id).map_err(|e| fail(e, None, &done))?;
            report.experiments.push((name.clone(), id.clone()));
            experiments.insert(name.clone(), (id, runs));
        }
        let (experiment_id, runs) = &experiments[&name];
        let (run_id, existing) = match runs.get(&rec.row.id) {
            Some(run) => (run.run_id.clone(), Some(run)),
            None => (client.create_run(experiment_id, rec).map_err(|e| fail(e, None, &done))?, None),
        };
        let group = groups.get(&rec.row.id).map(String::as_str);
        let sent = export_trial(&client, target, &run_id, rec, group, existing).map_err(|e| fail(e, Some(run_id.clone()), &done))?;
        report.metric_values += sent.metric_values;
        report.artifacts += sent.artifacts;
        if existing.is_some() { &mut report.updated } else { &mut report.created }.push(rec.row.id.clone());
        done.push(rec.row.id.clone());
    }
    Ok(report)
}

/// A trial's MLflow run as the server has it.
#[derive(Debug, Clone, Default)]
struct ExistingRun {
    run_id: String,
    params: BTreeSet<String>,
    tags: BTreeSet<String>,
    /// The trial's own tags an earlier export wrote (its `sweep.tags`).
    user_tags: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Sent {
    metric_values: usize,
    artifacts: usize,
}

/// Writes what `run_id` lacks of `rec`: params, metric steps, tags, artifacts, then its status.
/// `group` is the trial's seed group, where its sweep has them (tag `sweep.group`).
fn export_trial(
    client: &Client,
    target: &MlflowTarget,
    run_id: &str,
    rec: &TrialData,
    group: Option<&str>,
    existing: Option<&ExistingRun>,
) -> Result<Sent, ExportError> {
    let params: Vec<Value> = rec
        .row
        .settings
        .iter()
        .filter(|(k, _)| existing.is_none_or(|run| !run.params.contains(*k)))
        .map(|(k, v)| json!({"key": k, "value": param_value(v)}))
        .collect();
    let mut tags: Vec<Value> = run_tags(rec).into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    if let Some(group) = group {
        tags.push(json!({"key": GROUP_TAG, "value": group}));
    }
    tags.push(json!({"key": EXPORT_TAG, "value": "incomplete"}));
    let metrics = missing_metrics(client, run_id, rec, existing.is_some())?;
    let sent = Sent { metric_values: metrics.len(), artifacts: 0 };
    client.log_batch(run_id, params, metrics, tags)?;
    if let Some(run) = existing {
        let current = user_tag_names(rec);
        let mut stale: Vec<&str> = run.user_tags.difference(&current).map(String::as_str).collect();
        if run.tags.contains("sweep.reason") && rec.reason().is_none() {
            stale.push("sweep.reason");
        }
        for key in stale.into_iter().filter(|k| run.tags.contains(*k)) {
            client.post("runs/delete-tag", &json!({"run_id": run_id, "key": key}), "deleting a stale tag")?;
        }
    }
    let artifacts = if target.artifacts { upload_artifacts(client, target, run_id, rec)? } else { 0 };
    client.update_run(run_id, rec)?;
    client.log_batch(run_id, Vec::new(), Vec::new(), vec![json!({"key": EXPORT_TAG, "value": "complete"})])?;
    Ok(Sent { artifacts, ..sent })
}

/// The trial's metric values the server does not have yet, as MLflow metrics (step = epoch,
/// timestamp = the epoch's wall time in milliseconds): every epoch of each metric (`val_iou`:
/// MLflow's runs table shows its last epoch), and for each quality metric its best epoch's value
/// as `best_<metric>` (`best_val_iou`, step = that epoch: what `sweep` ranks by, so that sorting
/// MLflow's table by it agrees with `sweep ls`), and what the trial costs. A best can only move to
/// a later epoch, so the latest step of `best_<metric>` is always the current best and a second
/// export adds nothing.
fn missing_metrics(client: &Client, run_id: &str, rec: &TrialData, existing: bool) -> Result<Vec<Value>, ExportError> {
    let mut out = Vec::new();
    let present = |key: &str| if existing { client.metric_steps(run_id, key) } else { Ok(BTreeSet::new()) };
    let series = rec.metric_series();
    for (key, series) in &series {
        let present = present(key)?;
        out.extend(
            series
                .iter()
                .filter(|m| !present.contains(&m.epoch))
                .map(|m| json!({"key": key, "value": crate::report::json_number(m.value), "timestamp": millis(m.wall), "step": m.epoch})),
        );
    }
    let objective = rec.row.settings.get("metric.name").and_then(Value::as_str);
    let objective_goal = rec.row.settings.get("metric.goal").and_then(|g| serde_json::from_value::<Goal>(g.clone()).ok());
    for key in crate::report::metric_columns(&["train", "val"], series.keys()) {
        let goal = match objective_goal {
            Some(goal) if objective == Some(key.as_str()) => goal,
            _ => Goal::for_metric(&key),
        };
        let Some((value, epoch)) = rec.row.best(&key, goal) else { continue };
        let best = format!("best_{key}");
        if present(&best)?.contains(&epoch) {
            continue;
        }
        let wall = series.get(&key).and_then(|s| s.iter().find(|m| m.epoch == epoch)).map_or(0.0, |m| m.wall);
        out.push(json!({"key": best, "value": crate::report::json_number(value), "timestamp": millis(wall), "step": epoch}));
    }
    // What the trial costs (`params`, `gflops`, `infer_ms`, `train_seconds`), under its own name:
    // its value as recorded, step = the epoch it was recorded at (0 before training; the last
    // epoch after it, so an extended trial's new total is a new step).
    // (`train_seconds` is there already, as each epoch's seconds: the total is their sum.)
    for key in crate::config::COST_METRICS.into_iter().filter(|k| *k != "train_seconds") {
        let Some(summary) = rec.row.metrics.get(key) else { continue };
        if present(key)?.contains(&summary.last_epoch) {
            continue;
        }
        out.push(json!({"key": key, "value": crate::report::json_number(summary.last), "timestamp": millis(cost_time(&rec.row)), "step": summary.last_epoch}));
    }
    Ok(out)
}

/// When a trial's costs are said to be recorded, for MLflow's timestamp: when it finished, else
/// when it started, else when it was created (the tracker keeps no wall time for a cost).
pub fn cost_time(row: &crate::store::TrialRow) -> f64 {
    row.finished.or(row.started).unwrap_or(row.created)
}

/// Unix seconds as MLflow's milliseconds.
fn millis(unix: f64) -> i64 {
    (unix * 1000.0).round() as i64
}

/// The files uploaded as a trial's artifacts: its best checkpoint, and its two-panel chart if
/// `sweep plot` drew one.
fn artifact_files(target: &MlflowTarget, rec: &TrialData) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    if let Some(best) = rec.checkpoints.iter().find(|c| c.kind == "best") {
        files.push(("checkpoints/best.ckpt".to_string(), PathBuf::from(&best.path)));
    }
    let chart = target.runs_dir.join(&rec.row.sweep).join("plots").join(format!("run_{}.png", rec.row.id));
    files.push((format!("charts/run_{}.png", rec.row.id), chart));
    files.retain(|(_, path)| path.is_file());
    files
}

fn upload_artifacts(client: &Client, target: &MlflowTarget, run_id: &str, rec: &TrialData) -> Result<usize, ExportError> {
    let files = artifact_files(target, rec);
    if files.is_empty() {
        return Ok(0);
    }
    let reply = client.get("runs/get", &[("run_id", run_id)], "reading the run's artifact location")?;
    let uri = reply["run"]["info"]["artifact_uri"].as_str().unwrap_or_default().to_string();
    // Only a server that proxies artifacts (`mlflow server --serve-artifacts`, the default) takes
    // uploads over HTTP; other artifact stores are written by clients directly.
    let Some(prefix) = uri.strip_prefix("mlflow-artifacts:").map(|p| p.trim_start_matches('/').to_string()) else {
        return Err(ExportError::State {
            url: client.base.clone(),
            message: format!(
                "the run's artifact location is {uri:?}, not one the server proxies; start the server with \
                 --serve-artifacts or export without --artifacts"
            ),
        });
    };
    for (name, path) in &files {
        client.put_artifact(&format!("{prefix}/{name}"), path)?;
    }
    Ok(files.len())
}

/// The items of one `runs/log-batch` request.
#[derive(Debug, Default, PartialEq)]
struct Batch {
    params: Vec<Value>,
    metrics: Vec<Value>,
    tags: Vec<Value>,
}

/// Splits params, metrics and tags into requests within MLflow's limits (100 params, 100 tags,
/// 1000 items in all), each kind in its order; params and tags go first.
fn batches(params: Vec<Value>, metrics: Vec<Value>, tags: Vec<Value>) -> Vec<Batch> {
    let (mut params, mut metrics, mut tags) = (params.into_iter().peekable(), metrics.into_iter().peekable(), tags.into_iter().peekable());
    let mut out = Vec::new();
    while params.peek().is_some() || metrics.peek().is_some() || tags.peek().is_some() {
        let params: Vec<Value> = params.by_ref().take(MAX_BATCH_PARAMS).collect();
        let tags: Vec<Value> = tags.by_ref().take(MAX_BATCH_TAGS).collect();
        let metrics = metrics.by_ref().take(MAX_BATCH_ITEMS - params.len() - tags.len()).collect();
        out.push(Batch { params, metrics, tags });
    }
    out
}

/// A blocking JSON client of one tracking server.
struct Client {
    base: String,
    agent: ureq::Agent,
    /// `MLFLOW_TRACKING_TOKEN`, sent as a bearer token, as MLflow's own client does.
    token: Option<String>,
}

impl Client {
    fn new(url: &str) -> Result<Self, ExportError> {
        let base = url.trim_end_matches('/').to_string();
        let usage = |why: &str| ExportError::Usage(format!("--to {url}: {why}"));
        match base.split_once("://") {
            Some(("http", rest)) if !rest.is_empty() => {}
            Some(("https", rest)) if !rest.is_empty() => {
                if !cfg!(feature = "https") {
                    return Err(usage("this build speaks plain HTTP only; build sweep with --features https for an https:// server"));
                }
            }
            _ => return Err(usage("expected the tracking server's http:// or https:// URL, e.g. http://127.0.0.1:5000")),
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let token = std::env::var("MLFLOW_TRACKING_TOKEN").ok().filter(|t| !t.is_empty());
        Ok(Self { base, agent, token })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    fn get(&self, path: &str, query: &[(&str, &str)], what: &str) -> Result<Value, ExportError> {
        let mut request = self.agent.get(self.endpoint(path)).query_pairs(query.iter().copied());
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        self.reply(request.call(), what)
    }

    fn post(&self, path: &str, body: &Value, what: &str) -> Result<Value, ExportError> {
        let mut request = self.agent.post(self.endpoint(path)).header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        self.reply(request.send(body.to_string()), what)
    }

    /// The JSON of a 2xx answer; otherwise the server's `error_code` and `message`.
    fn reply(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Result<Value, ExportError> {
        let unreachable = |e: ureq::Error| ExportError::Unreachable { url: self.base.clone(), what: what.to_string(), detail: e.to_string() };
        let mut response = result.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body["message"].as_str().map(str::to_string).unwrap_or_else(|| text.chars().take(300).collect::<String>().trim().to_string());
        Err(ExportError::Refused {
            url: self.base.clone(),
            what: what.to_string(),
            status,
            code: body["error_code"].as_str().map(str::to_string),
            message,
        })
    }

    /// The id of the experiment `name`, created if it does not exist.
    fn experiment_id(&self, name: &str) -> Result<String, ExportError> {
        match self.get("experiments/get-by-name", &[("experiment_name", name)], &format!("looking up experiment {name:?}")) {
            Ok(reply) => {
                let experiment = &reply["experiment"];
                if experiment["lifecycle_stage"] == "deleted" {
                    return Err(ExportError::State {
                        url: self.base.clone(),
                        message: format!(
                            "experiment {name:?} is deleted in MLflow; restore it (mlflow experiments restore) or export under another name with --experiment"
                        ),
                    });
                }
                Ok(id_of(&experiment["experiment_id"]))
            }
            Err(ExportError::Refused { code: Some(code), .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                let reply = self.post("experiments/create", &json!({"name": name}), &format!("creating experiment {name:?}"))?;
                Ok(id_of(&reply["experiment_id"]))
            }
            Err(e) => Err(e),
        }
    }

    /// The experiment's runs that hold a trial, by trial id (every page of `runs/search`).
    fn sweep_runs(&self, experiment_id: &str) -> Result<BTreeMap<String, ExistingRun>, ExportError> {
        let mut out = BTreeMap::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "filter": format!("tags.`{TRIAL_TAG}` != ''"),
                "max_results": 1000,
                "run_view_type": "ACTIVE_ONLY",
            });
            if let Some(t) = &page_token {
                body["page_token"] = json!(t);
            }
            let reply = self.post("runs/search", &body, "searching the experiment's runs")?;
            for run in reply["runs"].as_array().into_iter().flatten() {
                let keys = |field: &str| -> BTreeSet<String> {
                    run["data"][field].as_array().into_iter().flatten().filter_map(|kv| kv["key"].as_str().map(str::to_string)).collect()
                };
                let tag =
                    |key: &str| run["data"]["tags"].as_array().into_iter().flatten().find(|kv| kv["key"] == key).and_then(|kv| kv["value"].as_str());
                if let Some(trial) = tag(TRIAL_TAG) {
                    let run_id = run["info"]["run_id"].as_str().unwrap_or_default().to_string();
                    let user_tags = tag(USER_TAGS_TAG).unwrap_or_default().split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
                    out.insert(trial.to_string(), ExistingRun { run_id, params: keys("params"), tags: keys("tags"), user_tags });
                }
            }
            match reply["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => page_token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// A new MLflow run for the trial, marked incomplete until its export finishes.
    fn create_run(&self, experiment_id: &str, rec: &TrialData) -> Result<String, ExportError> {
        let mut tags: Vec<Value> = run_tags(rec).into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        tags.push(json!({"key": EXPORT_TAG, "value": "incomplete"}));
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": rec.row.id,
            "start_time": millis(rec.start_time()),
            "tags": tags,
        });
        let reply = self.post("runs/create", &body, &format!("creating the run of trial {}", rec.row.id))?;
        Ok(reply["run"]["info"]["run_id"].as_str().unwrap_or_default().to_string())
    }

    /// The steps of `key` the run already has (every page of its history).
    fn metric_steps(&self, run_id: &str, key: &str) -> Result<BTreeSet<i64>, ExportError> {
        let mut steps = BTreeSet::new();
        let mut page_token = String::new();
        loop {
            let mut query = vec![("run_id", run_id), ("metric_key", key), ("max_results", "25000")];
            if !page_token.is_empty() {
                query.push(("page_token", &page_token));
            }
            let reply = self.get("metrics/get-history", &query, &format!("reading the history of {key}"))?;
            steps.extend(reply["metrics"].as_array().into_iter().flatten().filter_map(|m| id_of(&m["step"]).parse::<i64>().ok()));
            match reply["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => page_token = t.to_string(),
                _ => return Ok(steps),
            }
        }
    }

    /// Params, metrics and tags in as many `runs/log-batch` requests as MLflow's limits need.
    fn log_batch(&self, run_id: &str, params: Vec<Value>, metrics: Vec<Value>, tags: Vec<Value>) -> Result<(), ExportError> {
        for batch in batches(params, metrics, tags) {
            let what = format!("logging {} params, {} metric values and {} tags", batch.params.len(), batch.metrics.len(), batch.tags.len());
            let body = json!({"run_id": run_id, "params": batch.params, "metrics": batch.metrics, "tags": batch.tags});
            self.post("runs/log-batch", &body, &what)?;
        }
        Ok(())
    }

    /// The run's status and end time from the trial's.
    fn update_run(&self, run_id: &str, rec: &TrialData) -> Result<(), ExportError> {
        let mut body = json!({"run_id": run_id, "status": run_status(rec.row.status), "run_name": rec.row.id});
        if let (true, Some(end)) = (rec.row.status.is_final(), rec.row.finished) {
            body["end_time"] = json!(millis(end));
        }
        self.post("runs/update", &body, "updating the run's status")?;
        Ok(())
    }

    /// Uploads a file through the server's artifact proxy.
    fn put_artifact(&self, artifact_path: &str, file: &Path) -> Result<(), ExportError> {
        let bytes = std::fs::read(file).map_err(|source| ExportError::Io { path: file.to_path_buf(), source })?;
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{artifact_path}", self.base);
        let mut request = self.agent.put(url).header("Content-Type", "application/octet-stream");
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        self.reply(request.send(&bytes[..]), &format!("uploading {}", file.display()))?;
        Ok(())
    }
}

/// An id or an int64 as MLflow's JSON writes it (a string, or a number from older servers).
fn id_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_batches_keep_mlflows_limits_and_every_item_in_order() {
        let items = |n: usize, kind: &str| (0..n).map(|i| json!(format!("{kind}{i}"))).collect::<Vec<_>>();
        let got = batches(items(250, "p"), items(2500, "m"), items(3, "t"));
        for b in &got {
            assert!(b.params.len() <= 100 && b.tags.len() <= 100 && b.params.len() + b.metrics.len() + b.tags.len() <= 1000, "{b:?}");
        }
        let all = |f: fn(&Batch) -> &Vec<Value>| got.iter().flat_map(f).cloned().collect::<Vec<_>>();
        assert_eq!(all(|b| &b.params), items(250, "p"));
        assert_eq!(all(|b| &b.metrics), items(2500, "m"));
        assert_eq!(all(|b| &b.tags), items(3, "t"));
        // 897 metrics beside 100 params and 3 tags, 900 beside 100 params, then 703 in one request.
        assert_eq!(got.iter().map(|b| b.metrics.len()).collect::<Vec<_>>(), [897, 900, 703]);
        assert!(batches(Vec::new(), Vec::new(), Vec::new()).is_empty());
    }

    #[test]
    fn trial_statuses_map_to_mlflow_run_statuses() {
        let cases = [
            (TrialStatus::Completed, "FINISHED"),
            (TrialStatus::Failed, "FAILED"),
            (TrialStatus::Diverged, "FAILED"),
            (TrialStatus::Pruned, "KILLED"),
            (TrialStatus::Stopped, "KILLED"),
            (TrialStatus::Running, "RUNNING"),
        ];
        for (status, expected) in cases {
            assert_eq!(run_status(status), expected, "{status:?}");
        }
    }
}
