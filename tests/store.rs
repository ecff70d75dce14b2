//! The SQLite tracker: the contract story, migrations, NaN, concurrency across processes, crash
//! safety, and the faults a store file can have (not SQLite, read-only, full disk, newer).

mod common;
#[path = "common/story.rs"]
mod story;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use rusqlite::Connection;
use sweep::config::Split;
use sweep::store::sqlite::SCHEMA_VERSION;
use sweep::store::{EpochLog, MetricValue, NewTrial, Reclaim, SqliteStore, Store, StoreError, TrialFilter, TrialStatus, WorkerInfo};

const CHILD_ENV: &str = "SWEEP_TEST_STORE_CHILD";

#[test]
fn the_contract_story_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    story::story(&mut store);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn the_history_and_ask_story_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    story::ask_story(&mut store);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn the_intervention_story_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    story::intervention_story(&mut store);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

/// Schema version 6 rebuilds `runs` (SQLite cannot widen a CHECK in place): a version-5 file's
/// trials keep every row that references them (configs, parameters, metrics, checkpoints, tags,
/// notes) and take the `stopped` status; the rebuilt file passes SQLite's own checks.
#[test]
fn a_version_5_tracker_is_rebuilt_for_stopped_trials_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    {
        // Written as a version-5 build wrote them (this build's statements name the new columns).
        let old = SqliteStore::create_at_version(&path, 5).unwrap();
        let c = old.connection();
        c.execute_batch(
            "INSERT INTO sweeps VALUES ('s', 'spec', 'h', 0, 0);
             INSERT INTO runs (id, sweep, seq, params, config_hash, seed, status, attempt, created, note)
                 VALUES ('s-1', 's', 1, '{\"augment.hue_delta\":0.1}', 'x1', 0, 'completed', 1, 0, NULL),
                        ('s-2', 's', 2, '{}', 'x2', 1, 'queued', 0, 0, 'look at this');
             INSERT INTO run_configs VALUES ('s-1', '{}'), ('s-2', '{}');
             INSERT INTO params VALUES ('s-1', 'augment.hue_delta', '0.1', 0.1);
             INSERT INTO metrics VALUES ('s-1', 1, 'val', 'iou', 0.4, 'finite', 1), ('s-1', 1, 'val', 'loss', 0.3, 'finite', 1);
             INSERT INTO metric_summary VALUES ('s-1', 'val', 'iou', 1, 0.4, 'finite', 0.4, 1, 0.4, 1),
                                               ('s-1', 'val', 'loss', 1, 0.3, 'finite', 0.3, 1, 0.3, 1);
             INSERT INTO checkpoints VALUES ('s-1', 'best', 1, '/runs/s/s-1/best.ckpt', 0.4, 'finite', 1);
             INSERT INTO run_tags VALUES ('s-1', 'team', 'vision');
             INSERT INTO removed_runs VALUES ('s-3', 's', 3, 'x3', 'failed', 2);",
        )
        .unwrap();
        assert!(c.execute("UPDATE runs SET status = 'stopped' WHERE id = 's-2'", []).is_err(), "version 5 had no stopped");
        assert_eq!(old.schema_version().unwrap(), 5);
    }
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let broken: i64 = store.connection().query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
    assert_eq!(broken, 0);
    let foreign_keys: i64 = store.connection().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(foreign_keys, 1, "foreign keys are on again after the rebuild");
    let first = store.trial("s-1").unwrap();
    assert_eq!((first.status, first.tags["team"].as_str(), first.epochs()), (TrialStatus::Completed, "vision", 1));
    assert_eq!(first.params["augment.hue_delta"], serde_json::json!(0.1));
    assert_eq!(store.metrics("s-1").unwrap().len(), 2);
    assert_eq!(store.checkpoints("s-1").unwrap().len(), 1);
    let view: f64 = store.connection().query_row("SELECT best_val_iou FROM run_results WHERE run = 's-1'", [], |r| r.get(0)).unwrap();
    assert_eq!(view, 0.4, "the results view is there again");
    assert_eq!(store.trial("s-2").unwrap().note.as_deref(), Some("look at this"));
    assert!(matches!(store.trial("s-3"), Err(StoreError::UnknownTrial { .. })));
    assert_eq!(store.intervene("s-2", &sweep::store::Intervention::Stop).unwrap(), sweep::store::Intervened::Now(TrialStatus::Stopped));
    // Foreign keys hold after the rebuild: a metric of no trial is refused.
    assert!(store.connection().execute("INSERT INTO run_tags VALUES ('nobody', 'a', 'b')", []).is_err());
    // A trial added after the rebuild numbers on (s-3 was removed: its number is not given again).
    let report = store.enqueue("s", &common::trials(1)).unwrap();
    assert_eq!(report.added, vec!["s-4".to_string()]);
}

