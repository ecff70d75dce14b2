//! Tracker costs: logging one epoch, `best` over 10,000 runs x 50 epochs, listing 10,000 runs
//! (through the library and through the CLI, process start included).

#[path = "common.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use sweep::config::Goal;
use sweep::config::{Split, TrialConfig};
use sweep::store::{CheckpointRow, EpochLog, MetricValue, NewTrial, Reclaim, SqliteStore, Store, TrialFilter, WorkerInfo};
use sweep::study::history::{History, SearchState, TrialRecord};
use sweep::study::sampler::Sampler;
use sweep::study::space::{Dimension, Domain, Parameter, Space};
use sweep::study::tpe::{Tpe, TpeSettings};

const RUNS: usize = 10_000;
const EPOCHS: i64 = 50;

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
    store.register_sweep("b", "bench").unwrap();
    let started = Instant::now();
    let trials: Vec<NewTrial> = (0..RUNS)
        .map(|i| {
            let mut config = TrialConfig::default();
            config.train.seed = i as u64;
            config.train.learning_rate = 1e-4 * (1.0 + (i % 100) as f64);
            let mut params = std::collections::BTreeMap::new();
            params.insert("train.learning_rate".to_string(), serde_json::json!(config.train.learning_rate));
            params.insert("train.seed".to_string(), serde_json::json!(i));
            NewTrial { config, params }
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
    // tracker, then the sampler over it (learning rate, log-uniform; Optuna 5's defaults).
    let space = Space::new(vec![Dimension {
        parameter: Parameter { key: "train.learning_rate".into(), domain: Domain::LogUniformValues { min: 1e-4, max: 1e-2 } },
        when: None,
    }])
    .unwrap();
    let tpe = Tpe::new(space, 0, TpeSettings::default());
    let ask = common::time_n(1, 5, || {
        let rows = store.history("b", "val_iou").unwrap();
        let trials = rows
            .iter()
            .map(|r| TrialRecord {
                number: r.seq as usize,
                point: r.params.iter().filter(|(k, _)| k.as_str() == "train.learning_rate").map(|(k, v)| (k.clone(), v.clone())).collect(),
                state: SearchState::Completed,
                values: r.values.iter().map(|(&e, &v)| (e as usize, v)).collect(),
            })
            .collect();
        std::hint::black_box(tpe.ask(&History::new("val_iou", Goal::Maximize, trials)).unwrap());
    });
    let history_only = common::time_n(1, 5, || {
        std::hint::black_box(store.history("b", "val_iou").unwrap());
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
        "| TPE ask over {RUNS} completed trials x {EPOCHS} epochs: history read + sample (library) | {:.1} ms | - |",
        common::ms(common::median(&ask))
    );
    println!("| of which the history read from the tracker | {:.1} ms | - |", common::ms(common::median(&history_only)));
    println!("| list {RUNS} runs and render the table (library) | {:.1} ms | - |", common::ms(common::median(&ls)));
    println!("| `sweep best --metric iou` (process, start to exit) | {:.1} ms | - |", common::ms(common::median(&cli_best)));
    println!("| `sweep ls` of {RUNS} runs (process, start to exit) | {:.1} ms | - |", common::ms(common::median(&cli_ls)));
}
