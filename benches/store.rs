//! Tracker costs: logging one epoch, `best` over 10,000 runs x 50 epochs, listing 10,000 runs
//! (through the library and through the CLI, process start included).

#[path = "common.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use sweep::config::Goal;
use sweep::config::Split;
use sweep::store::{CheckpointRow, EpochLog, HistoryView, MetricValue, NewTrial, Reclaim, SqliteStore, Store, TrialFilter, WorkerInfo};

const RUNS: usize = 10_000;
const EPOCHS: i64 = 50;

/// sweeps/bayes.toml's search at 50 epochs, run_cap above the trials the bench adds.
const BAYES: &str = r#"
name = "b"
method = "bayes"
run_cap = RUNS
[metric]
name = "val_iou"
goal = "maximize"
[train]
epochs = 50
[early_terminate]
type = "asha"
min_iter = 2
eta = 3
[parameters]
"train.optimizer" = { values = ["adam", "sgd", "rmsprop"] }
"train.momentum" = { distribution = "uniform", min = 0.5, max = 0.95, when = { "train.optimizer" = ["sgd", "rmsprop"] } }
"train.learning_rate" = { distribution = "log_uniform_values", min = 0.0003, max = 0.03 }
"augment.hue_delta" = { distribution = "uniform", min = 0.0, max = 0.3 }
"augment.width_shift_range" = { distribution = "uniform", min = 0.0, max = 0.2 }
"augment.height_shift_range" = { distribution = "uniform", min = 0.0, max = 0.2 }
"#;

fn epoch(e: i64, run: usize) -> EpochLog {
    let x = (run % 997) as f64 / 997.0;
    let mut metrics = Vec::new();
    for split in [Split::Train, Split::Val] {
        for (name, v) in [("loss", 1.0 - x * e as f64 / 60.0), ("dice", x * e as f64 / 60.0), ("iou", x * e as f64 / 55.0), ("fg_iou", x * 0.8)] {
            metrics.push(MetricValue { split, name: name.into(), value: v });
        }
    }
    metrics.push(MetricValue { split: Split::Train, name: "lr".into(), value: 1e-3 });
    metrics.push(MetricValue { split: Split::Train, name: "seconds".into(), value: 12.5 });
    EpochLog {
        epoch: e,
        wall: e as f64,
        metrics,
        checkpoints: vec![
            CheckpointRow { kind: "last".into(), epoch: e, path: format!("/runs/b/b-{run}/checkpoints/last.ckpt"), metric_value: x },
            CheckpointRow { kind: "best".into(), epoch: e, path: format!("/runs/b/b-{run}/checkpoints/best.ckpt"), metric_value: x },
        ],
    }
}

