//! Beyond one machine, against the real engines: the tracker contract on PostgreSQL, claims from
//! many connections, lost connections, and a sweep run as a SLURM job array of workers.

mod common;
#[path = "common/services.rs"]
mod services;
#[path = "common/story.rs"]
mod story;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use predicates::str::contains;
use services::{Postgres, Slurm, wait_until};
use sweep::config::Split;
use sweep::store::{EpochLog, MetricValue, PostgresStore, Reclaim, Store, StoreError, TrialFilter, TrialStatus, WorkerInfo};

fn epoch(e: i64) -> EpochLog {
    EpochLog {
        epoch: e,
        wall: e as f64,
        metrics: vec![
            MetricValue { split: Split::Val, name: "iou".into(), value: 0.5 + e as f64 * 0.01 },
            MetricValue { split: Split::Val, name: "loss".into(), value: f64::NAN },
        ],
        checkpoints: Vec::new(),
    }
}

#[test]
fn the_contract_story_holds_on_postgres_and_migrations_apply_once() {
    let pg = Postgres::start();
    let url = pg.create_db("story");
    let mut store = PostgresStore::open(&url).unwrap();
    story::story(&mut store);
    drop(store);
    // Opening again applies nothing; a newer schema is refused.
    let again = PostgresStore::open(&url).unwrap();
    assert_eq!(
        again.trials(&TrialFilter::default()).unwrap().len(),
        8,
        "the story's trials: s-2, s-4 and s-5 of s (s-1 and s-3 removed), 2 of c, 2 of e and gone-1 of the sweep registered again after its removal"
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute("UPDATE sweep_schema SET version = 99").unwrap();
    assert!(matches!(PostgresStore::open(&url), Err(StoreError::NewerSchema { found: 99, .. })));
}

#[test]
fn the_intervention_story_holds_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_db("intervention_story");
    story::intervention_story(&mut PostgresStore::open(&url).unwrap());
}

#[test]
fn the_history_and_ask_story_holds_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_db("ask_story");
    story::ask_story(&mut PostgresStore::open(&url).unwrap());
}

/// Issue 27, item 9: read-only commands waited a worker's five minutes on an unreachable server,
/// and a missing database said only "db error".
#[test]
fn commands_a_person_waits_on_say_in_seconds_that_the_server_is_unreachable_or_the_database_missing() {
    let port = services::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/sweeps");
    let runs = tempfile::tempdir().unwrap();
    for args in [&["status"][..], &["show", "x-1"]] {
        let started = std::time::Instant::now();
        common::sweep(runs.path())
            .args(["--store", &url])
            .args(args)
            .timeout(Duration::from_secs(120))
            .assert()
            .code(1)
            .stderr(contains(format!("127.0.0.1:{port}")).and(contains("unreachable for 8s")));
        assert!(started.elapsed() < Duration::from_secs(60), "{args:?} took {:?}", started.elapsed());
    }
    let pg = Postgres::start();
    common::sweep(runs.path())
        .args(["--store", &pg.url("nope"), "ls"])
        .assert()
        .code(1)
        .stderr(contains("database \"nope\" does not exist").and(contains("db error").not()));
}

#[test]
fn a_lost_connection_is_retried_and_no_epoch_is_lost() {
    let pg = Postgres::start();
    let url = pg.create_db("lost");
    let mut store = PostgresStore::open(&url).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(2)).unwrap();
    let claim = store.claim(Some("s"), &WorkerInfo { host: "h".into(), pid: 1 }, &Reclaim::after(60.0)).unwrap().unwrap();
    store.log_epoch(&claim.lease, &epoch(1)).unwrap();
    // The server cuts the connection (a restart, a failover, a network cut).
    assert!(pg.terminate_connections("lost") >= 1);
    store.log_epoch(&claim.lease, &epoch(2)).unwrap();
    assert!(store.reconnects() >= 1, "the store reconnected");
    store.heartbeat(&claim.lease).unwrap();
    // Cut again in the middle of the end-of-run write's retry path: finishing is still exact.
    pg.terminate_connections("lost");
    store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
    let epochs: Vec<i64> = store.metrics(&claim.lease.trial).unwrap().iter().filter(|m| m.name == "iou").map(|m| m.epoch).collect();
    assert_eq!(epochs, [1, 2], "both epochs recorded, once each");
    assert!(store.metrics(&claim.lease.trial).unwrap().iter().any(|m| m.name == "loss" && m.value.is_nan()));
    assert_eq!(store.trial(&claim.lease.trial).unwrap().status, TrialStatus::Completed);
}