/// Schema version 7 rebuilds `runs` again for the `infeasible` status: a version-6 trial keeps
/// a pending request and its note, and a trial may then end infeasible.
#[test]
fn a_version_6_tracker_is_rebuilt_for_infeasible_trials_and_keeps_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    {
        let old = SqliteStore::create_at_version(&path, 6).unwrap();
        let c = old.connection();
        c.execute_batch(
            "INSERT INTO sweeps VALUES ('s', 'spec', 'h', 0, 0);
             INSERT INTO runs (id, sweep, seq, params, config_hash, seed, status, attempt, created, request, request_note)
                 VALUES ('s-1', 's', 1, '{}', 'x1', 0, 'running', 1, 0, 'prune', 'by hand'),
                        ('s-2', 's', 2, '{}', 'x2', 1, 'stopped', 1, 0, NULL, NULL);
             INSERT INTO run_configs VALUES ('s-1', '{}'), ('s-2', '{}');",
        )
        .unwrap();
        assert!(c.execute("UPDATE runs SET status = 'infeasible' WHERE id = 's-2'", []).is_err(), "version 6 had no infeasible");
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let (request, note): (String, String) =
        store.connection().query_row("SELECT request, request_note FROM runs WHERE id = 's-1'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((request.as_str(), note.as_str()), ("prune", "by hand"));
    assert_eq!(store.trial("s-2").unwrap().status, TrialStatus::Stopped);
    store.connection().execute("UPDATE runs SET status = 'infeasible' WHERE id = 's-2'", []).unwrap();
    assert_eq!(store.trial("s-2").unwrap().status, TrialStatus::Infeasible);
}

#[test]
fn migrating_twice_is_harmless_and_an_older_file_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A file at schema version 1 with an epoch recorded, as an older build left it.
        let old = SqliteStore::create_at_version(&path, 1).unwrap();
        let c = old.connection();
        c.execute_batch(
            "INSERT INTO sweeps VALUES ('s', 'spec', 'h', 0, 0);
             INSERT INTO runs (id, sweep, seq, params, config_hash, seed, status, attempt, created)
                 VALUES ('s-1', 's', 1, '{}', 'x', 0, 'completed', 1, 0);
             INSERT INTO metrics VALUES ('s-1', 1, 'val', 'iou', 0.5, 'finite', 0), ('s-1', 2, 'val', 'iou', 0.7, 'finite', 0),
                                        ('s-1', 3, 'val', 'iou', NULL, 'nan', 0);",
        )
        .unwrap();
        assert_eq!(old.schema_version().unwrap(), 1);
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let run = store.trials(&TrialFilter::default()).unwrap().pop().unwrap();
    let summary = run.metrics["val_iou"];
    assert_eq!((summary.max, summary.max_epoch, summary.last_epoch), (Some(0.7), Some(2), 3), "summaries were backfilled");
    assert!(summary.last.is_nan());
    drop(store);
    let mut again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(again.trials(&TrialFilter::default()).unwrap().len(), 1);
    again.tag("s-1", &[("kept".to_string(), Some("yes".to_string()))]).unwrap();
    assert_eq!((again.trial("s-1").unwrap().tags["kept"].as_str(), again.trial("s-1").unwrap().note), ("yes", None), "a migrated trial takes tags");
    let view: f64 = again.connection().query_row("SELECT best_val_iou FROM run_results WHERE run = 's-1'", [], |r| r.get(0)).unwrap();
    assert_eq!(view, 0.7, "the results view has one row per run with its best value");
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("upgrade sweep"));
    common::sweep(dir.path()).arg("--store").arg(&path).arg("ls").assert().code(2).stderr(contains("newer sweep"));
    let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 99, "the file was left alone");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let content = b"these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    assert!(matches!(SqliteStore::open(&path), Err(StoreError::NotADatabase { .. })));
    common::sweep(dir.path())
        .arg("--store")
        .arg(&path)
        .args(["run", "sweeps/quick.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .assert()
        .code(2)
        .stderr(contains("not a sweep tracker"));
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[test]
fn every_value_reaches_sql_as_a_bound_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    store.register_sweep("s", "name = \"it's\"; DROP TABLE runs; --").unwrap();
    let mut config = common::tiny_config();
    config.data.source = "/data/it's'); DROP TABLE runs; --".into();
    let mut params = std::collections::BTreeMap::new();
    params.insert("data.source".to_string(), serde_json::json!(config.data.source));
    store.enqueue("s", &[NewTrial { config: config.clone(), params }]).unwrap();
    let run = store.trial("s-1").unwrap();
    assert_eq!(run.params["data.source"], serde_json::json!(config.data.source));
    assert_eq!(store.trial_config("s-1").unwrap().data.source, config.data.source);
    assert!(store.sweeps().unwrap()[0].spec.contains("DROP TABLE"));
}

/// One epoch with `n` metric values: a transaction big enough to be killed in the middle of.
fn big_epoch(epoch: i64, n: usize) -> EpochLog {
    EpochLog {
        epoch,
        wall: epoch as f64,
        metrics: (0..n).map(|i| MetricValue { split: Split::Val, name: format!("m{i:04}"), value: i as f64 * 0.5 }).collect(),
        checkpoints: Vec::new(),
    }
}

/// Not a test: the body of the child processes that the multi-process tests start, by running
/// this test binary again with `--ignored --exact child_process_entry` and an env var naming the
/// mode. Ignored so that a normal run lists it as what it is; it does nothing without the env var.
#[test]
#[ignore = "entry point of the child processes of the multi-process tests, not a test"]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else { return };
    let path = std::env::var("SWEEP_TEST_STORE_PATH").unwrap();
    let mut store = SqliteStore::open(Path::new(&path)).unwrap();
    let me = WorkerInfo { host: "child".into(), pid: std::process::id() };
    match mode.as_str() {
        // Claim runs until none is left, logging 3 epochs for each, and print what was claimed.
        "claim" => {
            while let Some(claim) = store.claim(Some("s"), &me, &Reclaim::after(600.0)).unwrap() {
                for e in 1..=3 {
                    store.log_epoch(&claim.lease, &big_epoch(e, 8)).unwrap();
                }
                store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
                println!("CLAIMED {}", claim.lease.trial);
            }
        }
        // Ask for trials up to a cap of 40 and train them, printing what was claimed.
        "ask" => {
            let index = std::env::var("SWEEP_TEST_ASKER").unwrap().parse().unwrap();
            for id in common::ask_and_train(&mut store, &me, index, 40) {
                println!("CLAIMED {id}");
            }
        }
        // Log large epochs forever (until killed).
        "log" => {
            let claim = store.claim(Some("s"), &me, &Reclaim::after(600.0)).unwrap().unwrap();
            println!("READY");
            let mut e = 1;
            loop {
                store.log_epoch(&claim.lease, &big_epoch(e, 400)).unwrap();
                e += 1;
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn child(mode: &str, path: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env("SWEEP_TEST_STORE_PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn eight_processes_claim_every_run_exactly_once_without_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(64)).unwrap();
    drop(store);
    let children: Vec<_> = (0..8).map(|_| child("claim", &path).spawn().unwrap()).collect();
    let mut claimed = claimed_by(children);
    claimed.sort();
    let mut unique = claimed.clone();
    unique.dedup();
    assert_eq!(claimed.len(), 64, "every run claimed");
    assert_eq!(unique.len(), 64, "no run claimed twice");
    let store = SqliteStore::open(&path).unwrap();
    let runs = store.trials(&TrialFilter::default()).unwrap();
    assert!(runs.iter().all(|r| r.status == TrialStatus::Completed && r.attempt == 1 && r.epochs() == 3));
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

/// The ids the children printed as claimed, after checking that each succeeded without a lock
/// error.
fn claimed_by(children: Vec<std::process::Child>) -> Vec<String> {
    let mut claimed = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed: {stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
        // The test harness may print its own words before ours on the same line.
        claimed.extend(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_once("CLAIMED ").map(|(_, id)| id.trim().to_string())));
    }
    claimed
}

#[test]
fn eight_processes_asking_up_to_a_cap_add_each_trial_once_with_dense_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    SqliteStore::open(&path).unwrap().register_sweep("s", "spec").unwrap();
    let children: Vec<_> = (0..8).map(|i| child("ask", &path).env("SWEEP_TEST_ASKER", i.to_string()).spawn().unwrap()).collect();
    let mut claimed = claimed_by(children);
    let store = SqliteStore::open(&path).unwrap();
    let trials = store.trials(&TrialFilter::default()).unwrap();
    assert_eq!(trials.len(), 40, "exactly the cap");
    let hashes: std::collections::HashSet<&str> = trials.iter().map(|t| t.config_hash.as_str()).collect();
    assert_eq!(hashes.len(), 40, "no config twice");
    let mut ids: Vec<String> = (1..=40).map(|n| format!("s-{n}")).collect();
    assert_eq!(trials.iter().map(|t| &t.id).collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>(), "ids 1 to 40, no gap");
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids, "every trial claimed, once");
    assert!(trials.iter().all(|t| t.status == TrialStatus::Completed && t.attempt == 1));
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn a_writer_killed_mid_transaction_leaves_a_sound_file_and_no_partial_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(5)).unwrap();
    drop(store);
    for round in 0..5u64 {
        let mut c = child("log", &path).spawn().unwrap();
        // Wait until it logs, then kill it at a moment that varies from round to round.
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("READY") {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "the child ended before logging");
        }
        std::thread::sleep(Duration::from_millis(150 + round * 73));
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        c.wait().unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        let counts: Vec<(i64, i64)> = {
            let mut stmt = store.connection().prepare("SELECT epoch, count(*) FROM metrics GROUP BY run, epoch").unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
        };
        assert!(!counts.is_empty(), "round {round}: the writer logged before it was killed");
        assert!(counts.iter().all(|&(_, n)| n == 400), "round {round}: an epoch is all there or not at all: {counts:?}");
    }
}

/// Runs `script` as root in a private mount namespace (so that it can mount a tmpfs or a
/// read-only bind without touching the machine), with $SWEEP set to the binary under test.
fn in_mount_namespace(script: &str, dir: &Path) -> std::process::Output {
    Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("SWEEP", common::sweep_bin())
        .env("D", dir)
        .env("REPO", env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("unshare (util-linux) is needed for the disk-fault tests")
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("small")).unwrap();
    let sweep_file = dir.path().join("s.toml");
    std::fs::write(&sweep_file, common::tiny_sweep("full", 1, &[0.0])).unwrap();
    let bigger = dir.path().join("t.toml");
    std::fs::write(&bigger, common::tiny_sweep("full", 1, &[0.0, 0.1, 0.2, 0.3, 0.4])).unwrap();
    let out = in_mount_namespace(
        r#"set -e
        mount -t tmpfs -o size=448k tmpfs "$D/small"
        "$SWEEP" --runs-dir "$D/runs" --store "$D/small/t.db" run "$D/s.toml" --plain > "$D/first.log" 2>&1
        dd if=/dev/zero of="$D/small/fill" bs=4k 2>/dev/null || true
        set +e
        "$SWEEP" --runs-dir "$D/runs" --store "$D/small/t.db" run "$D/t.toml" --plain > "$D/full.log" 2>&1
        echo "exit=$?"
        rm "$D/small/fill"
        cp "$D/small/t.db" "$D/copy.db"
        "#,
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(dir.path().join("full.log")).unwrap();
    assert!(stdout.contains("exit=1"), "exit code 1 on a full disk: {stdout} {log}");
    assert!(log.contains("disk is full"), "{log}");
    let store = SqliteStore::open(&dir.path().join("copy.db")).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let runs = store.trials(&TrialFilter::default()).unwrap();
    assert_eq!(runs.len(), 1, "the first sweep's run is intact and nothing half-added");
    assert_eq!((runs[0].status, runs[0].epochs()), (TrialStatus::Completed, 1));
}

#[test]
fn a_read_only_store_is_a_clear_error_for_writers_and_still_readable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ro")).unwrap();
    std::fs::write(dir.path().join("s.toml"), common::tiny_sweep("ro", 1, &[0.0])).unwrap();
    common::sweep(&dir.path().join("runs"))
        .arg("--store")
        .arg(dir.path().join("ro/t.db"))
        .args(["run", dir.path().join("s.toml").to_str().unwrap(), "--plain"])
        .assert()
        .success();
    let before = std::fs::read(dir.path().join("ro/t.db")).unwrap();
    let out = in_mount_namespace(
        r#"mount --bind "$D/ro" "$D/ro" && mount -o remount,bind,ro "$D/ro" || exit 90
        "$SWEEP" --runs-dir "$D/runs" --store "$D/ro/t.db" run "$D/s.toml" --retry-failed --plain > "$D/w.log" 2>&1
        echo "write=$?"
        "$SWEEP" --runs-dir "$D/runs" --store "$D/ro/t.db" ls > "$D/r.log" 2>&1
        echo "read=$?"
        "#,
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let write_log = std::fs::read_to_string(dir.path().join("w.log")).unwrap();
    let read_log = std::fs::read_to_string(dir.path().join("r.log")).unwrap();
    assert!(stdout.contains("write=2"), "{stdout}\n{write_log}");
    assert!(write_log.contains("read-only"), "{write_log}");
    assert!(stdout.contains("read=0"), "{stdout}\n{read_log}");
    assert!(read_log.contains("ro-1"), "{read_log}");
    assert_eq!(std::fs::read(dir.path().join("ro/t.db")).unwrap(), before, "nothing was written");
}

#[test]
fn claims_wait_for_a_busy_writer_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(1)).unwrap();
    // Another connection holds the write lock for a while.
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE; UPDATE sweeps SET updated = 1;").unwrap();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        blocker.execute_batch("COMMIT").unwrap();
    });
    let started = Instant::now();
    let claim = store.claim(Some("s"), &WorkerInfo { host: "h".into(), pid: 1 }, &Reclaim::after(60.0)).unwrap();
    assert!(claim.is_some());
    assert!(started.elapsed() >= Duration::from_millis(600), "it waited for the lock");
    handle.join().unwrap();
}

