//! Timing helpers shared by the benchmarks (no external harness: each bench is a plain program
//! that prints a table, run with `cargo bench --bench NAME`).
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Runs `f` `warmup` times, then `n` times, and returns the sorted durations.
pub fn time_n(warmup: usize, n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
    }
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

pub fn median(d: &[Duration]) -> Duration {
    d[d.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints the machine the figures come from.
pub fn header(title: &str) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    println!("## {title}");
    println!("machine: {cpu}, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
}
