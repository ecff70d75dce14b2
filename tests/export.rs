//! `sweep export --format mlflow | tensorboard`, read back by the tools themselves: a real
//! `mlflow server` and MLflow's Python client, TensorBoard's `EventAccumulator` and its HParams
//! protos. They come from a test-only virtual environment that `tests/python-deps.sh` makes;
//! these tests fail (never skip) without it.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use sweep::store::{MetricRow, SqliteStore, Store, TrialFilter, TrialRow, TrialStatus};

use common::{python, venv};

/// One sweep trained once for every test here: `exp-1` fails at epoch 2 (an injected panic) after
/// recording epoch 1, `exp-2` completes 2 epochs.
struct Trained {
    runs: PathBuf,
}

fn trained() -> &'static Trained {
    static TRAINED: std::sync::OnceLock<Trained> = std::sync::OnceLock::new();
    TRAINED.get_or_init(|| {
        let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-trained");
        let _ = std::fs::remove_dir_all(&runs);
        std::fs::create_dir_all(&runs).unwrap();
        let file = runs.join("exp.toml");
        std::fs::write(&file, common::tiny_sweep("exp", 2, &[0.0])).unwrap();
        common::sweep(&runs).env("SWEEP_FAULT", "panic@2:1").args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().code(1);
        std::fs::write(&file, common::tiny_sweep("exp", 2, &[0.0, 0.3])).unwrap();
        // Exit code 1 all the same: the sweep holds a failed trial.
        common::sweep(&runs).args(["run", file.to_str().unwrap(), "--plain"]).assert().code(1);
        // Tags and a note (issue 16, item 3) travel with the exports.
        common::sweep(&runs).args(["tag", "exp-2", "team=vision", "stage=final"]).assert().success();
        common::sweep(&runs).args(["note", "exp-2", "the one to beat"]).assert().success();
        let t = Trained { runs };
        let statuses: Vec<TrialStatus> = t.trials().iter().map(|(r, _)| r.status).collect();
        assert_eq!(statuses, [TrialStatus::Failed, TrialStatus::Completed]);
        t
    })
}

impl Trained {
    /// Every trial with its metric rows, from the tracker.
    fn trials(&self) -> Vec<(TrialRow, Vec<MetricRow>)> {
        let store = SqliteStore::open(&self.runs.join("sweep.db")).unwrap();
        let rows = store.trials(&TrialFilter::default()).unwrap();
        rows.into_iter().map(|r| (store.metrics(&r.id).unwrap(), r)).map(|(m, r)| (r, m)).collect()
    }

    fn settings(&self, id: &str) -> BTreeMap<String, Value> {
        let store = SqliteStore::open(&self.runs.join("sweep.db")).unwrap();
        sweep::store::settings_of(&store.trial_config(id).unwrap())
    }
}

