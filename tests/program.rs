//! Sweeping a user's own training program (`[program]`), driven through the real `sweep` binary
//! with a fake program in Python that needs nothing installed (tests/fixtures/program/fake_train.py):
//! its learning curve is a formula, so every recorded value is checked against it.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use predicates::str::contains;
use serde_json::Value;

fn fake_program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/program/fake_train.py")
}

/// The fake program's val_iou at `epoch` with learning rate `lr`.
fn iou(lr: f64, epoch: usize) -> f64 {
    1.0 - 0.5 * (-10.0 * lr * epoch as f64).exp()
}

/// A program sweep file named `name`: the fake program, `epochs`, then `rest` (parameters and
/// any other table).
fn sweep_file(dir: &Path, name: &str, epochs: usize, program: &str, rest: &str) -> PathBuf {
    sweep_file_with(dir, name, "", epochs, program, rest)
}

/// As [`sweep_file`], with top-level keys `top` after the name.
fn sweep_file_with(dir: &Path, name: &str, top: &str, epochs: usize, program: &str, rest: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\n{top}\n[program]\ncommand = [\"python3\", {:?}, \"${{args}}\"]\n{program}\n[train]\nepochs = {epochs}\n{rest}",
        fake_program().display().to_string()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn json(runs: &Path, args: &[&str]) -> Value {
    let out = common::sweep(runs).args(args).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

fn show(runs: &Path, trial: &str) -> Value {
    json(runs, &["show", trial, "--json"])
}

/// (epoch, val_iou) of every recorded epoch of a `show --json`.
fn curve(trial: &Value) -> Vec<(usize, f64)> {
    trial["epochs"].as_array().unwrap().iter().map(|e| (e["epoch"].as_u64().unwrap() as usize, e["val_iou"].as_f64().unwrap())).collect()
}

fn expected_curve(lr: f64, epochs: std::ops::RangeInclusive<usize>) -> Vec<(usize, f64)> {
    epochs.map(|e| (e, iou(lr, e))).collect()
}

fn starts(runs: &Path, sweep: &str, trial: &str) -> Vec<(u32, usize)> {
    let text = std::fs::read_to_string(runs.join(sweep).join(trial).join("starts.txt")).unwrap_or_default();
    text.lines().map(|l| l.split_once(' ').map(|(p, e)| (p.parse().unwrap(), e.parse().unwrap())).unwrap()).collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is dead: it is only waiting for its parent to read its status.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

fn worker_log(runs: &Path, sweep: &str) -> String {
    let dir = runs.join(sweep).join("logs");
    let mut text = String::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
    }
    text
}

#[test]
fn reports_on_stdout_or_in_the_metrics_file_are_recorded_with_log_lines_between() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file(
        runs.path(),
        "proto",
        4,
        "",
        "[parameters]\nlr = { values = [0.05] }\nmode = { values = [\"stdout\", \"file\"] }\nbatch = { value = 8 }\n",
    );
    common::sweep(runs.path()).arg("run").arg(&file).assert().success().stdout(contains("2 completed"));
    for trial in ["proto-1", "proto-2"] {
        let shown = show(runs.path(), trial);
        assert_eq!(shown["status"], "completed", "{shown}");
        let got = curve(&shown);
        let want = expected_curve(0.05, 1..=4);
        assert_eq!(got.len(), want.len());
        for ((e, v), (we, wv)) in got.iter().zip(&want) {
            assert_eq!(e, we);
            assert!((v - wv).abs() < 1e-12, "{trial} epoch {e}: {v} against {wv}");
        }
        let dir = runs.path().join("proto").join(trial);
        let params: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("params.json")).unwrap()).unwrap();
        assert_eq!(params["lr"], 0.05);
        assert_eq!(params["batch"], 8);
        assert!(dir.join("config.json").is_file(), "the trial directory describes itself");
        assert_eq!(starts(runs.path(), "proto", trial).iter().map(|s| s.1).collect::<Vec<_>>(), [0], "one start, from epoch 0");
    }
    assert_eq!(show(runs.path(), "proto-1")["params"]["mode"], "stdout");
    assert!(std::fs::read_to_string(runs.path().join("proto/proto-2/metrics.jsonl")).unwrap().lines().count() == 4);
    // The program's other output is the trial's log; reports are not repeated there as log.
    let log = worker_log(runs.path(), "proto");
    assert!(log.contains("epoch 3/4: training with lr=0.05") && log.contains("a warning on stderr at epoch 4"), "{log}");
    // ls, best and the charts read the program's metrics as they read the built-in trainer's.
    let ls = common::sweep(runs.path()).arg("ls").assert().success().get_output().stdout.clone();
    let ls = String::from_utf8(ls).unwrap();
    let header = ls.lines().next().unwrap();
    assert!(header.contains("val_acc") && header.contains("val_iou") && header.contains("train_loss") && !header.contains("val_dice"), "{ls}");
    // A program's own metric is a field of --where and --sort like the built-in ones.
    let over = json(runs.path(), &["ls", "--json", "--where", "final_val_acc > 0.9", "--sort", "val_acc"]);
    assert_eq!(over.as_array().unwrap().len(), 2, "{over}");
    let none = json(runs.path(), &["ls", "--json", "--where", "val_acc > 0.99"]);
    assert_eq!(none.as_array().unwrap().len(), 0, "{none}");
    let best = json(runs.path(), &["best", "--json"]);
    assert_eq!((best["run"].as_str(), best["value"].as_f64().map(|v| (v - iou(0.05, 4)).abs() < 1e-12)), (Some("proto-1"), Some(true)), "{best}");
    common::sweep(runs.path()).args(["best", "--eval"]).assert().code(2).stderr(contains("trained by the sweep's own program ([program])"));
    let plots = runs.path().join("proto/plots");
    assert!(plots.join("index.html").is_file(), "the charts are drawn");
    assert!(!plots.join("predictions.png").exists(), "no prediction grid: there is no model of ours");
}

