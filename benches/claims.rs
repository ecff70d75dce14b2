//! Claim latency and throughput with 16 concurrent workers running a no-op trial (claim, log
//! one epoch, finish), PostgreSQL against SQLite, on this machine.

#[path = "common.rs"]
mod common;
#[path = "../tests/common/services.rs"]
mod services;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sweep::config::{Split, TrialConfig};
use sweep::store::{self, EpochLog, MetricValue, NewTrial, Reclaim, TrialStatus, WorkerInfo};

const TRIALS: usize = 2000;
const WORKERS: usize = 16;

fn fill(location: &str) {
    let mut s = store::open(location, true).unwrap();
    s.register_sweep("b", "bench").unwrap();
    let trials: Vec<NewTrial> = (0..TRIALS)
        .map(|i| {
            let mut config = TrialConfig::default();
            config.train.seed = i as u64;
            NewTrial { config, params: Default::default() }
        })
        .collect();
    s.enqueue("b", &trials).unwrap();
}

/// Runs the workers; returns (claim latencies, wall clock).
fn race(location: &str) -> (Vec<Duration>, Duration) {
    let barrier = Arc::new(Barrier::new(WORKERS));
    let started = Instant::now();
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let location = location.to_string();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = store::open(&location, false).unwrap();
                let me = WorkerInfo { host: "bench".into(), pid: w as u32 };
                let log = EpochLog {
                    epoch: 1,
                    wall: 0.0,
                    metrics: vec![MetricValue { split: Split::Val, name: "iou".into(), value: 0.5 }],
                    checkpoints: vec![],
                };
                let mut latencies = Vec::new();
                barrier.wait();
                loop {
                    let t = Instant::now();
                    let Some(claim) = s.claim(Some("b"), &me, &Reclaim::after(3600.0)).unwrap() else { break };
                    latencies.push(t.elapsed());
                    s.log_epoch(&claim.lease, &log).unwrap();
                    s.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let wall = started.elapsed();
    all.sort();
    assert_eq!(all.len(), TRIALS, "every trial claimed once");
    (all, wall)
}

fn main() {
    common::header(&format!("claims: {WORKERS} concurrent workers, {TRIALS} no-op trials"));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("claims.db").display().to_string();
    fill(&sqlite);
    let (sq, sq_wall) = race(&sqlite);
    let pg = services::Postgres::start();
    let url = pg.create_db("claims");
    fill(&url);
    let (pq, pq_wall) = race(&url);
    println!("\n| store | claim median | claim p95 | claim p99 | trials/s (claim + log + finish) |");
    println!("|---|--:|--:|--:|--:|");
    for (name, lat, wall) in [("SQLite (WAL, one file)", &sq, sq_wall), ("PostgreSQL 15 (loopback, fsync off)", &pq, pq_wall)] {
        let p = |q: usize| common::ms(lat[(lat.len() * q / 100).min(lat.len() - 1)]);
        println!("| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} |", p(50), p(95), p(99), TRIALS as f64 / wall.as_secs_f64());
    }
}
