//! Our half of the multi-objective sampler benchmark (issue 26): `sweep`'s TPE over two
//! objectives (the shipped defaults: multivariate, constant liar, the good group by Pareto front
//! and hypervolume) and random search, on ZDT1 and ZDT2 in six variables, for several seeds,
//! sequential ask and tell. `bench/objectives.sh` runs it beside `bench/objectives_optuna.py`,
//! which does the same with Optuna, and prints the median hypervolume of each.
//!
//! ZDT in n variables on [0, 1]^n, both objectives minimised: f1 = x1, g = 1 + 9 (x2 + ... + xn)
//! / (n - 1), f2 = g (1 - sqrt(f1 / g)) (ZDT1, a convex front) or g (1 - (f1 / g)^2) (ZDT2, a
//! concave one). The front is g = 1 (x2..xn = 0). Hypervolume against (1.1, 11): a point with f2
//! above 11 adds nothing.
//!
//! One JSON line per (sampler, function, seed), as the Python half writes them:
//!   {"sampler": "sweep-tpe", "function": F, "seed": S, "hypervolume": [h50, h200], "seconds": s}
//! hK: the hypervolume of the first K trials' values.
//!
//! Usage: cargo bench --bench objectives -- [--out FILE] [--seeds 30] [--trials 200]
//!        [--samplers sweep-tpe,sweep-random]

use std::io::Write;
use std::time::Instant;

use serde_json::json;
use sweep::config::Goal;
use sweep::study::history::{History, SearchState, TrialRecord};
use sweep::study::pareto;
use sweep::study::sampler::{Random, Sampler};
use sweep::study::space::{Domain, Parameter, Space};
use sweep::study::tpe::{Tpe, TpeSettings};

const VARIABLES: usize = 6;
const CHECKPOINTS: [usize; 2] = [50, 200];
const REFERENCE: [f64; 2] = [1.1, 11.0];

fn zdt(function: &str, x: &[f64]) -> [f64; 2] {
    let f1 = x[0];
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
    let f2 = match function {
        "zdt1" => g * (1.0 - (f1 / g).sqrt()),
        "zdt2" => g * (1.0 - (f1 / g).powi(2)),
        other => panic!("unknown function {other}"),
    };
    [f1, f2]
}

fn keys() -> Vec<String> {
    (1..=VARIABLES).map(|i| format!("x{i}")).collect()
}

fn space() -> Space {
    let parameters: Vec<Parameter> = keys().into_iter().map(|key| Parameter { key, domain: Domain::Uniform { min: 0.0, max: 1.0 } }).collect();
    Space::unconditional(&parameters)
}

fn sampler(name: &str, seed: u64) -> Box<dyn Sampler> {
    match name {
        "sweep-tpe" => Box::new(Tpe::new(space(), seed, TpeSettings::default())),
        "sweep-random" => Box::new(Random::new(space(), seed)),
        other => panic!("unknown sampler {other}"),
    }
}

/// The hypervolume of the first K trials, at each checkpoint.
fn search(function: &str, sampler: &dyn Sampler, trials: usize) -> Vec<f64> {
    let goals = vec![Goal::Minimize, Goal::Minimize];
    let mut history = History::new("f1", Goal::Minimize, Vec::new()).with_objectives(goals.clone());
    let mut out = Vec::new();
    for number in 0..trials {
        let point = sampler.ask(&history).expect("a continuous space never runs out");
        let x: Vec<f64> = keys().iter().map(|k| point[k].as_f64().expect("a number")).collect();
        let scores = zdt(function, &x);
        history.trials.push(TrialRecord {
            number,
            point: point.into(),
            state: SearchState::Completed,
            values: [(1, scores[0])].into(),
            scores: scores.to_vec(),
            violation: 0.0,
        });
        if CHECKPOINTS.contains(&(number + 1)) {
            let points: Vec<Vec<f64>> = history.trials.iter().map(|t| t.scores.clone()).collect();
            out.push(pareto::hypervolume(&points, &goals, &REFERENCE));
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let option = |name: &str, default: &str| -> String {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
    };
    let seeds: u64 = option("--seeds", "30").parse().expect("--seeds N");
    let trials: usize = option("--trials", "200").parse().expect("--trials N");
    let samplers: Vec<String> = option("--samplers", "sweep-tpe,sweep-random").split(',').map(str::to_string).collect();
    let out = option("--out", "target/objectives.jsonl");
    let mut file = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    for function in ["zdt1", "zdt2"] {
        for name in &samplers {
            let start = Instant::now();
            for seed in 0..seeds {
                let t = Instant::now();
                let hv = search(function, sampler(name, seed).as_ref(), trials);
                let line = json!({"sampler": name, "function": function, "seed": seed, "hypervolume": hv, "seconds": t.elapsed().as_secs_f64()});
                writeln!(file, "{line}").unwrap();
            }
            eprintln!("{function} {name}: {:.1} s", start.elapsed().as_secs_f64());
        }
    }
    eprintln!("wrote {out}");
}