#[test]
fn a_malformed_report_fails_the_trial_naming_it_and_the_line_and_keeps_earlier_epochs() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file(runs.path(), "bad", 4, "grace = 0.5", "[parameters]\nmode = { value = \"malformed\" }\n");
    let out = common::sweep(runs.path()).arg("run").arg(&file).assert().failure().get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = show(runs.path(), "bad-1");
    assert_eq!(shown["status"], "failed");
    let error = shown["error"].as_str().unwrap();
    // Lines 1-3 are epoch 1's log and report and epoch 2's log.
    assert!(error.contains("line 4 of the program's standard output is a malformed report: not a JSON object"), "{error}");
    assert!(error.contains(r#"{"epoch": 2, "val_iou": 0.5"#), "{error}");
    assert_eq!(curve(&shown), expected_curve(0.1, 1..=1), "epoch 1 stays recorded");
    assert!(stderr.contains("bad-1"), "{stderr}");
}

#[test]
fn a_program_that_fails_hangs_ignores_sigterm_or_floods_its_log_ends_as_it_should() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file(
        runs.path(),
        "ends",
        3,
        "timeout = 2\ngrace = 0.3",
        "[parameters]\nmode = { values = [\"exit3\", \"hang\", \"stubborn\", \"spam\", \"nan\", \"silent\"] }\n",
    );
    let started = Instant::now();
    common::sweep(runs.path()).arg("run").arg(&file).assert().failure();
    // Six trials, one worker: the two that hang cost their timeout and grace each.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    let trial = |n: usize| show(runs.path(), &format!("ends-{n}"));
    let exit3 = trial(1);
    assert_eq!(exit3["status"], "failed");
    let error = exit3["error"].as_str().unwrap();
    assert!(error.contains("the program exited with status 3; its last lines:") && error.contains("RuntimeError: out of memory"), "{error}");
    assert_eq!(curve(&exit3).len(), 2, "the epochs it reported before it died stay");
    for n in [2, 3] {
        let hung = trial(n);
        assert_eq!(hung["status"], "failed", "{hung}");
        assert!(hung["error"].as_str().unwrap().contains("ran past its timeout of 2s (program.timeout)"), "{hung}");
        let (pid, _) = starts(runs.path(), "ends", &format!("ends-{n}"))[0];
        assert!(!alive(pid), "ends-{n}: the program (pid {pid}) was killed, even the one that ignores SIGTERM");
    }
    let spam = trial(4);
    assert_eq!(spam["status"], "completed", "10 MB of log is log: {spam}");
    assert!(worker_log(runs.path(), "ends").len() > (3 * 10) << 20, "the log is kept in the trial's log");
    let nan = trial(5);
    assert_eq!(nan["status"], "diverged");
    assert!(nan["error"].as_str().unwrap().contains("train_loss became NaN at epoch 2"), "{nan}");
    let silent = trial(6);
    assert_eq!(silent["status"], "failed");
    assert!(silent["error"].as_str().unwrap().contains("exited without reporting an epoch"), "{silent}");
}

