//! Managing trials through the `sweep` binary (issue 16, item 3): tags, notes and removal; and
//! the command line's conventions (item 5): help on every argument, exit codes in `--help`,
//! `--json` on every command that prints a table, shell completions. The tracker is a real
//! SQLite file filled through the library (no training: these commands only read and write it).

mod common;

use std::path::Path;

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use sweep::config::Split;
use sweep::store::{EpochLog, Lease, MetricValue, Reclaim, SqliteStore, Store, TrialStatus, WorkerInfo};

/// Issue 29: a removed sweep's empty entry stayed forever; `rm --sweep S --all` removes the sweep
/// with every trial and its directory, never while a trial runs.
#[test]
fn rm_all_removes_a_sweep_with_its_trials_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let sweep = || common::sweep(runs);
    std::fs::create_dir_all(runs.join("m/plots")).unwrap();
    sweep().args(["rm", "--all", "--yes"]).assert().code(2).stderr(contains("--sweep"));
    sweep().args(["rm", "--sweep", "m", "--all", "--status", "failed", "--yes"]).assert().code(2);
    // m-3 runs: refused, named, nothing removed.
    sweep().args(["rm", "--sweep", "m", "--all", "--yes"]).assert().code(2).stderr(contains("trial m-3 is running"));
    assert_eq!(ids(&json(runs, &["ls", "--json"])).len(), 4);
    let mut store = SqliteStore::open(&runs.join("sweep.db")).unwrap();
    let running = store.trial("m-3").unwrap();
    let lease = Lease { trial: running.id.clone(), attempt: running.attempt };
    store.finish(&lease, TrialStatus::Failed, Some("stopped for the test")).unwrap();
    sweep().args(["rm", "--sweep", "m", "--all", "--yes"]).assert().success().stdout("removed sweep m and its 4 trial(s)\n");
    assert!(!runs.join("m").exists(), "the sweep's directory, charts and all, is gone");
    assert!(store.sweeps().unwrap().is_empty(), "no empty entry stays");
    sweep().args(["status", "m"]).assert().code(2).stderr(contains("no sweep"));
    // The name is free: a sweep under it numbers its trials from 1.
    store.register_sweep("m", "name = \"m\"").unwrap();
    assert_eq!(store.enqueue("m", &[common::seeded_trial(0)]).unwrap().added, ["m-1"]);
}

fn log(store: &mut dyn Store, lease: &Lease, epoch: i64, iou: f64) {
    let metrics = [("iou", iou), ("loss", 1.0 - iou)].map(|(name, value)| MetricValue { split: Split::Val, name: name.into(), value }).to_vec();
    store.log_epoch(lease, &EpochLog { epoch, wall: 1000.0 + epoch as f64, metrics, checkpoints: Vec::new() }).unwrap();
}

/// A tracker under `runs` with sweep `m`: m-1 completed (2 epochs), m-2 failed (1 epoch), m-3
/// running, m-4 queued, each with a trial directory.
fn tracker(runs: &Path) {
    let mut store = SqliteStore::open(&runs.join("sweep.db")).unwrap();
    store.register_sweep("m", "name = \"m\"").unwrap();
    store.enqueue("m", &(0..4).map(common::seeded_trial).collect::<Vec<_>>()).unwrap();
    let worker = WorkerInfo { host: "test-host".into(), pid: 1 };
    let first = store.claim(Some("m"), &worker, &Reclaim::after(600.0)).unwrap().unwrap();
    log(&mut store, &first.lease, 1, 0.5);
    log(&mut store, &first.lease, 2, 0.7);
    store.finish(&first.lease, TrialStatus::Completed, None).unwrap();
    let second = store.claim(Some("m"), &worker, &Reclaim::after(600.0)).unwrap().unwrap();
    log(&mut store, &second.lease, 1, 0.6);
    store.finish(&second.lease, TrialStatus::Failed, Some("boom")).unwrap();
    store.claim(Some("m"), &worker, &Reclaim::after(600.0)).unwrap().unwrap();
    for n in 1..=4 {
        let dir = runs.join("m").join(format!("m-{n}"));
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
    }
}

