//! Our half of the sampler benchmark on cheap test functions (no training): `sweep`'s TPE (the
//! shipped defaults, Optuna 5's: multivariate with a constant liar), TPE as it was before issue 25
//! (univariate, running trials left out) and random search, on four minimised functions, for
//! several seeds, with 1 worker and with W simulated parallel workers. `bench/samplers.sh` runs it
//! beside `bench/samplers_optuna.py`, which does exactly the same with Optuna, and prints the
//! median simple regret of each.
//!
//! Parallel simulation with W workers: ask W trials up front (they stay running, so the sampler
//! sees them), then repeatedly tell the oldest outstanding trial its value and ask one new trial
//! while fewer than `--trials` have been asked, until every trial is told.
//!
//! One JSON line per (sampler, function, workers, seed), as the Python half writes them:
//!   {"sampler": "sweep-tpe", "function": F, "workers": W, "seed": S, "regret": [r20, r50, r100], "seconds": s}
//! rK: the true value of the finished trial with the best observed value among the first K
//! finished, minus the function's optimum.
//!
//! Usage: cargo bench --bench samplers -- [--out FILE] [--seeds 30] [--trials 100] [--workers 1,4]
//!        [--functions branin,hartmann6,mixed,noisy_branin] [--samplers sweep-tpe,sweep-tpe-univariate,sweep-random]

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::io::Write;
use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value as Json, json};
use sweep::config::Goal;
use sweep::study::history::{History, Point, SearchState, TrialRecord};
use sweep::study::sampler::{Random, Sampler};
use sweep::study::space::{Condition, Dimension, Space};
use sweep::study::space::{Domain, Parameter};
use sweep::study::tpe::{Tpe, TpeSettings};

const BRANIN_OPT: f64 = 0.397_887_357_729_739;
const HARTMANN6_OPT: f64 = -3.322_368_011_415_51;
const NOISE_SD: f64 = 2.0;
const CHECKPOINTS: [usize; 3] = [20, 50, 100];

const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H6_A: [[f64; 6]; 4] =
    [[10.0, 3.0, 17.0, 3.5, 1.7, 8.0], [0.05, 10.0, 17.0, 0.1, 8.0, 14.0], [3.0, 3.5, 1.7, 10.0, 17.0, 8.0], [17.0, 8.0, 0.05, 10.0, 0.1, 14.0]];
const H6_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn uniform(key: &str, min: f64, max: f64) -> Dimension {
    Dimension { parameter: Parameter { key: key.into(), domain: Domain::Uniform { min, max } }, when: None }
}

fn x(p: &Point, key: &str) -> f64 {
    p[key].as_f64().expect("a number")
}

fn branin(x1: f64, x2: f64) -> f64 {
    let (b, c) = (5.1 / (4.0 * PI * PI), 5.0 / PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - 1.0 / (8.0 * PI)) * x1.cos() + 10.0
}

fn hartmann6(p: &Point) -> f64 {
    let xs: Vec<f64> = (1..=6).map(|i| x(p, &format!("x{i}"))).collect();
    -(0..4).map(|i| H6_ALPHA[i] * (-(0..6).map(|j| H6_A[i][j] * (xs[j] - H6_P[i][j]).powi(2)).sum::<f64>()).exp()).sum::<f64>()
}

fn mixed(p: &Point) -> f64 {
    let v = x(p, "x");
    match p["kind"].as_str() {
        Some("a") => (v - 1.0).powi(2) / 4.0 + 1.0,
        Some("b") => (v + 2.0).powi(2) / 4.0 + 4.0 * (x(p, "y") - 0.7).powi(2),
        _ => 2.0 + v.abs() / 5.0,
    }
}

/// A test function: its space, true value and optimum; `noisy` adds Gaussian noise to what the
/// sampler is told.
struct Function {
    name: &'static str,
    space: Space,
    value: fn(&Point) -> f64,
    optimum: f64,
    noisy: bool,
}