#[test]
fn a_claim_whose_reply_was_lost_is_taken_back_not_left_to_go_stale() {
    let pg = Postgres::start();
    let url = pg.create_db("lostreply");
    let mut store = PostgresStore::open(&url).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(3)).unwrap();
    let me = WorkerInfo { host: "h".into(), pid: 7 };
    // The claim commits on the server; its reply never arrives; the store reconnects and retries.
    store.lose_next_claim_reply();
    let claim = store.claim(Some("s"), &me, &Reclaim::after(600.0)).unwrap().expect("a run");
    assert!(store.reconnects() >= 1, "the connection was dropped and re-made");
    assert_eq!(claim.lease.attempt, 1, "the committed claim itself, not a second one");
    let running: Vec<String> =
        store.trials(&TrialFilter::default()).unwrap().into_iter().filter(|r| r.status == TrialStatus::Running).map(|r| r.id).collect();
    assert_eq!(running, std::slice::from_ref(&claim.lease.trial), "no orphaned run left running until its heartbeat goes stale");
    store.log_epoch(&claim.lease, &epoch(1)).unwrap();
    store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
    // Every other run is still there to claim, once each.
    let mut rest = Vec::new();
    while let Some(c) = store.claim(Some("s"), &me, &Reclaim::after(600.0)).unwrap() {
        store.finish(&c.lease, TrialStatus::Completed, None).unwrap();
        rest.push(c.lease.trial);
    }
    assert_eq!(rest.len(), 2);
    assert!(!rest.contains(&claim.lease.trial));

    // A database made before the claim token existed (schema 1) is migrated on open.
    drop(store);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "ALTER TABLE runs DROP COLUMN claim_token; DROP TABLE tracker; \
             DROP TABLE run_tags; DROP TABLE removed_runs; ALTER TABLE runs DROP COLUMN note; \
             ALTER TABLE runs DROP COLUMN request; ALTER TABLE runs DROP COLUMN request_note; UPDATE sweep_schema SET version = 1",
        )
        .unwrap();
    let mut store = PostgresStore::open(&url).unwrap();
    store.enqueue("s", &common::trials(4)).unwrap();
    assert!(store.claim(Some("s"), &me, &Reclaim::after(600.0)).unwrap().is_some(), "claims work after the migration");
    let version: i64 = admin.query_one("SELECT version FROM sweep_schema", &[]).unwrap().get(0);
    assert_eq!(version, sweep::store::postgres::SCHEMA_VERSION);
}

#[test]
fn many_connections_claim_every_run_exactly_once() {
    let pg = Postgres::start();
    let url = pg.create_db("claims");
    let mut store = PostgresStore::open(&url).unwrap();
    store.register_sweep("s", "spec").unwrap();
    store.enqueue("s", &common::trials(96)).unwrap();
    let handles: Vec<_> = (0..12)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut store = PostgresStore::open(&url).unwrap();
                let me = WorkerInfo { host: format!("node{w}"), pid: w };
                let mut mine = Vec::new();
                while let Some(claim) = store.claim(Some("s"), &me, &Reclaim::after(600.0)).unwrap() {
                    store.log_epoch(&claim.lease, &epoch(1)).unwrap();
                    store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
                    mine.push(claim.lease.trial);
                }
                mine
            })
        })
        .collect();
    let claimed: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!((claimed.len(), unique.len()), (96, 96), "every run claimed once");
    let runs = store.trials(&TrialFilter::default()).unwrap();
    assert!(runs.iter().all(|r| r.status == TrialStatus::Completed && r.attempt == 1));
}