#[test]
fn a_pruned_program_is_ended_with_its_process_group() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file(
        runs.path(),
        "prune",
        5,
        "grace = 5",
        "[parameters]\nmode = { value = \"child\" }\n[early_terminate]\ntype = \"threshold\"\nlower = 0.9\n",
    );
    common::sweep(runs.path()).arg("run").arg(&file).assert().success();
    let shown = show(runs.path(), "prune-1");
    assert_eq!(shown["status"], "pruned", "{shown}");
    assert!(shown["error"].as_str().unwrap().contains("0.9"), "the reason names the threshold: {shown}");
    let (pid, _) = starts(runs.path(), "prune", "prune-1")[0];
    let child: u32 = std::fs::read_to_string(runs.path().join("prune/prune-1/child.pid")).unwrap().trim().parse().unwrap();
    assert!(!alive(pid) && !alive(child), "the program {pid} and its child {child} are gone");
}

#[test]
fn a_killed_worker_trial_resumes_from_the_last_recorded_epoch_and_extends() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file(runs.path(), "resume", 8, "", "[parameters]\nlr = { value = 0.05 }\nsleep = { value = 0.4 }\n");
    let mut run = std::process::Command::new(common::sweep_bin())
        .arg("--runs-dir")
        .arg(runs.path())
        .arg("run")
        .arg(&file)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = runs.path().join("sweep.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the program never reported three epochs");
        let recorded = db.exists() && {
            let out = common::sweep(runs.path()).args(["show", "resume-1", "--json"]).output().unwrap();
            serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v["epochs"].as_array().is_some_and(|e| e.len() >= 3))
        };
        if recorded {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The supervisor and its worker die at once, as on a node failure.
    unsafe { libc::kill(-(run.id() as i32), libc::SIGKILL) };
    run.wait().unwrap();
    let first = starts(runs.path(), "resume", "resume-1");
    let wait = Instant::now() + Duration::from_secs(5);
    while alive(first[0].0) && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(first[0].0), "the program died with its worker");
    let recorded = curve(&show(runs.path(), "resume-1")).len();
    common::sweep(runs.path()).arg("run").arg(&file).assert().success();
    let shown = show(runs.path(), "resume-1");
    assert_eq!(shown["status"], "completed");
    let starts_then = starts(runs.path(), "resume", "resume-1");
    assert_eq!(starts_then.len(), 2, "{starts_then:?}");
    assert_eq!(starts_then[1].1, recorded, "SWEEP_RESUME_EPOCH is the last epoch the tracker held");
    assert_eq!(curve(&shown), expected_curve(0.05, 1..=8), "every epoch once, in order");
    // More epochs: the same trial goes on from where it ended.
    common::sweep(runs.path()).arg("run").arg(&file).args(["--set", "train.epochs=10"]).assert().success();
    let shown = show(runs.path(), "resume-1");
    assert_eq!(curve(&shown), expected_curve(0.05, 1..=10));
    assert_eq!(starts(runs.path(), "resume", "resume-1").last().unwrap().1, 8);
}

#[test]
fn bayes_with_asha_runs_exactly_run_cap_trials_of_a_program_with_four_workers() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file_with(
        runs.path(),
        "search",
        "method = \"bayes\"\nrun_cap = 30",
        9,
        "",
        "[parameters]\nlr = { distribution = \"log_uniform_values\", min = 0.001, max = 0.3 }\n[early_terminate]\ntype = \"asha\"\nmin_iter = 1\neta = 3\n",
    );
    common::sweep(runs.path()).arg("run").arg(&file).args(["--workers", "4"]).assert().success();
    let trials = json(runs.path(), &["ls", "--json"]);
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 30);
    let status = |s: &str| trials.iter().filter(|t| t["status"] == s).count();
    assert_eq!(status("completed") + status("pruned"), 30, "{trials:?}");
    assert!(status("pruned") >= 10, "ASHA keeps about a third per rung: {} pruned", status("pruned"));
    // TPE learnt: the best trial's learning rate is near the top of the range.
    let best = json(runs.path(), &["best", "--json"]);
    assert!(best["params"]["lr"].as_f64().unwrap() > 0.05, "{best}");
}