fn json(runs: &Path, args: &[&str]) -> Value {
    let out = common::sweep(runs).args(args).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

fn ids(listed: &Value) -> Vec<&str> {
    listed.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect()
}

/// Issue 27, item 8: tag, note and error text reached the terminal raw: an OSC sequence in a tag
/// retitled the terminal of whoever ran `show` or `ls`, a newline broke the table's rows.
#[test]
fn control_characters_in_tags_and_notes_are_shown_escaped_in_text_and_kept_in_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let sweep = || common::sweep(runs);
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[31mred\nrow\u{202e}";
    let text = |args: &[&str]| String::from_utf8(sweep().args(args).assert().success().get_output().stdout.clone()).unwrap();
    let echoed = text(&["tag", "m-1", &format!("t={evil}")]);
    assert_eq!(echoed, "m-1: t=\\e]0;pwned\\u{7}\\e[31mred\\nrow\\u{202e}\n");
    sweep().args(["note", "m-2", "line one\nline \u{1b}[2Jtwo"]).assert().success();
    for out in [text(&["ls"]), text(&["show", "m-1"]), text(&["show", "m-2"]), text(&["status"])] {
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{202e}'), "{out:?}");
    }
    let table = text(&["ls"]);
    assert_eq!(table.lines().count(), 5, "a header and one line per trial: {table}");
    assert!(text(&["show", "m-2"]).contains("note         line one\n             line \\e[2Jtwo\n"));
    // JSON and CSV carry the real text.
    let listed = json(runs, &["ls", "--json"]);
    assert_eq!(listed[0]["tags"]["t"], evil);
    let csv = text(&["export", "--format", "csv"]);
    assert!(csv.contains(&format!("\"{evil}\"")) || csv.contains(evil), "{csv:?}");
    // An error quoting the input escapes it too.
    let err = sweep().args(["tag", "m-1", "\u{1b}[31m=x"]).assert().code(2).get_output().stderr.clone();
    assert!(!String::from_utf8(err).unwrap().contains('\u{1b}'));
    // A long value is echoed by its start and length.
    let long = "v".repeat(10_000);
    let echoed = text(&["tag", "m-3", &format!("long={long}")]);
    assert!(echoed.len() < 200 && echoed.contains("(10000 characters)"), "{echoed}");
}

/// Issue 27, item 12: `sweep note T -` stored "-", and a long note could not be given at all.
#[test]
fn a_note_is_read_from_standard_input_or_a_file_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let sweep = || common::sweep(runs);
    let note_of = |id: &str| json(runs, &["show", id, "--json"])["note"].clone();
    sweep().args(["note", "m-1", "-"]).write_stdin("from a pipe\nsecond line\n").assert().success().stdout("m-1: note set\n");
    assert_eq!(note_of("m-1"), "from a pipe\nsecond line\n");
    let long = "a long analysis. ".repeat(30_000);
    let file = dir.path().join("note.md");
    std::fs::write(&file, &long).unwrap();
    sweep().args(["note", "m-2", "--file"]).arg(&file).assert().success();
    assert_eq!(note_of("m-2"), long.as_str());
    // Too large, not UTF-8, missing, or both ways at once: exit 2, the note unchanged.
    std::fs::write(&file, "x".repeat((1 << 20) + 1)).unwrap();
    sweep().args(["note", "m-2", "--file"]).arg(&file).assert().code(2).stderr(contains("over 1048576 bytes"));
    std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
    sweep().args(["note", "m-2", "--file"]).arg(&file).assert().code(2).stderr(contains("not UTF-8"));
    sweep().args(["note", "m-2", "--file", "/nonexistent/note.md"]).assert().code(2).stderr(contains("/nonexistent/note.md"));
    sweep().args(["note", "m-2", "text", "--file"]).arg(&file).assert().code(2);
    assert_eq!(note_of("m-2"), long.as_str());
    sweep().args(["note", "m-1", ""]).assert().success().stdout("m-1: note cleared\n");
}

