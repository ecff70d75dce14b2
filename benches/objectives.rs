//! Our half of the multi-objective sampler benchmark (issue 26): `sweep`'s TPE over two
//! objectives (the shipped defaults: multivariate, constant liar, the good group by Pareto front
//! and hypervolume), NSGA-II (its defaults, or `--population N`) and random search, on ZDT1 and
//! ZDT2 in six variables and the constrained TNK, for several seeds, sequential ask and tell.
//! `bench/objectives.sh` runs it beside `bench/objectives_optuna.py`, which does the same with
//! Optuna, and prints the median hypervolume of each.
//!
//! ZDT in n variables on [0, 1]^n, both objectives minimised: f1 = x1, g = 1 + 9 (x2 + ... + xn)
//! / (n - 1), f2 = g (1 - sqrt(f1 / g)) (ZDT1, a convex front) or g (1 - (f1 / g)^2) (ZDT2, a
//! concave one). The front is g = 1 (x2..xn = 0). Hypervolume against (1.1, 11): a point with f2
//! above 11 adds nothing.
//!
//! TNK (Tanaka), x1, x2 in [1e-9, pi], both minimised: f1 = x1, f2 = x2, feasible where
//! c1 = x1^2 + x2^2 - 1 - 0.1 cos(16 atan(x1 / x2)) >= 0 and c2 = (x1 - 0.5)^2 + (x2 - 0.5)^2
//! <= 0.5: a thin, broken band near the unit circle, about 5% of the square. Each is a
//! `[[constraints]]` bound (`c1` min 0, `c2` max 0.5) and a trial that breaks one is infeasible,
//! ranked by [`Constraint::excess`] as the tracker's history ranks it. Hypervolume of the feasible
//! trials against (1.2, 1.2).
//!
//! One JSON line per (sampler, function, seed), as the Python half writes them:
//!   {"sampler": "sweep-tpe", "function": F, "seed": S, "hypervolume": [h50, h200], "seconds": s}
//! hK: the hypervolume of the first K trials' values.
//!
//! Usage: cargo bench --bench objectives -- [--out FILE] [--seeds 30] [--trials 200]
//!        [--samplers sweep-tpe,sweep-nsga2,sweep-random] [--functions zdt1,zdt2,tnk]
//!        [--population N] (NSGA-II's; its default otherwise; the sampler is then named
//!        sweep-nsga2-N)

use std::io::Write;
use std::time::Instant;

use serde_json::json;
use sweep::config::{Constraint, Goal};
use sweep::study::history::{History, SearchState, TrialRecord};
use sweep::study::nsga2::{Nsga2, Nsga2Settings};
use sweep::study::pareto;
use sweep::study::sampler::{Random, Sampler};
use sweep::study::space::{Domain, Parameter, Space};
use sweep::study::tpe::{Tpe, TpeSettings};

const CHECKPOINTS: [usize; 2] = [50, 200];

/// The function's variables: six on [0, 1] for ZDT, two on [1e-9, pi] for TNK.
fn keys(function: &str) -> Vec<String> {
    let n = if function == "tnk" { 2 } else { 6 };
    (1..=n).map(|i| format!("x{i}")).collect()
}

fn reference(function: &str) -> [f64; 2] {
    if function == "tnk" { [1.2, 1.2] } else { [1.1, 11.0] }
}

/// The objectives, and each constrained metric's value (TNK's c1 and c2).
fn evaluate(function: &str, x: &[f64]) -> ([f64; 2], Vec<f64>) {
    let f1 = x[0];
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
    match function {
        "zdt1" => ([f1, g * (1.0 - (f1 / g).sqrt())], Vec::new()),
        "zdt2" => ([f1, g * (1.0 - (f1 / g).powi(2))], Vec::new()),
        "tnk" => {
            let c1 = x[0].powi(2) + x[1].powi(2) - 1.0 - 0.1 * (16.0 * (x[0] / x[1]).atan()).cos();
            let c2 = (x[0] - 0.5).powi(2) + (x[1] - 0.5).powi(2);
            ([x[0], x[1]], vec![c1, c2])
        }
        other => panic!("unknown function {other}"),
    }
}