#[test]
fn program_sweep_files_are_checked_with_file_line_and_column() {
    let f = fake_program().display().to_string();
    common::check_errors(
        &format!(
            "name = \"p\"\n[program]\ncommand = [\"python3\", {f:?}, \"${{argz}}\"]\nworkdr = \".\"\nenv = {{ SWEEP_SEED = \"1\" }}\ntimeout = 0\n[model]\ndepth = 3\n[train]\nbatch_size = 4\n[metric]\nname = \"accuracy\"\n"
        ),
        &[
            (3, 11, "${argz} is not a macro"),
            (4, 1, "unknown key program.workdr (did you mean workdir?)"),
            (5, 9, "program.env.SWEEP_SEED: SWEEP_* variables are set by the worker"),
            (6, 11, "program.timeout must be more than 0 seconds"),
            (7, 1, "[model] configures the built-in U-Net"),
            (10, 1, "train.batch_size is a setting of the built-in U-Net"),
            (12, 8, "metric.name = \"accuracy\" is not a name a program can report"),
        ],
    );
    common::check_errors("[program]\ninterpreter = \"python3\"\n", &[(1, 1, "${program} needs program = \"train.py\"")]);
    // From disk, the program must be there (relative to the sweep file's directory).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), "[program]\nprogram = \"train.py\"\n").unwrap();
    common::sweep(dir.path())
        .arg("run")
        .arg(dir.path().join("p.toml"))
        .assert()
        .code(2)
        .stderr(contains("p.toml:2:1: program = \"train.py\": there is no such file in"));
}

/// `examples/pytorch`: the shipped script and sweep file, trained for two epochs (ASHA's first
/// rung) in the test venv
/// (which has PyTorch, numpy and pillow: tests/python-deps.sh).
#[test]
fn the_pytorch_example_trains_its_trials_for_two_epochs_in_the_test_venv() {
    let venv = common::venv();
    let runs = tempfile::tempdir().unwrap();
    let data = runs.path().join("data");
    common::sweep(runs.path()).args(["data", "synth", "--count", "20", "--size", "64x48", "--out"]).arg(&data).assert().success();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pytorch");
    // The shipped file with two trials, run from the example's directory as written.
    let text = std::fs::read_to_string(example.join("sweep.toml")).unwrap().replace("run_cap = 12", "run_cap = 2");
    assert!(text.contains("run_cap = 2"));
    let file = runs.path().join("pytorch.toml");
    std::fs::write(&file, text.replace("[program]\n", &format!("[program]\nworkdir = {:?}\n", example.display().to_string()))).unwrap();
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    common::sweep(runs.path())
        .arg("run")
        .arg(&file)
        .args(["--set", "train.epochs=2", "--workers", "2"])
        .env("PATH", path)
        .env("DATA_DIR", &data)
        .assert()
        .success()
        .stdout(contains("2 completed"));
    for trial in ["pytorch-1", "pytorch-2"] {
        let shown = show(runs.path(), trial);
        let epoch = &shown["epochs"][0];
        assert_eq!(epoch["epoch"], 1, "{shown}");
        assert_eq!(shown["epochs"].as_array().unwrap().len(), 2, "{shown}");
        for key in ["train_loss", "val_loss", "val_iou"] {
            assert!(epoch[key].as_f64().is_some_and(f64::is_finite), "{key}: {shown}");
        }
        assert!((0.0..=1.0).contains(&epoch["val_iou"].as_f64().unwrap()));
        assert!(runs.path().join("pytorch").join(trial).join("last.pt").is_file(), "the script keeps its checkpoint in SWEEP_TRIAL_DIR");
    }
}