fn main() {
    common::header("tracker (SQLite)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store.register_sweep("b", &BAYES.replace("RUNS", &(2 * RUNS).to_string())).unwrap();
    let started = Instant::now();
    // The trials of a bayes sweep over sweeps/bayes.toml's five parameters (one conditional),
    // spread over the space, each as the sweep would have asked for it.
    let spec = sweep::study::spec::parse(&BAYES.replace("RUNS", &(2 * RUNS).to_string()), std::path::Path::new("b.toml")).unwrap();
    let trials: Vec<NewTrial> = (0..RUNS)
        .map(|i| {
            let u = |k: usize| ((i * 7919 + k * 104_729) % 10_007) as f64 / 10_007.0;
            let optimizer = ["adam", "sgd", "rmsprop"][i % 3];
            let mut point = sweep::study::history::Point::new();
            point.insert("train.optimizer".into(), serde_json::json!(optimizer));
            if optimizer != "adam" {
                point.insert("train.momentum".into(), serde_json::json!(0.5 + 0.45 * u(1)));
            }
            point.insert("train.learning_rate".into(), serde_json::json!(3e-4 * 100f64.powf(u(2))));
            point.insert("augment.hue_delta".into(), serde_json::json!(0.3 * u(3)));
            point.insert("augment.width_shift_range".into(), serde_json::json!(0.2 * u(4)));
            point.insert("augment.height_shift_range".into(), serde_json::json!(0.2 * u(5)));
            let trial = spec.trial_of(&point).unwrap();
            NewTrial { config: trial.config, params: trial.params }
        })
        .collect();
    store.enqueue("b", &trials).unwrap();
    let enqueue = started.elapsed();
    let worker = WorkerInfo { host: "bench".into(), pid: 1 };
    let started = Instant::now();
    let mut claim_times = Vec::new();
    let mut log_times = Vec::new();
    for run in 0..RUNS {
        let t = Instant::now();
        let claim = store.claim(Some("b"), &worker, &Reclaim::after(3600.0)).unwrap().unwrap();
        claim_times.push(t.elapsed());
        for e in 1..=EPOCHS {
            let log = epoch(e, run);
            let t = Instant::now();
            store.log_epoch(&claim.lease, &log).unwrap();
            log_times.push(t.elapsed());
        }
        store.finish(&claim.lease, sweep::store::TrialStatus::Completed, None).unwrap();
    }
    let generate = started.elapsed();
    claim_times.sort();
    log_times.sort();
    let rows: i64 = store.connection().query_row("SELECT count(*) FROM metrics", [], |r| r.get(0)).unwrap();
    println!(
        "\ngenerated {RUNS} runs x {EPOCHS} epochs = {rows} metric rows in {:.1}s (enqueue {:.2}s)",
        generate.as_secs_f64(),
        enqueue.as_secs_f64()
    );

    let best = common::time_n(3, 30, || {
        std::hint::black_box(store.best("val_iou", Goal::Maximize, None).unwrap().unwrap());
    });
    let best_sweep = common::time_n(3, 30, || {
        std::hint::black_box(store.best("val_loss", Goal::Minimize, Some("b")).unwrap().unwrap());
    });
    // TPE's ask as a worker makes it (issue 28's scale target): the sweep's history read from the
    // tracker under its lock, TPE over it (multivariate, constant liar: Optuna 5's defaults), the
    // new trial written. Each ask adds a queued trial.
    let study = sweep::runner::study::Study::of(spec);
    let ask = common::time_n(1, 5, || {
        std::hint::black_box(study.ask(&mut store).unwrap().unwrap());
    });
    let history_only = common::time_n(1, 5, || {
        std::hint::black_box(store.history("b", "val_iou", HistoryView::Summary).unwrap());
    });
    let history_full = common::time_n(1, 3, || {
        std::hint::black_box(store.history("b", "val_iou", HistoryView::Full).unwrap());
    });
    // The pruner's decision a worker asks for after each epoch: ASHA at its rung of 6 epochs
    // (every trial's value there), and after epoch 7, no rung (the trial's own values only).
    let judge = common::time_n(1, 5, || {
        std::hint::black_box(study.judge(&store, "b-5000", 6).unwrap());
    });
    let judge_off_rung = common::time_n(1, 5, || {
        std::hint::black_box(study.judge(&store, "b-5000", 7).unwrap());
    });
    let ls = common::time_n(1, 5, || {
        let runs = store.trials(&TrialFilter::default()).unwrap();
        std::hint::black_box(sweep::report::trials_table(&runs));
    });
    drop(store);
    let exe = env!("CARGO_BIN_EXE_sweep");
    let cli = |args: &[&str]| {
        common::time_n(1, 5, || {
            let out = Command::new(exe).arg("--store").arg(&path).args(args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        })
    };
    let cli_best = cli(&["best", "--metric", "iou"]);
    let cli_ls = cli(&["ls"]);

    println!("\n| operation | median | p95 |");
    println!("|---|--:|--:|");
    let p95 = |d: &[std::time::Duration]| d[d.len() * 95 / 100];
    println!(
        "| log one epoch (10 metrics + 2 checkpoint rows, one transaction) | {:.3} ms | {:.3} ms |",
        common::ms(common::median(&log_times)),
        common::ms(p95(&log_times))
    );
    println!("| claim a run | {:.3} ms | {:.3} ms |", common::ms(common::median(&claim_times)), common::ms(p95(&claim_times)));
    println!("| `best` val_iou over {RUNS} runs (library) | {:.3} ms | {:.3} ms |", common::ms(common::median(&best)), common::ms(p95(&best)));
    println!(
        "| `best` val_loss within the sweep (library) | {:.3} ms | {:.3} ms |",
        common::ms(common::median(&best_sweep)),
        common::ms(p95(&best_sweep))
    );
    println!(
        "| TPE ask over {RUNS} completed trials x {EPOCHS} epochs, 5 parameters: history read + sample + enqueue (library) | {:.1} ms | - |",
        common::ms(common::median(&ask))
    );
    println!("| of which the history read from the tracker (summary view) | {:.1} ms | - |", common::ms(common::median(&history_only)));
    println!("| (every epoch's value, as read before issue 28) | {:.1} ms | - |", common::ms(common::median(&history_full)));
    println!("| ASHA's decision at epoch 6 over {RUNS} trials (history read + decide) | {:.1} ms | - |", common::ms(common::median(&judge)));
    println!("| ASHA's decision at epoch 7 (no rung: the trial's own values) | {:.2} ms | - |", common::ms(common::median(&judge_off_rung)));
    println!("| list {RUNS} runs and render the table (library) | {:.1} ms | - |", common::ms(common::median(&ls)));
    println!("| `sweep best --metric iou` (process, start to exit) | {:.1} ms | - |", common::ms(common::median(&cli_best)));
    println!("| `sweep ls` of {RUNS} runs (process, start to exit) | {:.1} ms | - |", common::ms(common::median(&cli_ls)));
}