#[test]
fn six_connections_asking_up_to_a_cap_add_each_trial_once() {
    let pg = Postgres::start();
    let url = pg.create_db("asks");
    let mut store = PostgresStore::open(&url).unwrap();
    store.register_sweep("s", "spec").unwrap();
    let handles: Vec<_> = (0..6)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                common::ask_and_train(&mut PostgresStore::open(&url).unwrap(), &WorkerInfo { host: format!("node{w}"), pid: w }, w as usize, 30)
            })
        })
        .collect();
    let claimed: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let runs = store.trials(&TrialFilter::default()).unwrap();
    assert_eq!(runs.len(), 30, "exactly the cap");
    assert_eq!(runs.iter().map(|r| &r.config_hash).collect::<HashSet<_>>().len(), 30, "no config twice");
    assert_eq!(runs.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=30).collect::<Vec<_>>(), "run numbers 1 to 30, no gap");
    assert_eq!((claimed.len(), claimed.iter().collect::<HashSet<_>>().len()), (30, 30), "every trial claimed once");
}

/// Waits until `n` runs of the sweep have at least one epoch.
fn wait_for_progress(store: &PostgresStore, sweep: &str, n: usize) {
    wait_until(Duration::from_secs(120), "trials to record epochs", || {
        store.trials(&TrialFilter { sweep: Some(sweep.into()), status: None }).unwrap().iter().filter(|r| r.epochs() >= 1).count() >= n
    });
}

#[test]
fn a_sweep_runs_as_a_slurm_array_against_postgres_and_survives_a_cancelled_task() {
    let pg = Postgres::start();
    let url = pg.create_db("cluster");
    let slurm = Slurm::start();
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("c.toml");
    std::fs::write(&file, common::tiny_sweep("cluster", 40, &[0.0, 0.05, 0.1, 0.15, 0.2, 0.25])).unwrap();

    let mut submit = std::process::Command::new(common::sweep_bin());
    submit
        .arg("--runs-dir")
        .arg(runs.path())
        .args(["--store", &url, "run", file.to_str().unwrap(), "--launcher", "slurm", "--workers", "3"])
        .args(["--stale-after", "4", "--heartbeat-every", "0.5", "--wait"])
        .env("SLURM_CONF", &slurm.conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let waiting = submit.spawn().unwrap();

    let store = PostgresStore::open(&url).unwrap();
    wait_until(Duration::from_secs(60), "the job to be recorded", || store.jobs(Some("cluster")).map(|j| !j.is_empty()).unwrap_or(false));
    let job = store.jobs(Some("cluster")).unwrap().remove(0);
    assert_eq!((job.launcher.as_str(), job.workers), ("slurm", 3));
    let script = std::fs::read_to_string(&job.script).unwrap();
    assert!(script.contains("#SBATCH --array=0-2") && script.contains("worker --sweep=cluster"), "{script}");

    // Cancel one array task in the middle of its trial: its trial goes to the others.
    wait_for_progress(&store, "cluster", 2);
    let running: Vec<String> =
        slurm.states(&job.job_id).into_iter().filter(|l| l.ends_with("RUNNING")).map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert!(!running.is_empty(), "tasks are running: {:?}", slurm.states(&job.job_id));
    let cancelled = &running[0];
    assert!(slurm.command("scancel").arg(cancelled).status().unwrap().success());

    let out = waiting.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("submitted slurm job {}", job.job_id)) && stdout.contains("rank"), "{stdout}");
    assert!(stdout.contains("charts: ") && runs.path().join("cluster/plots/index.html").is_file(), "charts drawn at the end: {stdout}");

    // Every trial completed exactly once, with its checkpoints, and the tracker answers.
    let rows = store.trials(&TrialFilter { sweep: Some("cluster".into()), status: None }).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows.iter().map(|r| &r.config_hash).collect::<HashSet<_>>().len(), 6);
    for r in &rows {
        assert_eq!(r.status, TrialStatus::Completed, "{} {:?}", r.id, r.error);
        let epochs: Vec<i64> = store.metrics(&r.id).unwrap().iter().filter(|m| m.split == "val" && m.name == "iou").map(|m| m.epoch).collect();
        assert_eq!(epochs, (1..=40).collect::<Vec<_>>(), "{}: contiguous epochs, none twice", r.id);
        assert!(runs.path().join("cluster").join(&r.id).join("checkpoints/best.ckpt").is_file());
    }
    assert!(
        rows.iter().any(|r| r.attempt > 1),
        "the cancelled task's trial was resumed by another: {:?}",
        rows.iter().map(|r| r.attempt).collect::<Vec<_>>()
    );
    let workers: HashSet<&Option<i64>> = rows.iter().map(|r| &r.pid).collect();
    assert!(workers.len() >= 2, "several workers took part");
    common::sweep(runs.path()).args(["--store", &url, "best", "--metric", "iou"]).assert().success().stdout(contains("best trial   cluster-"));
    common::sweep(runs.path())
        .args(["--store", &url, "status", "cluster"])
        .env("SLURM_CONF", &slurm.conf)
        .assert()
        .success()
        .stdout(contains("6 completed").and(contains(format!("slurm job {}", job.job_id))));
    let logs = std::fs::read_dir(runs.path().join("cluster/slurm")).unwrap().count();
    assert!(logs >= 3, "the script and the tasks' logs are under runs/<sweep>/slurm");
}

