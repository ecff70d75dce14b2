//! Whole-sweep wall clock with `--workers 1` against `--workers 2` on this machine, and the
//! scheduler's overhead per trial (process start, dataset load, claims, heartbeats, logging):
//! (workers x wall clock - sum of trial times) / trials, against the mean trial time.

#[path = "common.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use sweep::store::{SqliteStore, Store, TrialFilter};

const SWEEP: &str = r#"name = "w"
seed = 1
[data]
image_size = 64
synthetic_count = 400
[model]
base_filters = 8
depth = 4
[train]
epochs = 2
batch_size = 8
learning_rate = 0.003
[parameters]
"augment.hue_delta" = { values = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35] }
"#;

fn main() {
    common::header("sweep wall clock: --workers 1 vs --workers 2");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let exe = env!("CARGO_BIN_EXE_sweep");
    // Generate the dataset once, outside the timings.
    let data_runs = dir.path().join("data");
    assert!(
        Command::new(exe)
            .arg("--runs-dir")
            .arg(&data_runs)
            .args(["data", "show", "--out"])
            .arg(dir.path().join("s.png"))
            .output()
            .unwrap()
            .status
            .success()
    );
    let cached = data_runs.join("data");
    println!("\n| workers | threads each | wall clock | mean trial | overhead per trial |");
    println!("|--:|--:|--:|--:|--:|");
    let mut walls = Vec::new();
    for workers in [1usize, 2] {
        let runs = dir.path().join(format!("runs{workers}"));
        std::fs::create_dir_all(&runs).unwrap();
        std::os::unix::fs::symlink(&cached, runs.join("data")).unwrap();
        let started = Instant::now();
        let out = Command::new(exe)
            .arg("--runs-dir")
            .arg(&runs)
            .args(["run", file.to_str().unwrap(), "--plain", "--no-plot", "--workers", &workers.to_string()])
            .output()
            .unwrap();
        let wall = started.elapsed().as_secs_f64();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let store = SqliteStore::open(&runs.join("sweep.db")).unwrap();
        let rows = store.trials(&TrialFilter::default()).unwrap();
        let trial: Vec<f64> = rows.iter().map(|r| r.finished.unwrap() - r.started.unwrap()).collect();
        let mean = trial.iter().sum::<f64>() / trial.len() as f64;
        let overhead = (workers as f64 * wall - trial.iter().sum::<f64>()) / trial.len() as f64;
        println!("| {workers} | {} | {wall:.1} s | {mean:.2} s | {overhead:.3} s ({:.1}%) |", 2 / workers, 100.0 * overhead / mean);
        walls.push(wall);
    }
    println!("\n--workers 2 takes {:.2}x the time of --workers 1", walls[1] / walls[0]);
}