#[test]
fn tags_and_notes_are_shown_listed_exported_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let sweep = || common::sweep(runs);
    sweep().args(["tag", "m-1", "team=vision", "stage=draft"]).assert().success().stdout("m-1: stage=draft team=vision\n");
    sweep().args(["tag", "m-1", "stage="]).assert().success().stdout("m-1: team=vision\n");
    sweep().args(["tag", "m-2", "team=audio", "url=http://x/?a=b"]).assert().success().stdout("m-2: team=audio url=http://x/?a=b\n");
    sweep().args(["tag", "m-1", "sweep.trial=x"]).assert().code(2).stderr(contains("reserved"));
    sweep().args(["tag", "m-1", "novalue"]).assert().code(2).stderr(contains("expected NAME=VALUE"));
    sweep().args(["tag", "m-9", "a=b"]).assert().code(2).stderr(contains("no trial \"m-9\""));
    sweep().args(["note", "m-1", "the baseline\nrerun with more epochs"]).assert().success().stdout("m-1: note set\n");

    let show = sweep().args(["show", "m-1"]).assert().success().get_output().stdout.clone();
    let show = String::from_utf8(show).unwrap();
    assert!(show.contains("tags         team=vision\nnote         the baseline\n             rerun with more epochs\n"), "{show}");

    let vision = json(runs, &["ls", "--json", "--where", "tag.team = \"vision\""]);
    assert_eq!(ids(&vision), ["m-1"]);
    assert_eq!(vision[0]["tags"], serde_json::json!({"team": "vision"}));
    assert_eq!(vision[0]["note"], "the baseline\nrerun with more epochs");
    assert_eq!(ids(&json(runs, &["ls", "--json", "--where", "not tag.team = vision"])), ["m-2", "m-3", "m-4"], "untagged trials too");
    sweep().args(["ls", "--where", "tag. = x"]).assert().code(2).stderr(contains("unknown field"));
    let table = sweep().arg("ls").assert().success().get_output().stdout.clone();
    let table = String::from_utf8(table).unwrap();
    assert!(table.lines().next().unwrap().trim_end().ends_with("tags") && table.contains("team=audio url=http://x/?a=b"), "{table}");

    let csv = sweep().args(["ls", "--csv"]).assert().success().get_output().stdout.clone();
    let header = String::from_utf8(csv).unwrap().lines().next().unwrap().to_string();
    assert!(header.ends_with(",tag.team,tag.url,note"), "{header}");
    let export = json(runs, &["export", "--format", "json", "--sweep", "m"]);
    assert_eq!((export[0]["tags"]["team"].as_str(), export[1]["tags"]["url"].as_str()), (Some("vision"), Some("http://x/?a=b")));
    let csv = sweep().args(["export", "--format", "csv"]).assert().success().get_output().stdout.clone();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",tag.team,tag.url,note") && csv.contains(",vision,,\"the baseline\nrerun"), "{csv}");

    sweep().args(["note", "m-1", ""]).assert().success().stdout("m-1: note cleared\n");
    sweep().args(["show", "m-1"]).assert().success().stdout(contains("note").not());
}

#[test]
fn rm_removes_trials_and_their_directories_after_a_confirmation_never_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let sweep = || common::sweep(runs);
    let trial_dir = |n: usize| runs.join("m").join(format!("m-{n}"));
    let listed = || ids(&json(runs, &["ls", "--json"])).into_iter().map(str::to_string).collect::<Vec<_>>();

    // Without a terminal to ask on, and without --yes: refused, nothing removed.
    sweep().args(["rm", "m-2"]).assert().code(2).stderr(contains("pass --yes"));
    // Only running trials: refused, named, nothing removed.
    sweep().args(["rm", "m-3", "--yes"]).assert().code(2).stderr(contains("trial m-3 is running"));
    assert_eq!(listed(), ["m-1", "m-2", "m-3", "m-4"]);
    assert!(trial_dir(2).is_dir() && trial_dir(3).is_dir());

    // Running trials among others: they are named and left, the others removed.
    sweep().args(["rm", "m-2", "m-3", "--yes"]).assert().success().stdout("removed 1 trial: m-2\n").stderr(contains("left m-3 (running"));
    assert_eq!(listed(), ["m-1", "m-3", "m-4"]);
    assert!(!trial_dir(2).exists() && trial_dir(3).is_dir());
    sweep().args(["show", "m-2"]).assert().code(2).stderr(contains("no trial \"m-2\""));

    // A trial directory of another tracker (a shared runs directory) is refused before anything goes.
    std::fs::write(trial_dir(4).join("tracker.json"), r#"{"id": "0123456789abcdef", "store": "/elsewhere/sweep.db"}"#).unwrap();
    sweep().args(["rm", "m-4", "m-1", "--yes"]).assert().code(2).stderr(contains("/elsewhere/sweep.db"));
    assert_eq!(listed(), ["m-1", "m-3", "m-4"]);
    assert!(trial_dir(1).is_dir());
    std::fs::remove_file(trial_dir(4).join("tracker.json")).unwrap();

    // By sweep and status.
    sweep().args(["rm", "--sweep", "m", "--status", "running", "--yes"]).assert().code(2).stderr(contains("never removed"));
    sweep().args(["rm", "--sweep", "m", "--status", "completed", "--yes"]).assert().success().stdout("removed 1 trial: m-1\n");
    assert!(!trial_dir(1).exists());
    sweep().args(["rm", "--sweep", "m", "--yes"]).assert().success().stdout("removed 1 trial: m-4\n").stderr(contains("left m-3"));
    assert_eq!(listed(), ["m-3"]);

    // A removed config enqueued again (a rerun of the sweep file) gets a new number.
    let mut store = SqliteStore::open(&runs.join("sweep.db")).unwrap();
    assert_eq!(store.enqueue("m", &[common::seeded_trial(0)]).unwrap().added, ["m-5"]);
}