/// The exports carry a program's own metrics: CSV columns, and TensorBoard's scalars read back by
/// TensorBoard's own reader; `sweep rm` removes a program's trial with its directory.
#[test]
fn a_program_sweep_is_exported_and_removed_like_any_other() {
    let runs = tempfile::tempdir().unwrap();
    let file = sweep_file(runs.path(), "exp", 3, "", "[parameters]\nlr = { values = [0.05, 0.2] }\n");
    common::sweep(runs.path()).arg("run").arg(&file).assert().success();
    let csv = common::sweep(runs.path()).args(["export", "--format", "csv"]).assert().success().get_output().stdout.clone();
    let csv = String::from_utf8(csv).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.contains("val_acc") && header.contains("train_loss") && header.contains(",lr,"), "{header}");
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "a row per trial and epoch: {csv}");
    let tb = runs.path().join("tb");
    common::sweep(runs.path()).args(["export", "--format", "tensorboard", "--out"]).arg(&tb).assert().success();
    let read = common::python(
        r#"
import json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
root = sys.argv[1]
out = {}
for name in sorted(os.listdir(root)):
    if os.path.isdir(os.path.join(root, name)):
        acc = EventAccumulator(os.path.join(root, name)); acc.Reload()
        out[name] = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
print(json.dumps(out))
"#,
        &[tb.to_str().unwrap()],
    );
    let iou_tag = read["exp-2"].as_object().unwrap().keys().find(|k| k.contains("val") && k.contains("iou")).cloned().unwrap_or_default();
    let series = read["exp-2"][&iou_tag].as_array().unwrap_or_else(|| panic!("{read}"));
    assert_eq!(series.len(), 3, "{read}");
    for point in series {
        let (step, value) = (point[0].as_u64().unwrap() as usize, point[1].as_f64().unwrap());
        assert!((value - iou(0.2, step)).abs() < 1e-6, "{read}");
    }
    assert!(read["exp-1"].as_object().unwrap().keys().any(|k| k.contains("acc")), "{read}");
    common::sweep(runs.path()).args(["rm", "exp-1", "--yes"]).assert().success();
    assert!(!runs.path().join("exp/exp-1").exists(), "the trial's directory goes with it");
    common::sweep(runs.path()).args(["show", "exp-1"]).assert().code(2);
}

#[test]
fn bayes_searches_several_objectives_of_a_program_and_best_prints_their_front() {
    let runs = tempfile::tempdir().unwrap();
    // val_iou rises with lr, and so does val_ms: every configuration trades one for the other.
    let file = sweep_file_with(
        runs.path(),
        "mo",
        "method = \"bayes\"\nrun_cap = 16\n[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"val_ms\"\ngoal = \"minimize\"\n[bayes]\nstartup_trials = 5",
        2,
        "",
        "[parameters]\nlr = { distribution = \"log_uniform_values\", min = 0.001, max = 0.3 }\nms_per_lr = { value = 100 }\n",
    );
    common::sweep(runs.path()).arg("run").arg(&file).args(["--workers", "2"]).assert().success();
    let trials = json(runs.path(), &["ls", "--json"]);
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 16);
    assert!(trials.iter().all(|t| t["status"] == "completed"), "{trials:?}");
    let best = json(runs.path(), &["best", "--json"]);
    let front = best["front"].as_array().unwrap();
    // No trial beats another by both, so every one is on the front, by val_iou best first.
    assert_eq!(front.len(), 16, "{best}");
    let ious: Vec<f64> = front.iter().map(|m| m["values"]["val_iou"].as_f64().unwrap()).collect();
    assert!(ious.windows(2).all(|w| w[0] >= w[1]), "{ious:?}");
    for m in front {
        let lr = m["params"]["lr"].as_f64().unwrap();
        assert!((m["values"]["val_iou"].as_f64().unwrap() - iou(lr, 2)).abs() < 1e-9);
        assert!((m["values"]["val_ms"].as_f64().unwrap() - 100.0 * lr).abs() < 1e-9);
    }
}

