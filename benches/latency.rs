//! The `infer_ms` protocol's spread (issue 26): `train::scoring::latency_ms` (the median of 15
//! timed batch-1 forwards after 3 untimed ones, each read back) measured 10 times on one model,
//! as a trial's is after training; the spread is (slowest - fastest) / median of the 10. The
//! model's weights are drawn from a seed: a forward's time does not depend on them.
//!
//! Usage: cargo bench --bench latency -- [--repeats 10] [--threads 2] [--device cpu]
//! Prints a Markdown table: one row per model (the pareto example's sizes and the seed network).

use sweep::config::UNetConfig;
use sweep::train::device::{DeviceSpec, set_cpu_threads};
use sweep::train::scoring::latency_ms;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() {
    let repeats: usize = arg("--repeats", "10").parse().expect("--repeats N");
    let threads: usize = arg("--threads", "2").parse().expect("--threads N");
    let spec: DeviceSpec = arg("--device", "cpu").parse().unwrap_or_else(|e| panic!("{e}"));
    set_cpu_threads(threads);
    let device = spec.open().unwrap_or_else(|e| panic!("{e}"));
    println!("| model | input | median infer_ms of {repeats} measures | fastest | slowest | spread (slowest - fastest) / median |");
    println!("|---|---|--:|--:|--:|--:|");
    for (base, depth, size) in [(4, 2, 48), (4, 4, 64), (8, 3, 64), (16, 3, 64), (32, 5, 128)] {
        let model = UNetConfig { base_filters: base, depth, ..UNetConfig::default() }.init(&device, 0);
        let mut measures: Vec<f64> = (0..repeats).map(|_| latency_ms(&model, size, size, &device)).collect();
        measures.sort_by(f64::total_cmp);
        let median = measures[measures.len() / 2];
        let (fastest, slowest) = (measures[0], measures[measures.len() - 1]);
        println!(
            "| base {base}, depth {depth} | {size}x{size} | {median:.3} | {fastest:.3} | {slowest:.3} | {:.1}% |",
            100.0 * (slowest - fastest) / median
        );
    }
}