fn functions() -> Vec<Function> {
    let branin_space = || Space::new(vec![uniform("x1", -5.0, 10.0), uniform("x2", 0.0, 15.0)]).unwrap();
    let kinds = Domain::Values(vec![json!("a"), json!("b"), json!("c")]);
    vec![
        Function { name: "branin", space: branin_space(), value: |p| branin(x(p, "x1"), x(p, "x2")), optimum: BRANIN_OPT, noisy: false },
        Function {
            name: "hartmann6",
            space: Space::new((1..=6).map(|i| uniform(&format!("x{i}"), 0.0, 1.0)).collect()).unwrap(),
            value: hartmann6,
            optimum: HARTMANN6_OPT,
            noisy: false,
        },
        Function {
            name: "mixed",
            space: Space::new(vec![
                Dimension { parameter: Parameter { key: "kind".into(), domain: kinds }, when: None },
                uniform("x", -5.0, 5.0),
                Dimension {
                    parameter: Parameter { key: "y".into(), domain: Domain::Uniform { min: 0.0, max: 1.0 } },
                    when: Some(Condition { key: "kind".into(), values: vec![json!("b")] }),
                },
            ])
            .unwrap(),
            value: mixed,
            optimum: 0.0,
            noisy: false,
        },
        Function { name: "noisy_branin", space: branin_space(), value: |p| branin(x(p, "x1"), x(p, "x2")), optimum: BRANIN_OPT, noisy: true },
    ]
}

fn sampler(name: &str, space: Space, seed: u64) -> Box<dyn Sampler> {
    match name {
        "sweep-tpe" => Box::new(Tpe::new(space, seed, TpeSettings::default())),
        "sweep-tpe-univariate" => {
            Box::new(Tpe::new(space, seed, TpeSettings { multivariate: false, constant_liar: false, ..TpeSettings::default() }))
        }
        "sweep-random" => Box::new(Random::new(space, seed)),
        other => panic!("unknown sampler {other}: sweep-tpe, sweep-tpe-univariate or sweep-random"),
    }
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// One search: the simple regret at each checkpoint.
fn search(f: &Function, sampler: &dyn Sampler, seed: u64, workers: usize, trials: usize) -> Vec<f64> {
    let mut history = History::new("value", Goal::Minimize, Vec::new());
    let mut outstanding = VecDeque::new();
    let ask = |history: &mut History, outstanding: &mut VecDeque<usize>| {
        let number = history.trials.len();
        let point = sampler.ask(history).expect("a continuous space never runs out");
        history.trials.push(TrialRecord {
            number,
            point: point.into(),
            state: SearchState::Running,
            values: Default::default(),
            scores: Vec::new(),
            violation: 0.0,
        });
        outstanding.push_back(number);
    };
    for _ in 0..workers.min(trials) {
        ask(&mut history, &mut outstanding);
    }
    // (observed, true) values in tell order.
    let mut told: Vec<(f64, f64)> = Vec::new();
    while let Some(number) = outstanding.pop_front() {
        let trial = &mut history.trials[number];
        let truth = (f.value)(&trial.point);
        let observed = if f.noisy {
            let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + number as u64);
            truth + NOISE_SD * standard_normal(&mut rng)
        } else {
            truth
        };
        trial.state = SearchState::Completed;
        trial.values.insert(1, observed);
        told.push((observed, truth));
        if history.trials.len() < trials {
            ask(&mut history, &mut outstanding);
        }
    }
    CHECKPOINTS
        .iter()
        .filter(|&&k| k <= trials)
        .map(|&k| {
            let best = told[..k].iter().min_by(|a, b| a.0.total_cmp(&b.0)).expect("k >= 1");
            best.1 - f.optimum
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let option = |name: &str, default: &str| -> String {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
    };
    let list = |name: &str, default: &str| -> Vec<String> { option(name, default).split(',').map(str::to_string).collect() };
    let seeds: u64 = option("--seeds", "30").parse().expect("--seeds N");
    let trials: usize = option("--trials", "100").parse().expect("--trials N");
    let workers: Vec<usize> = list("--workers", "1,4").iter().map(|w| w.parse().expect("--workers 1,4")).collect();
    let wanted = list("--functions", "branin,hartmann6,mixed,noisy_branin");
    let samplers = list("--samplers", "sweep-tpe,sweep-tpe-univariate,sweep-random");
    let out = option("--out", "target/samplers.jsonl");
    let mut file = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    for f in functions().iter().filter(|f| wanted.iter().any(|w| w == f.name)) {
        for name in &samplers {
            let start = Instant::now();
            for &w in &workers {
                for seed in 0..seeds {
                    let t = Instant::now();
                    let s = sampler(name, f.space.clone(), seed);
                    let regret = search(f, s.as_ref(), seed, w, trials);
                    let line: Json = json!({"sampler": name, "function": f.name, "workers": w, "seed": seed, "regret": regret, "seconds": t.elapsed().as_secs_f64()});
                    writeln!(file, "{line}").unwrap();
                }
            }
            eprintln!("{} {name}: {:.1} s", f.name, start.elapsed().as_secs_f64());
        }
    }
    eprintln!("wrote {out}");
}