/// A free loopback port (free when this returns; nothing else here binds ports at random).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server this test started (`mlflow server`, `tensorboard`) on a free loopback port; stopped
/// (its whole process group, by id) when dropped, also when a test panics.
struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `program args... --host 127.0.0.1 --port P` from the test venv in its own process
    /// group, logging to `dir` (removed after the server), and waits until `probe` (a path)
    /// answers 200.
    fn start(dir: tempfile::TempDir, program: &str, args: &[&std::ffi::OsStr], probe: &str) -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(venv().join("bin").join(program))
            .args(args)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child, url: format!("http://127.0.0.1:{port}"), dir };
        server.wait_until_up(probe);
        server
    }

    /// A private `mlflow server` with a temporary backend store and artifact directory.
    fn mlflow() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
        let artifacts = dir.path().join("artifacts");
        let args = ["server", "--workers", "1", "--backend-store-uri", &store, "--artifacts-destination"].map(std::ffi::OsStr::new);
        Self::start(dir, "mlflow", &[&args[..], &[artifacts.as_os_str()]].concat(), "/health")
    }

    /// TensorBoard serving `logdir`.
    fn tensorboard(logdir: &Path) -> Self {
        Self::start(tempfile::tempdir().unwrap(), "tensorboard", &["--logdir".as_ref(), logdir.as_os_str()], "/data/plugins_listing")
    }

    /// POSTs JSON to a path and returns the JSON answer.
    fn post(&self, path: &str, body: Value) -> Value {
        let mut response = ureq::post(format!("{}{path}", self.url)).header("Content-Type", "application/json").send(body.to_string()).unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn wait_until_up(&self, probe: &str) {
        let start = Instant::now();
        let url = format!("{}{probe}", self.url);
        while start.elapsed() < Duration::from_secs(180) {
            if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!("{url} did not answer within 180 s:\n{log}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: signals only the process group this test started (its leader is our child).
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Workers may outlive their leader by a moment.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// MLflow's view of experiments, through its own client: per experiment, every run with its
/// info, params, tags and full metric histories ([step, value, timestamp], non-finite values as
/// strings), and the artifacts under `checkpoints/`.
const READ_MLFLOW: &str = r#"
import json, math, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
num = lambda v: v if math.isfinite(v) else str(v)
out = {}
for name in sys.argv[2:]:
    e = client.get_experiment_by_name(name)
    runs = []
    for r in client.search_runs([e.experiment_id], max_results=1000):
        rid = r.info.run_id
        runs.append({
            "run_id": rid, "name": r.info.run_name, "status": r.info.status,
            "start": r.info.start_time, "end": r.info.end_time,
            "params": r.data.params, "tags": r.data.tags,
            "metrics": {k: [[m.step, num(m.value), m.timestamp] for m in client.get_metric_history(rid, k)] for k in r.data.metrics},
            "artifacts": {a.path: a.file_size for a in client.list_artifacts(rid, "checkpoints")},
        })
    out[name] = {"id": e.experiment_id, "runs": runs}
print(json.dumps(out))
"#;

fn millis(unix: f64) -> i64 {
    (unix * 1000.0).round() as i64
}

/// A tracker value as the readers report it: a number, or "nan" / "inf" / "-inf".
fn as_read(v: f64) -> Value {
    if v.is_finite() { serde_json::json!(v) } else { Value::String(format!("{v}").to_lowercase()) }
}

/// Checks MLflow's view of experiment `exp` against the tracker: one run per trial with its
/// status, times, every setting as a param, the tags, and each metric's full history.
fn check_mlflow_matches_the_tracker(t: &Trained, read: &Value) {
    let runs = read["exp"]["runs"].as_array().unwrap();
    let trials = t.trials();
    assert_eq!(runs.len(), trials.len(), "one MLflow run per trial: {read:#}");
    for (row, metrics) in &trials {
        let run = runs.iter().find(|r| r["tags"]["sweep.trial"] == row.id.as_str()).unwrap_or_else(|| panic!("no run for {}", row.id));
        assert_eq!(run["name"], row.id.as_str());
        let status = match row.status {
            TrialStatus::Completed => "FINISHED",
            TrialStatus::Failed => "FAILED",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(run["status"], status, "{}", row.id);
        assert_eq!(run["start"], millis(row.started.unwrap()), "{}", row.id);
        assert_eq!(run["end"], millis(row.finished.unwrap()), "{}", row.id);

        let params: BTreeMap<String, String> = serde_json::from_value(run["params"].clone()).unwrap();
        let settings: BTreeMap<String, String> =
            t.settings(&row.id).into_iter().map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect();
        assert_eq!(params, settings, "{}: every setting, as written", row.id);
        assert_eq!(params["augment.hue_delta"], row.params["augment.hue_delta"].to_string());

        let tags = &run["tags"];
        assert_eq!(tags["sweep.sweep"], "exp");
        assert_eq!(tags["sweep.config_hash"], row.config_hash.as_str());
        assert_eq!(tags["sweep.status"], row.status.as_str());
        assert_eq!(tags["sweep.export"], "complete");
        assert_eq!(tags["mlflow.runName"], row.id.as_str());
        match &row.error {
            Some(error) => assert_eq!(tags["sweep.reason"], error.as_str()),
            None => assert!(tags.get("sweep.reason").is_none(), "{tags}"),
        }
        for (name, value) in &row.tags {
            assert_eq!(tags[name], value.as_str(), "{}: the trial's tags under their own names", row.id);
        }
        assert_eq!(tags.get("mlflow.note.content").and_then(Value::as_str), row.note.as_deref(), "{}: the note as MLflow's", row.id);

        let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for m in metrics {
            expected.entry(format!("{}_{}", m.split, m.name)).or_default().push(serde_json::json!([m.epoch, as_read(m.value), millis(m.wall)]));
        }
        // Issue 29: and each quality metric's best epoch as `best_<metric>` (step = that epoch),
        // what `sweep` ranks by: the earliest epoch of the best finite value in its direction.
        for key in expected.keys().filter(|k| !matches!(k.as_str(), "train_lr" | "train_seconds")).cloned().collect::<Vec<_>>() {
            let lower = key.ends_with("loss");
            let best =
                metrics.iter().filter(|m| format!("{}_{}", m.split, m.name) == key && m.value.is_finite()).fold(None::<&MetricRow>, |best, m| {
                    match best {
                        Some(b) if (lower && m.value >= b.value) || (!lower && m.value <= b.value) => Some(b),
                        _ => Some(m),
                    }
                });
            if let Some(m) = best {
                expected.insert(format!("best_{key}"), vec![serde_json::json!([m.epoch, m.value, millis(m.wall)])]);
            }
        }
        // Issue 26: and what the trial costs, as recorded (params and gflops before training,
        // infer_ms and train_seconds when it completed).
        // (train_seconds is each epoch's seconds, above: the cost is their sum.)
        for key in sweep::config::COST_METRICS.into_iter().filter(|k| *k != "train_seconds") {
            if let Some(s) = row.metrics.get(key) {
                expected.insert(key.to_string(), vec![serde_json::json!([s.last_epoch, s.last, millis(sweep::export::mlflow::cost_time(row))])]);
            }
        }
        assert!(expected.contains_key("params") && expected.contains_key("gflops"), "{}: every built-in trial records its costs", row.id);
        let got: BTreeMap<String, Vec<Value>> = serde_json::from_value(run["metrics"].clone()).unwrap();
        assert_eq!(got, expected, "{}: every epoch of every metric, each one's best, and the costs", row.id);
        assert_eq!(got["val_iou"].len() as i64, row.epochs());
    }
}

#[test]
fn mlflow_export_is_read_back_by_mlflows_client_and_a_second_export_duplicates_nothing() {
    let t = trained();
    let server = Server::mlflow();
    common::sweep(&t.runs).args(["export", "--format", "mlflow", "--to", &server.url]).assert().success().stdout(contains("2 new, 0 updated"));
    let first = python(READ_MLFLOW, &[&server.url, "exp"]);
    check_mlflow_matches_the_tracker(t, &first);

    // Again, with the checkpoints as artifacts: the same runs are found and updated, no metric
    // value is sent twice, and the best checkpoints arrive whole.
    common::sweep(&t.runs)
        .args(["export", "--format", "mlflow", "--to", &server.url, "--sweep", "exp", "--artifacts"])
        .assert()
        .success()
        .stdout(contains("0 new, 2 updated, 0 metric values sent"));
    // And under another experiment name: every trial again, once.
    common::sweep(&t.runs).args(["export", "--format", "mlflow", "--to", &server.url, "--experiment", "mine"]).assert().success();
    let second = python(READ_MLFLOW, &[&server.url, "exp", "mine"]);
    check_mlflow_matches_the_tracker(t, &second);
    let ids = |read: &Value| -> Vec<Value> { read["exp"]["runs"].as_array().unwrap().iter().map(|r| r["run_id"].clone()).collect() };
    assert_eq!(ids(&first), ids(&second), "the same MLflow runs");
    for run in second["exp"]["runs"].as_array().unwrap() {
        let id = run["tags"]["sweep.trial"].as_str().unwrap();
        let ckpt = t.runs.join("exp").join(id).join("checkpoints/best.ckpt");
        assert_eq!(run["artifacts"]["checkpoints/best.ckpt"], std::fs::metadata(&ckpt).unwrap().len(), "{id}");
    }
    assert_eq!(second["mine"]["runs"].as_array().unwrap().len(), 2);

    // A tag removed and a note cleared (in a copy of the tracker, which the other tests share)
    // are deleted from the MLflow run by the next export; a tag added in MLflow is kept.
    let copy = tempfile::tempdir().unwrap();
    let store = copy.path().join("copy.db");
    let source = SqliteStore::open(&t.runs.join("sweep.db")).unwrap();
    source.connection().execute("VACUUM INTO ?1", [store.to_str().unwrap()]).unwrap();
    let run_of = |read: &Value, trial: &str| -> Value {
        read["exp"]["runs"].as_array().unwrap().iter().find(|r| r["tags"]["sweep.trial"] == trial).unwrap().clone()
    };
    let mlflow_run = run_of(&second, "exp-2")["run_id"].as_str().unwrap().to_string();
    server.post("/api/2.0/mlflow/runs/set-tag", serde_json::json!({"run_id": mlflow_run, "key": "reviewed", "value": "yes"}));
    let on_copy = |args: &[&str]| common::sweep(&t.runs).arg("--store").arg(&store).args(args).assert().success();
    on_copy(&["tag", "exp-2", "team="]);
    on_copy(&["note", "exp-2", ""]);
    on_copy(&["export", "--format", "mlflow", "--to", &server.url, "--sweep", "exp"]);
    let tags = run_of(&python(READ_MLFLOW, &[&server.url, "exp"]), "exp-2")["tags"].clone();
    assert!(tags.get("team").is_none() && tags.get("mlflow.note.content").is_none(), "{tags:#}");
    assert_eq!((tags["stage"].as_str(), tags["reviewed"].as_str()), (Some("final"), Some("yes")), "{tags:#}");

    // Issue 29: a parameter that a `when` condition did not apply to a trial (momentum for an Adam
    // trial, in a sweep that sweeps it for SGD only) is no param of its MLflow run.
    let conditional = tempfile::tempdir().unwrap();
    let file = conditional.path().join("when.toml");
    let text = common::tiny_sweep("when", 1, &[0.0]).replace(
        "[parameters]\n",
        "[parameters]\n\"train.optimizer\" = { values = [\"adam\", \"sgd\"] }\n\"train.momentum\" = { values = [0.9], when = { \"train.optimizer\" = [\"sgd\"] } }\n",
    );
    std::fs::write(&file, text).unwrap();
    common::sweep(conditional.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    common::sweep(conditional.path()).args(["export", "--format", "mlflow", "--to", &server.url]).assert().success();
    let read = python(READ_MLFLOW, &[&server.url, "when"]);
    let runs = read["when"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let params = &run["params"];
        match params["train.optimizer"].as_str() {
            Some("adam") => assert!(params.get("train.momentum").is_none(), "momentum did not apply to adam: {params}"),
            Some("sgd") => assert_eq!(params["train.momentum"], "0.9"),
            other => panic!("{other:?}"),
        }
        assert!(params.get("train.learning_rate").is_some(), "every setting that applied is there");
    }
}

#[test]
fn mlflow_export_to_a_closed_port_fails_clearly_and_says_what_was_sent() {
    let t = trained();
    let url = format!("http://127.0.0.1:{}", free_port());
    common::sweep(&t.runs)
        .args(["export", "--format", "mlflow", "--to", &url])
        .assert()
        .code(1)
        .stderr(contains(format!("MLflow server {url}: looking up experiment \"exp\" failed")))
        .stderr(contains("is the server running"))
        .stderr(contains("stopped at trial exp-1").and(contains("not sent: 1 more")));
}

#[test]
fn export_flags_that_do_not_fit_the_format_are_refused_with_exit_code_2() {
    let t = trained();
    let cases: [(&[&str], &str); 6] = [
        (&["--format", "mlflow"], "--format mlflow needs --to URL"),
        // Issue 27, item 12: the server's 400 with "run again" advice, after connecting.
        (&["--format", "mlflow", "--to", "http://127.0.0.1:1", "--experiment", " "], "--experiment needs a name"),
        (&["--format", "csv", "--to", "http://127.0.0.1:1"], "--to is for --format mlflow"),
        (&["--format", "tensorboard"], "--format tensorboard needs --out DIR"),
        (&["--format", "mlflow", "--to", "127.0.0.1:5000"], "--to 127.0.0.1:5000: expected the tracking server's http://"),
        (&["--format", "mlflow", "--to", "http://127.0.0.1:1", "--sweep", "nope"], "no sweep \"nope\""),
    ];
    for (args, message) in cases {
        common::sweep(&t.runs).arg("export").args(args).assert().code(2).stderr(contains(message));
    }
    // Issue 27, item 15: a missing directory, or a file where a directory belongs, was exit 1.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let missing = dir.path().join("missing/trials.csv");
    let outs: [(&str, &std::path::Path, &str); 4] = [
        ("csv", &missing, "create it first"),
        ("json", dir.path(), "a directory; name the file to write"),
        ("csv", &file.join("trials.csv"), "create it first"),
        ("tensorboard", &file, "a file, not a directory"),
    ];
    for (format, out, message) in outs {
        common::sweep(&t.runs).args(["export", "--format", format, "--out"]).arg(out).assert().code(2).stderr(contains(message));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x", "nothing was written");
}

/// TensorBoard's view of an export: per trial directory, every scalar series ([step, value,
/// wall_time]) read by `EventAccumulator`, and the HParams plugin data of the trial and of the
/// root parsed with the plugin's own protos.
const READ_TENSORBOARD: &str = r#"
import json, math, os, sys
from google.protobuf import json_format
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
num = lambda v: v if math.isfinite(v) else str(v)
def hparams(acc):
    out = {}
    for tag, content in acc.PluginTagToContent("hparams").items():
        out[tag] = json_format.MessageToDict(plugin_data_pb2.HParamsPluginData.FromString(content))
    return out
root = sys.argv[1]
out = {"trials": {}}
acc = EventAccumulator(root, size_guidance={"scalars": 0}); acc.Reload()
out["root"] = hparams(acc)
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    if not os.path.isdir(path):
        continue
    acc = EventAccumulator(path, size_guidance={"scalars": 0}); acc.Reload()
    scalars = {tag: [[e.step, num(e.value), e.wall_time] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    out["trials"][name] = {"scalars": scalars, "hparams": hparams(acc), "files": len(os.listdir(path))}
print(json.dumps(out))
"#;

#[test]
fn tensorboard_export_is_read_back_by_tensorboards_event_accumulator_with_hparams() {
    let t = trained();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("tb");
    for _ in 0..2 {
        // Twice: the second export replaces the files of the first.
        common::sweep(&t.runs).args(["export", "--format", "tensorboard", "--out"]).arg(&dir).assert().success().stdout(contains("wrote 2 trials"));
    }
    let read = python(READ_TENSORBOARD, &[dir.to_str().unwrap()]);
    let trials = t.trials();
    assert_eq!(read["trials"].as_object().unwrap().len(), trials.len(), "{read:#}");
    for (row, metrics) in &trials {
        let got = &read["trials"][&row.id];
        assert_eq!(got["files"], 1, "{}: one event file, replaced by the second export", row.id);
        let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for m in metrics {
            // TensorBoard's scalars are 32-bit floats.
            expected.entry(format!("{}/{}", m.split, m.name)).or_default().push(serde_json::json!([m.epoch, as_read(m.value as f32 as f64), m.wall]));
        }
        // Issue 26: and what the trial costs, under `cost/` (train_seconds is train/seconds).
        for key in ["params", "gflops", "infer_ms"] {
            if let Some(s) = row.metrics.get(key) {
                let wall = sweep::export::mlflow::cost_time(row);
                expected.insert(format!("cost/{key}"), vec![serde_json::json!([s.last_epoch, as_read(s.last as f32 as f64), wall])]);
            }
        }
        assert!(expected.contains_key("cost/params"), "{}", row.id);
        let scalars: BTreeMap<String, Vec<Value>> = serde_json::from_value(got["scalars"].clone()).unwrap();
        assert_eq!(scalars, expected, "{}: every scalar at its epoch and wall time", row.id);

        let start = &got["hparams"]["_hparams_/session_start_info"]["sessionStartInfo"];
        // (A google.protobuf.Value reads back as the plain JSON value.)
        assert_eq!(start["hparams"]["augment.hue_delta"], row.params["augment.hue_delta"], "{}", row.id);
        for (name, value) in &row.tags {
            assert_eq!(start["hparams"][format!("tag.{name}")], value.as_str(), "{}: tags as hparams", row.id);
        }
        assert_eq!(start["groupName"], row.id.as_str());
        assert_eq!(start["startTimeSecs"], row.started.unwrap());
        let end = &got["hparams"]["_hparams_/session_end_info"]["sessionEndInfo"];
        assert_eq!(end["status"], if row.status == TrialStatus::Completed { "STATUS_SUCCESS" } else { "STATUS_FAILURE" });
        assert_eq!(end["endTimeSecs"], row.finished.unwrap());
    }
    let experiment = &read["root"]["_hparams_/experiment"]["experiment"];
    assert_eq!(experiment["name"], "exp");
    let hparams: Vec<&Value> = experiment["hparamInfos"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = hparams.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["augment.hue_delta", "tag.stage", "tag.team"],
        "the one swept setting (every other is the same in both trials), then the tags: {experiment:#}"
    );
    assert_eq!(hparams[0]["type"], "DATA_TYPE_FLOAT64");
    assert_eq!(hparams[0]["domainInterval"], serde_json::json!({"maxValue": 0.3}), "min 0.0 is the proto3 default, left out");
    assert_eq!(hparams[0]["differs"], true);
    let metrics: Vec<(&str, &str)> = experiment["metricInfos"]
        .as_array()
        .unwrap()
        .iter()
        // (DATASET_UNKNOWN, the costs', is the proto3 default: left out of the JSON.)
        .map(|m| (m["name"]["tag"].as_str().unwrap(), m["datasetType"].as_str().unwrap_or("DATASET_UNKNOWN")))
        .collect();
    assert!(metrics.contains(&("val/iou", "DATASET_VALIDATION")) && metrics.contains(&("train/loss", "DATASET_TRAINING")), "{metrics:?}");
    assert!(metrics.contains(&("cost/params", "DATASET_UNKNOWN")), "{metrics:?}");
    assert_eq!(metrics.len(), 13, "every metric and the three costs: {metrics:?}");

    // TensorBoard itself: its HParams tab's data, one session group per trial with its hparam and
    // its last val/iou.
    let tensorboard = Server::tensorboard(&dir);
    let statuses = ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING", "STATUS_UNKNOWN"];
    let request = serde_json::json!({
        "experimentName": "", "allowedStatuses": statuses, "startIndex": 0, "sliceSize": 100,
        "colParams": [{"hparam": "augment.hue_delta"}, {"metric": {"group": "", "tag": "val/iou"}}],
    });
    let groups = tensorboard.post("/data/plugin/hparams/session_groups", request);
    let groups = groups["sessionGroups"].as_array().unwrap_or_else(|| panic!("{groups:#}"));
    assert_eq!(groups.len(), trials.len(), "{groups:#?}");
    for (row, metrics) in &trials {
        let group = groups.iter().find(|g| g["name"] == row.id.as_str()).unwrap_or_else(|| panic!("no session group {}", row.id));
        assert_eq!(group["hparams"]["augment.hue_delta"], row.params["augment.hue_delta"]);
        let last = metrics.iter().filter(|m| m.split == "val" && m.name == "iou").max_by_key(|m| m.epoch).unwrap();
        let value = group["metricValues"].as_array().unwrap().iter().find(|v| v["name"]["tag"] == "val/iou").unwrap();
        assert_eq!((value["trainingStep"].as_i64(), value["value"].as_f64()), (Some(last.epoch), Some(last.value as f32 as f64)), "{}", row.id);
    }
}