#[test]
fn a_run_whose_worker_is_gone_on_this_host_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(2)).unwrap();
    let here = WorkerInfo::this_process();
    // s-1's worker is this live process; s-2's was a process of this host that has ended.
    let mut ended = Command::new("true").spawn().unwrap();
    let gone = WorkerInfo { host: here.host.clone(), pid: ended.id() };
    ended.wait().unwrap();
    let patient = Reclaim::after(600.0);
    assert_eq!(store.claim(Some("s"), &here, &patient).unwrap().unwrap().lease.trial, "s-1");
    assert_eq!(store.claim(Some("s"), &gone, &patient).unwrap().unwrap().lease.trial, "s-2");
    // Both heartbeats are fresh, but s-2's worker is gone: it is taken over at once, as a crash.
    let taken = store.claim(Some("s"), &here, &patient).unwrap().expect("s-2 taken over without waiting 600 s");
    assert_eq!((taken.lease.trial.as_str(), taken.lease.attempt, taken.resumed), ("s-2", 2, true));
    assert!(store.claim(Some("s"), &here, &patient).unwrap().is_none(), "s-1's worker is alive: it keeps its run");
    // Gone again at the last attempt: the run fails, saying why.
    drop(store);
    let c = Connection::open(dir.path().join("t.db")).unwrap();
    c.execute("UPDATE runs SET pid = ?1 WHERE id = 's-2'", [i64::from(gone.pid)]).unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    assert!(store.claim(Some("s"), &here, &Reclaim { stale_after: 600.0, max_attempts: 2 }).unwrap().is_none());
    let failed = store.trial("s-2").unwrap();
    assert_eq!(failed.status, TrialStatus::Failed);
    assert!(failed.error.as_deref().unwrap().contains(&format!("pid {} on {}) is gone", gone.pid, here.host)), "{:?}", failed.error);
}