use predicates::prelude::PredicateBooleanExt;

/// `sweep --runs-dir RUNS --store STORE ARGS`, with no password from this environment.
fn sweep_at(runs: &std::path::Path, store: &str) -> assert_cmd::Command {
    let mut cmd = common::sweep(runs);
    cmd.args(["--store", store]).env_remove("PGPASSWORD").env("PGPASSFILE", runs.join("no-such-pgpass"));
    cmd
}

/// Issue 15, item 24: the password was on every worker's command line and in the sbatch script.
/// It may come from the URL, PGPASSWORD or a password file, and shows nowhere else.
#[test]
fn a_password_never_reaches_a_command_line_a_script_a_log_or_a_message() {
    use std::os::unix::fs::PermissionsExt;
    let secret = "Pw0rd-in-url";
    let pg = Postgres::start();
    let bare = pg.create_db_with_password("secretive", "sweeper", secret);
    let with_password = bare.replace("sweeper@", &format!("sweeper:{secret}@"));
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("p.toml");
    std::fs::write(&file, common::tiny_sweep("private", 6, &[0.0, 0.1])).unwrap();
    let no_secret = |what: &str, text: &str| assert!(!text.contains(secret), "the password is in {what}: {text}");

    // A wrong password: refused, and the message shows the URL without it.
    let out = sweep_at(runs.path(), &bare.replace("sweeper@", "sweeper:WrongPw@")).arg("ls").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&bare) && !stderr.contains("WrongPw"), "{stderr}");
    // PGPASSWORD and a password file readable by its owner only give the password.
    sweep_at(runs.path(), &bare).arg("ls").env("PGPASSWORD", secret).assert().success();
    let pgpass = runs.path().join("pgpass");
    std::fs::write(&pgpass, format!("# sweeps\n127.0.0.1:{}:secretive:sweeper:{secret}\n", pg.port)).unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    sweep_at(runs.path(), &bare).arg("ls").env("PGPASSFILE", &pgpass).assert().success();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sweep_at(runs.path(), &bare).arg("ls").env("PGPASSFILE", &pgpass).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{out:?}");

    // A local sweep with the password in its URL: its workers' command lines hold the URL without it.
    let mut supervisor = std::process::Command::new(common::sweep_bin())
        .arg("--runs-dir")
        .arg(runs.path())
        .args(["--store", &with_password, "run", file.to_str().unwrap(), "--workers", "2", "--plain", "--no-plot"])
        .env_remove("PGPASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = HashSet::new();
    let children = format!("/proc/{0}/task/{0}/children", supervisor.id());
    while supervisor.try_wait().unwrap().is_none() {
        for pid in std::fs::read_to_string(&children).unwrap_or_default().split_whitespace() {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(" worker ") && seen.insert(pid.to_string()) {
                no_secret("a worker's command line", &cmdline);
                assert!(cmdline.contains(&format!("--store={bare}")), "{cmdline}");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = supervisor.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!seen.is_empty(), "the workers were seen");
    no_secret("the output of sweep run", &String::from_utf8_lossy(&out.stdout));
    no_secret("the errors of sweep run", &String::from_utf8_lossy(&out.stderr));
    let store = PostgresStore::open(&with_password).unwrap();
    let rows = store.trials(&TrialFilter { sweep: Some("private".into()), status: None }).unwrap();
    assert!(rows.len() == 2 && rows.iter().all(|r| r.status == TrialStatus::Completed), "{rows:?}");

    // The same sweep as a SLURM job: the script holds the URL without the password, and the
    // tasks get it from the environment sbatch passes on.
    let slurm = Slurm::start();
    std::fs::write(&file, common::tiny_sweep("private", 2, &[0.2])).unwrap();
    let out = sweep_at(runs.path(), &with_password)
        .args(["run", file.to_str().unwrap(), "--launcher", "slurm", "--workers", "1", "--wait", "--no-plot"])
        .env("SLURM_CONF", &slurm.conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    no_secret("the output of sweep run --launcher slurm", &String::from_utf8_lossy(&out.stdout));
    let job = store.jobs(Some("private")).unwrap().remove(0);
    let script = std::fs::read_to_string(&job.script).unwrap();
    no_secret("the sbatch script", &script);
    assert!(script.contains(&format!("--store={bare}")), "{script}");
    assert!(store.trials(&TrialFilter { sweep: Some("private".into()), status: None }).unwrap().iter().all(|r| r.status == TrialStatus::Completed));
    for dir in ["private/logs", "private/slurm"] {
        for entry in std::fs::read_dir(runs.path().join(dir)).unwrap().flatten() {
            no_secret(&entry.path().display().to_string(), &std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
}

/// Issue 25, item 3: six connections enqueueing the same configuration at once on the real
/// PostgreSQL add one trial (Optuna's SQLite storage pops an enqueued trial twice under load).
#[test]
fn six_connections_enqueueing_one_configuration_add_one_trial_on_postgres() {
    use sweep::runner::study::{Enqueued, Study};
    let pg = Postgres::start();
    let url = pg.create_db("enqueue_once");
    let text = "name = \"e\"\nmethod = \"bayes\"\nrun_cap = 4\n[parameters]\n\"train.learning_rate\" = { distribution = \"log_uniform_values\", min = 0.0001, max = 0.01 }\n\"augment.hue_delta\" = { distribution = \"uniform\", min = 0.0, max = 0.3 }\n";
    PostgresStore::open(&url).unwrap().register_sweep("e", text).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let outcomes: Vec<Enqueued> = (0..6)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = PostgresStore::open(&url).unwrap();
                let study = Study::load(&store, "e").unwrap().unwrap();
                let fixed = study.spec().fixed_point(&[("train.learning_rate".into(), serde_json::json!(0.001))]).unwrap();
                barrier.wait();
                study.enqueue(&mut store, &fixed, "test").unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let added: Vec<&Enqueued> = outcomes.iter().filter(|o| matches!(o, Enqueued::Added(_))).collect();
    assert_eq!(added.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Enqueued::Exists(id) if id == "e-1")).count(), 5, "{outcomes:?}");
    let trials = PostgresStore::open(&url).unwrap().trials(&TrialFilter::default()).unwrap();
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].tags.get("enqueued").map(String::as_str), Some("test"));
}

/// Issue 28: a sweep of the user's own program (the fake one of tests/program.rs) with TPE and
/// ASHA, four workers on the real PostgreSQL: exactly run_cap trials, each completed or pruned.
#[test]
fn bayes_with_asha_over_a_program_runs_exactly_run_cap_trials_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_db("program_search");
    let runs = tempfile::tempdir().unwrap();
    let program = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/program/fake_train.py");
    let file = runs.path().join("search.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"search\"\nmethod = \"bayes\"\nrun_cap = 30\n[program]\ncommand = [\"python3\", {:?}, \"${{args}}\"]\n[train]\nepochs = 9\n\
             [parameters]\nlr = {{ distribution = \"log_uniform_values\", min = 0.001, max = 0.3 }}\n[early_terminate]\ntype = \"asha\"\nmin_iter = 1\neta = 3\n",
            program.display().to_string()
        ),
    )
    .unwrap();
    common::sweep(runs.path()).args(["--store", &url, "run"]).arg(&file).args(["--workers", "4"]).assert().success();
    let trials = PostgresStore::open(&url).unwrap().trials(&TrialFilter::default()).unwrap();
    assert_eq!(trials.len(), 30);
    let ended = trials.iter().filter(|t| matches!(t.status, TrialStatus::Completed | TrialStatus::Pruned)).count();
    assert_eq!(ended, 30, "{:?}", trials.iter().map(|t| (&t.id, t.status)).collect::<Vec<_>>());
    assert!(trials.iter().filter(|t| t.status == TrialStatus::Pruned).count() >= 10);
    let seqs: HashSet<i64> = trials.iter().map(|t| t.seq).collect();
    assert_eq!(seqs.len(), 30, "no number twice");
}