#[test]
fn rm_asks_on_a_terminal() {
    // `script` runs the command on a pseudo-terminal and feeds it our standard input.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` (util-linux) here: the terminal prompt is not tested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let prompt = |answer: &str| {
        let line = format!("{} --runs-dir {} rm m-2", common::sweep_bin().display(), runs.display());
        assert_cmd::Command::new("script").args(["-qec", &line, "/dev/null"]).env_remove("SWEEP_STORE").write_stdin(answer).assert().success()
    };
    prompt("n\n").stdout(contains("remove m-2 (failed) and its directory").and(contains("nothing removed")));
    assert!(runs.join("m/m-2").is_dir());
    prompt("y\n").stdout(contains("removed 1 trial: m-2"));
    assert!(!runs.join("m/m-2").exists());
}

#[test]
fn every_command_that_prints_a_table_prints_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    tracker(runs);
    let status = json(runs, &["status", "--json"]);
    assert_eq!((status[0]["sweep"].as_str(), status[0]["counts"]["completed"].as_i64()), (Some("m"), Some(1)));
    assert_eq!((status[0]["running"][0].as_str(), status[0]["best"]["run"].as_str()), (Some("m-3"), Some("m-1")));
    assert_eq!(ids(&json(runs, &["ls", "--json"])).len(), 4);
    let show = json(runs, &["show", "m-1", "--json"]);
    assert_eq!((show["id"].as_str(), show["epochs"].as_array().map(Vec::len)), (Some("m-1"), Some(2)));
    let compare = json(runs, &["compare", "m-1", "m-2", "--json"]);
    assert_eq!(compare["differing"], serde_json::json!(["train.seed"]));
    assert_eq!(compare["trials"].as_array().map(Vec::len), Some(2));
    assert_eq!(json(runs, &["best", "--json"])["run"], "m-1");
    // Issue 27, item 15: with nothing to rank, --json printed nothing on standard output.
    let out = common::sweep(runs).args(["best", "--json", "--metric", "train_dice"]).assert().code(1).get_output().clone();
    let none: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(none["run"].is_null() && none["error"].as_str().unwrap().contains("no completed trial has a train_dice value yet"), "{none}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no completed trial has a train_dice value yet"));
    // The dry run's table, as JSON: one document on standard output, notes on standard error.
    let file = runs.join("dry.toml");
    std::fs::write(&file, common::tiny_sweep("dry", 1, &[0.0, 0.1]).replace("method = \"grid\"", "method = \"random\"\nrun_cap = 3")).unwrap();
    let dry = json(runs, &["run", file.to_str().unwrap(), "--dry-run", "--json"]);
    assert_eq!((dry["sweep"].as_str(), dry["method"].as_str(), dry["metric"].as_str()), (Some("dry"), Some("random"), Some("val_iou")));
    let trials = dry["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "random search over two values finds two configs: {dry}");
    let mut hues: Vec<f64> = trials.iter().map(|t| t["params"]["augment.hue_delta"].as_f64().unwrap()).collect();
    hues.sort_by(f64::total_cmp);
    assert_eq!(hues, [0.0, 0.1]);
    assert!(trials.iter().all(|t| t["status"] == "new" && t["trial"].is_null() && t["config_hash"].as_str().unwrap().len() == 64), "{dry}");
    common::sweep(runs)
        .args(["run", file.to_str().unwrap(), "--dry-run", "--json"])
        .assert()
        .success()
        .stderr(contains("note: random search found only 2"));
}