#[test]
fn another_applications_sqlite_file_is_refused_byte_for_byte_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('keep me');").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(&err, StoreError::ForeignDatabase { tables, .. } if tables == &["notes"]), "{err}");
    for args in [&["ls"][..], &["status"], &["run", "sweeps/quick.toml", "--plain"]] {
        common::sweep(&dir.path().join("runs"))
            .arg("--store")
            .arg(&path)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .assert()
            .code(2)
            .stderr(contains("another application's SQLite database (tables notes)").and(contains("left untouched")));
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte changed");
    let mut siblings: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    siblings.sort();
    assert_eq!(siblings, ["app.db", "runs"], "no -wal or -shm file left beside it");

    // A new empty file becomes a tracker; so does a missing one.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    common::sweep(dir.path()).arg("--store").arg(&empty).arg("ls").assert().success();
    assert_eq!(SqliteStore::open(&empty).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn a_store_path_that_is_a_directory_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["ls"][..], &["run", "sweeps/quick.toml", "--plain"]] {
        common::sweep(dir.path())
            .arg("--store")
            .arg(dir.path())
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .assert()
            .code(2)
            .stderr(contains("is a directory; --store takes a tracker file"));
    }
}

#[test]
fn a_full_disk_mid_sweep_fails_no_trial_and_the_next_run_resumes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("small")).unwrap();
    std::fs::write(dir.path().join("s.toml"), common::tiny_sweep("disk", 12, &[0.0, 0.1])).unwrap();
    // The disk under the store fills while two trials train (issue 15, item 10); then space is
    // freed and the same command runs again, with a --stale-after it must not wait for.
    let out = in_mount_namespace(
        r#"mount -t tmpfs -o size=8m tmpfs "$D/small" || exit 90
        run() { "$SWEEP" --runs-dir "$D/runs" --store "$D/small/t.db" run "$D/s.toml" --plain --no-plot --workers 2 --stale-after 600 "$@"; }
        run > "$D/full.log" 2>&1 &
        sweep=$!
        until "$SWEEP" --runs-dir "$D/runs" --store "$D/small/t.db" ls --where "epochs >= 1" 2>/dev/null | grep -q disk-2; do sleep 0.1; done
        dd if=/dev/zero of="$D/small/fill" bs=4k 2>/dev/null
        wait $sweep
        echo "full=$?"
        rm "$D/small/fill"
        timeout 120 "$SWEEP" --runs-dir "$D/runs" --store "$D/small/t.db" run "$D/s.toml" --plain --no-plot --workers 2 --stale-after 600 > "$D/again.log" 2>&1
        echo "again=$?"
        cp "$D/small/t.db" "$D/copy.db"
        "#,
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let full = std::fs::read_to_string(dir.path().join("full.log")).unwrap_or_default();
    let again = std::fs::read_to_string(dir.path().join("again.log")).unwrap_or_default();
    assert!(stdout.contains("full=1") && full.contains("disk is full"), "{stdout}\n{full}");
    assert!(stdout.contains("again=0"), "the next run took the trials over at once and finished them: {stdout}\n{full}\n{again}");
    let store = SqliteStore::open(&dir.path().join("copy.db")).unwrap();
    for r in store.trials(&TrialFilter::default()).unwrap() {
        assert_eq!((r.status, r.epochs()), (TrialStatus::Completed, 12), "{} {:?}", r.id, r.error);
    }
}