/// Issue 26: with two objectives a program reports every epoch (IoU up, milliseconds down, a
/// perfect trade-off in the learning rate), ASHA judges a rung by both: the smallest learning rate,
/// the worst IoU and the fastest, is on the Pareto front with the best IoU (both extremes) and
/// passes the first rung, where ASHA over IoU alone stops it there.
#[test]
fn asha_judges_a_programs_second_per_epoch_objective_at_each_rung() {
    let runs = tempfile::tempdir().unwrap();
    let asha = "[early_terminate]\ntype = \"asha\"\nmin_iter = 1\neta = 2\n";
    // The smallest learning rate runs last, so that its first rung has all three others.
    let parameters = "[parameters]\nlr = { values = [0.4, 0.2, 0.05, 0.01] }\nms_per_lr = { value = 100 }\n";
    let one = "[metric]\nname = \"val_iou\"\ngoal = \"maximize\"";
    let two = "[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"val_ms\"\ngoal = \"minimize\"";
    let fastest = |name: &str, top: &str| {
        let file = sweep_file_with(runs.path(), name, top, 4, "", &format!("{asha}{parameters}"));
        common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert().success();
        let trials = json(runs.path(), &["ls", "--sweep", name, "--json"]);
        trials.as_array().unwrap().iter().find(|t| t["params"]["lr"] == serde_json::json!(0.01)).unwrap().clone()
    };
    let epochs = |t: &Value| t["metrics"]["val_iou"]["last_epoch"].as_i64().unwrap();
    let alone = fastest("one", one);
    assert_eq!((alone["status"].as_str(), epochs(&alone)), (Some("pruned"), 1), "ASHA over IoU alone stops the worst IoU at once: {alone}");
    let both = fastest("two", two);
    assert!(epochs(&both) >= 2, "the fastest trial is on the front at the first rung: {both}");
    // Every decision of the two-objective sweep names the second objective and the front.
    for t in json(runs.path(), &["ls", "--sweep", "two", "--json"]).as_array().unwrap() {
        if t["status"] == "pruned" {
            let reason = t["error"].as_str().unwrap();
            assert!(reason.contains("val_ms") && reason.contains("Pareto front"), "{reason}");
        }
    }
}

/// Issue 26: a program trial's epochs are timed (`train_seconds` each epoch, their total as the
/// cost when it completes), so a program sweep can trade accuracy against training time and
/// bound it.
#[test]
fn a_program_trials_training_time_is_a_cost_that_objectives_and_constraints_take() {
    let runs = tempfile::tempdir().unwrap();
    let top = "[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"train_seconds\"\ngoal = \"minimize\"\n\
               [[constraints]]\nmetric = \"train_seconds\"\nmax = 0.6";
    let file = sweep_file_with(runs.path(), "timed", top, 3, "", "[parameters]\nlr = { value = 0.1 }\nsleep = { values = [0.005, 0.3] }\n");
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert().success();
    let trials = json(runs.path(), &["ls", "--sweep", "timed", "--json"]);
    let by_sleep = |s: f64| trials.as_array().unwrap().iter().find(|t| t["params"]["sleep"] == serde_json::json!(s)).unwrap().clone();
    let (fast, slow) = (by_sleep(0.005), by_sleep(0.3));
    // The total is the epochs' durations summed: three sleeps at least.
    let total = |t: &Value| t["metrics"]["train_seconds"]["last"].as_f64().unwrap();
    assert!(total(&slow) >= 0.9 && total(&fast) < 0.6 && total(&fast) > 0.015, "{fast} {slow}");
    let epochs = show(runs.path(), fast["id"].as_str().unwrap());
    let each: f64 = epochs["epochs"].as_array().unwrap().iter().map(|e| e["train_seconds"].as_f64().unwrap()).sum();
    assert!((each - total(&fast)).abs() < 1e-9, "the cost is the epochs' sum: {each} against {}", total(&fast));
    // `sweep show` says it on its cost line (a program's model is its own: no params, no infer_ms).
    let text = common::sweep(runs.path()).args(["show", fast["id"].as_str().unwrap()]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    let cost = text.lines().find(|l| l.starts_with("cost ")).unwrap_or_else(|| panic!("no cost line:\n{text}"));
    assert!(cost.trim_start_matches("cost").trim_start().starts_with("trained ") && !cost.contains("params"), "{cost}");
    assert_eq!(fast["status"], "completed");
    assert_eq!(slow["status"], "infeasible", "{slow}");
    assert!(slow["error"].as_str().unwrap().contains("train_seconds") && slow["error"].as_str().unwrap().contains("above max = 0.6"), "{slow}");
    // The front holds the feasible trial only.
    let best = json(runs.path(), &["best", "--sweep", "timed", "--json"]);
    let front: Vec<&str> = best["front"].as_array().unwrap().iter().map(|m| m["run"].as_str().unwrap()).collect();
    assert_eq!(front, [fast["id"].as_str().unwrap()]);
}