/// Every argument of every command, with its command's path, where `missing` holds.
fn args_where(cmd: &clap::Command, path: &str, missing: &dyn Fn(&clap::Arg) -> bool, out: &mut Vec<String>) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && missing(a)) {
        out.push(format!("{path} {}", arg.get_id()));
    }
    for sub in cmd.get_subcommands() {
        args_where(sub, &format!("{path} {}", sub.get_name()), missing, out);
    }
}

#[test]
fn every_argument_has_a_help_line_and_help_lists_the_exit_codes() {
    let cmd = sweep::cli::command();
    let mut without_help = Vec::new();
    args_where(&cmd, "sweep", &|a| a.get_help().is_none() && a.get_long_help().is_none(), &mut without_help);
    assert!(without_help.is_empty(), "arguments without a help line: {without_help:#?}");
    let mut commands_without_about = Vec::new();
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                out.push(format!("{path} {}", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    walk(&cmd, "sweep", &mut commands_without_about);
    assert!(commands_without_about.is_empty(), "{commands_without_about:?}");

    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| String::from_utf8(common::sweep(dir.path()).args(args).assert().success().get_output().stdout.clone()).unwrap();
    let top = help(&["--help"]);
    assert!(top.contains("Exit codes:\n  0  success\n  1  a trial or runtime failure") && top.contains("  2  bad usage or bad input"), "{top}");
    let synth = help(&["data", "synth", "--help"]);
    assert!(!synth.contains("--runs-dir") && !synth.contains("--store") && synth.contains("--count"), "data synth lists only its options: {synth}");
    assert!(!help(&["completions", "--help"]).contains("--store"));
    assert!(help(&["ls", "--help"]).contains("--store"), "the tracker's commands keep the global options");
    // Before or after the command, as README shows.
    tracker(dir.path());
    common::sweep(dir.path()).arg("ls").assert().success().stdout(contains("m-1"));
    assert_cmd::Command::new(common::sweep_bin())
        .args(["ls", "--runs-dir"])
        .arg(dir.path())
        .env_remove("SWEEP_STORE")
        .env_remove("SWEEP_RUNS")
        .assert()
        .success()
        .stdout(contains("m-1"));
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = common::sweep(dir.path()).args(["completions", shell]).assert().success().get_output().stdout.clone();
        let script = String::from_utf8(out).unwrap();
        for sub in ["run", "export", "tag", "rm", "completions"] {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        if shell == "bash" && std::process::Command::new("bash").arg("--version").output().is_ok() {
            let file = dir.path().join("sweep.bash");
            std::fs::write(&file, &script).unwrap();
            let check = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
            assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
        }
    }
    common::sweep(dir.path()).args(["completions", "tcsh"]).assert().code(2);
}

/// Issue 31: `SWEEP_CPU_FEATURES` caps our kernels' instruction set; a value that names none is
/// the user's input, refused before anything runs with the valid values, exit 2.
#[test]
fn an_unknown_cpu_features_cap_is_refused_with_the_valid_values() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = || common::sweep(dir.path());
    sweep()
        .args(["ls"])
        .env("SWEEP_CPU_FEATURES", "sse4")
        .assert()
        .code(2)
        .stderr(contains("error: environment variable SWEEP_CPU_FEATURES=\"sse4\" is not an instruction set: use avx512, avx2 or portable"));
    // A valid cap passes the check: the command goes on to its own answer (no tracker here yet).
    sweep().args(["ls"]).env("SWEEP_CPU_FEATURES", "avx2").assert().code(2).stderr(contains("no tracker here yet"));
}