/// The pruners and samplers read narrow views of the history (issue 28's scale: a sweep of
/// 10,000 trials of 50 epochs must not be read whole after every epoch); on any sweep, every
/// decision they make through those views is the one they make over every recorded value.
mod views {
    use proptest::prelude::*;
    use sweep::config::Goal;
    use sweep::config::Split;
    use sweep::runner::study::{Study, history};
    use sweep::store::{EpochLog, HistoryView, MetricValue, NewTrial, Reclaim, SqliteStore, Store, TrialFilter, TrialStatus, WorkerInfo};
    use sweep::study::spec::parse;

    const PRUNERS: [&str; 8] = [
        "type = \"median\"",
        "type = \"percentile\"\npercentile = 25.0\nwarmup = 1\nn_min_trials = 2\ninterval = 2",
        "type = \"patient\"\npatience = 1\nmin_delta = 0.05",
        "type = \"threshold\"\nlower = 0.2\nupper = 0.95",
        "type = \"asha\"\nmin_iter = 1\neta = 2",
        "type = \"asha\"\nmin_iter = 1\neta = 2\nbest_so_far = true",
        "type = \"hyperband\"\nmin_iter = 1\neta = 2\nbootstrap_count = 1",
        "type = \"hyperband\"\nmin_iter = 1\neta = 2\nbest_so_far = true",
    ];