/// TNK's bounds, as a sweep file's `[[constraints]]` would state them.
fn constraints() -> [Constraint; 2] {
    [Constraint { metric: "c1".into(), min: Some(0.0), max: None }, Constraint { metric: "c2".into(), min: None, max: Some(0.5) }]
}

fn space(function: &str) -> Space {
    let (min, max) = if function == "tnk" { (1e-9, std::f64::consts::PI) } else { (0.0, 1.0) };
    let parameters: Vec<Parameter> = keys(function).into_iter().map(|key| Parameter { key, domain: Domain::Uniform { min, max } }).collect();
    Space::unconditional(&parameters)
}

fn sampler(name: &str, function: &str, seed: u64, population: Option<usize>) -> Box<dyn Sampler> {
    match name {
        "sweep-tpe" => Box::new(Tpe::new(space(function), seed, TpeSettings::default())),
        "sweep-nsga2" => {
            let settings = Nsga2Settings { population: population.unwrap_or(Nsga2Settings::default().population), ..Default::default() };
            Box::new(Nsga2::new(space(function), seed, settings))
        }
        "sweep-random" => Box::new(Random::new(space(function), seed)),
        other => panic!("unknown sampler {other}"),
    }
}

/// The hypervolume of the first K trials' feasible values, at each checkpoint.
fn search(function: &str, sampler: &dyn Sampler, trials: usize) -> Vec<f64> {
    let goals = vec![Goal::Minimize, Goal::Minimize];
    let mut history = History::new("f1", Goal::Minimize, Vec::new()).with_objectives(goals.clone());
    let mut out = Vec::new();
    for number in 0..trials {
        let point = sampler.ask(&history).expect("a continuous space never runs out");
        let x: Vec<f64> = keys(function).iter().map(|k| point[k].as_f64().expect("a number")).collect();
        let (scores, bounded) = evaluate(function, &x);
        let violation: f64 = constraints().iter().zip(&bounded).map(|(c, v)| c.excess(*v)).sum();
        history.trials.push(TrialRecord {
            number,
            point: point.into(),
            state: if violation > 0.0 { SearchState::Infeasible } else { SearchState::Completed },
            values: [(1, scores[0])].into(),
            scores: scores.to_vec(),
            violation,
        });
        if CHECKPOINTS.contains(&(number + 1)) {
            let points: Vec<Vec<f64>> = history.trials.iter().filter(|t| t.state == SearchState::Completed).map(|t| t.scores.clone()).collect();
            out.push(pareto::hypervolume(&points, &goals, &reference(function)));
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
    let samplers: Vec<String> = option("--samplers", "sweep-tpe,sweep-nsga2,sweep-random").split(',').map(str::to_string).collect();
    let functions: Vec<String> = option("--functions", "zdt1,zdt2,tnk").split(',').map(str::to_string).collect();
    let population: Option<usize> = args.iter().any(|a| a == "--population").then(|| option("--population", "").parse().expect("--population N"));
    let out = option("--out", "target/objectives.jsonl");
    let mut file = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    for function in &functions {
        for name in &samplers {
            let start = Instant::now();
            let label = match population {
                Some(n) if name == "sweep-nsga2" => format!("{name}-{n}"),
                _ => name.clone(),
            };
            for seed in 0..seeds {
                let t = Instant::now();
                let hv = search(function, sampler(name, function, seed, population).as_ref(), trials);
                let line = json!({"sampler": label, "function": function, "seed": seed, "hypervolume": hv, "seconds": t.elapsed().as_secs_f64()});
                writeln!(file, "{line}").unwrap();
            }
            eprintln!("{function} {label}: {:.1} s", start.elapsed().as_secs_f64());
        }
    }
    eprintln!("wrote {out}");
}