    fn spec_text(goal: &str, pruner: &str) -> String {
        format!(
            "name = \"v\"\nmethod = \"bayes\"\nrun_cap = 100\n[metric]\nname = \"val_iou\"\ngoal = \"{goal}\"\n[train]\nepochs = 6\n\
             [bayes]\nstartup_trials = 2\n[early_terminate]\n{pruner}\n\
             [parameters]\n\"train.learning_rate\" = {{ distribution = \"log_uniform_values\", min = 0.0001, max = 0.01 }}\n"
        )
    }

    /// A value of the objective: mostly numbers, some NaN and infinities.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![8 => 0.0..1.0f64, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY), 1 => Just(f64::NEG_INFINITY)]
    }

    /// Trials in claim order: a learning rate, an end (0 completed, 1 pruned, 2 failed, 3 left
    /// running) and the values of its epochs 1, 2, ...; then trials left queued.
    fn sweep() -> impl Strategy<Value = (Vec<(f64, u8, Vec<f64>)>, usize, bool)> {
        (prop::collection::vec((1e-4..1e-2f64, 0..4u8, prop::collection::vec(value(), 0..=6)), 1..10), 0..3usize, any::<bool>())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn every_pruner_and_tpe_decide_through_their_views_as_over_the_whole_history((trials, queued, maximize) in sweep()) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = SqliteStore::open(&dir.path().join("v.db")).unwrap();
            let goal = if maximize { "maximize" } else { "minimize" };
            let text = spec_text(goal, PRUNERS[0]);
            let spec = parse(&text, std::path::Path::new("v.toml")).unwrap();
            store.register_sweep("v", &text).unwrap();
            let point = |lr: f64| std::collections::BTreeMap::from([("train.learning_rate".to_string(), serde_json::json!(lr))]);
            let new = |lr: f64| { let t = spec.trial_of(&point(lr)).unwrap(); NewTrial { config: t.config, params: t.params } };
            let mut all: Vec<NewTrial> = trials.iter().map(|(lr, ..)| new(*lr)).collect();
            all.extend((0..queued).map(|i| new(2e-4 + i as f64 * 1e-3)));
            store.enqueue("v", &all).unwrap();
            let worker = WorkerInfo { host: "h".into(), pid: 1 };
            for (end, values) in trials.iter().map(|(_, end, values)| (end, values)) {
                let claim = store.claim(Some("v"), &worker, &Reclaim::after(3600.0)).unwrap().unwrap();
                for (e, &v) in values.iter().enumerate() {
                    let metrics = vec![MetricValue { split: Split::Val, name: "iou".into(), value: v }];
                    store.log_epoch(&claim.lease, &EpochLog { epoch: e as i64 + 1, wall: 0.0, metrics, checkpoints: vec![] }).unwrap();
                }
                let status = [TrialStatus::Completed, TrialStatus::Pruned, TrialStatus::Failed][..].get(*end as usize);
                if let Some(&status) = status {
                    store.finish(&claim.lease, status, None).unwrap();
                }
            }
            let full = store.history("v", "val_iou", HistoryView::Full).unwrap();
            for pruner in PRUNERS {
                let text = spec_text(goal, pruner);
                let study = Study::of(parse(&text, std::path::Path::new("v.toml")).unwrap());
                let whole = history(study.spec(), full.clone());
                let reference = study.spec().early_terminate.as_ref().unwrap().pruner();
                for row in &full {
                    for epoch in 1..=7 {
                        let expected = reference.decide(&whole, row.seq as usize, epoch);
                        let got = study.judge(&store, &row.id, epoch).unwrap();
                        prop_assert_eq!(got, expected, "{} judging {} after epoch {}", pruner, row.id, epoch);
                    }
                }
            }
            // `best` reads one summary a trial; it names the leaderboard's first.
            let rows = store.trials(&TrialFilter { sweep: Some("v".into()), status: None }).unwrap();
            let goal = if maximize { Goal::Maximize } else { Goal::Minimize };
            let ranked = sweep::store::rank_completed(&rows, "val_iou", goal).first().map(|r| (r.trial.id.clone(), r.value, r.epoch));
            let best = store.best("val_iou", goal, Some("v")).unwrap().map(|b| (b.trial.id, b.value, b.epoch));
            prop_assert_eq!(best, ranked);
            // TPE asks from the summary view; over every value it proposes the same point.
            let study = Study::of(spec.clone());
            let expected = spec.sampler().ask(&history(&spec, full.clone()));
            let asked = study.ask(&mut store).unwrap();
            let params = asked.map(|id| store.trial(&id).unwrap().params);
            prop_assert_eq!(params, expected);
        }
    }
}
