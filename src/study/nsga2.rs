//! The genetic search NSGA-II (`method = "nsga2"`), after Deb et al. (2002), written here from
//! the paper: trials are bred from a population of the best trials so far, kept by
//! non-dominated front and, within the front that does not fit whole, by crowding distance (the
//! least crowded kept, so that the population spreads along the front).
//!
//! Generations are counted, not stored: the trials by number, `population` at a time, are the
//! generations (the first is the random stream's points, as random search draws them). The
//! parents of generation `g` are the survivors of generation `g - 1`'s parents together with
//! its finished trials, so any worker works out the same parents from the tracker's history,
//! and a trial of generation `g - 1` still training when a trial of `g` is asked simply does not
//! take part (the asynchronous steady state the tracker's workers need). A child is bred from
//! two parents, each the better of two drawn at random (binary tournament: lower front, then
//! larger crowding distance); with probability `crossover_prob` they cross (each number, with
//! probability one half, by simulated binary crossover, SBX, distribution index 20; each listed
//! value from either parent), then each parameter mutates with probability `mutation_prob`
//! (1 / the number of swept parameters unless set: a number by polynomial mutation, index 20, a
//! listed value redrawn). Numbers cross and mutate where TPE models them (log-uniform ones on
//! the log scale; integers and multiples of q rounded back).
//!
//! Constraints follow Deb's rule: a feasible trial beats an infeasible one, two infeasible
//! trials compare by violation ([`TrialRecord::violation`]), two feasible ones by front and
//! crowding. Only completed and infeasible trials take part: a pruned trial's values are not
//! final, a failed one has none. One objective works too (fronts are then ranks by value).

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::Value as Json;

use crate::config::Goal;
use crate::study::history::{History, Point, SearchState, TrialRecord};
use crate::study::pareto;
use crate::study::sampler::{Random, Sampler};
use crate::study::space::Space;
use crate::study::tpe::Axis;

/// NSGA-II's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Nsga2Settings {
    /// Trials per generation, and the parents kept. Optuna's default is 50, for cheap
    /// functions; 20 suits a sweep of tens of trials (two and more generations bred).
    pub population: usize,
    /// The chance that two parents cross; otherwise the child is the first parent, mutated.
    pub crossover_prob: f64,
    /// Each parameter's chance to mutate; None: 1 / the number of swept parameters.
    pub mutation_prob: Option<f64>,
}

impl Default for Nsga2Settings {
    fn default() -> Self {
        Nsga2Settings { population: 20, crossover_prob: 0.9, mutation_prob: None }
    }
}

/// SBX's and polynomial mutation's distribution index (Deb's): the larger, the nearer a child
/// stays to its parents.
const ETA: f64 = 20.0;

/// Children bred before the sampler gives up on one the history does not hold and takes the
/// random stream's next unseen point.
const FRESH_TRIES: usize = 16;

/// The NSGA-II sampler.
#[derive(Debug, Clone)]
pub struct Nsga2 {
    space: Space,
    seed: u64,
    settings: Nsga2Settings,
    random: Random,
}

/// A trial that takes part in selection: how good it is.
#[derive(Debug, Clone, PartialEq)]
enum Fitness {
    /// Its value of each objective.
    Feasible(Vec<f64>),
    /// How far it is from its constraints.
    Infeasible(f64),
}

/// A parent: its trial, its front (infeasible trials after every feasible front, one each, by
/// violation) and its crowding distance within its front.
#[derive(Debug, Clone)]
pub struct Parent<'a> {
    pub trial: &'a TrialRecord,
    pub rank: usize,
    pub crowding: f64,
    fitness: Fitness,
}

impl Parent<'_> {
    /// Wins a binary tournament against `other`: a lower front, then a larger crowding
    /// distance, then the older trial.
    fn beats(&self, other: &Parent) -> bool {
        let order = self.rank.cmp(&other.rank).then(other.crowding.total_cmp(&self.crowding)).then(self.trial.number.cmp(&other.trial.number));
        order == std::cmp::Ordering::Less
    }
}

impl Nsga2 {
    pub fn new(space: Space, seed: u64, settings: Nsga2Settings) -> Nsga2 {
        Nsga2 { random: Random::new(space.clone(), seed), space, seed, settings }
    }

    /// The parents the next trial is bred from: the survivors of every generation before the
    /// one it belongs to, best first. Empty while it belongs to the first generation.
    pub fn parents<'a>(&self, history: &'a History) -> Vec<Parent<'a>> {
        let goals: Vec<Goal> = if history.objectives.len() > 1 { history.objectives.clone() } else { vec![history.goal] };
        let mut trials: Vec<&TrialRecord> = history.trials.iter().collect();
        trials.sort_by_key(|t| t.number);
        let pop = self.settings.population.max(2);
        let mut parents: Vec<Parent<'a>> = Vec::new();
        for generation in trials.chunks_exact(pop) {
            let mut candidates: Vec<(&'a TrialRecord, Fitness)> = parents.drain(..).map(|p| (p.trial, p.fitness)).collect();
            candidates.extend(generation.iter().filter_map(|t| fitness(t, history, &goals).map(|f| (*t, f))));
            parents = survivors(candidates, pop, &goals);
        }
        parents
    }

    /// One child of `a` and `b` (crossed or not, then mutated); parameters `fixed` names keep
    /// their values there.
    fn breed(&self, a: &Point, b: &Point, fixed: &Point, rng: &mut ChaCha8Rng) -> Point {
        let dims = self.space.dimensions();
        let swept = dims.iter().filter(|d| Axis::of(&d.parameter.domain).is_some()).count().max(1);
        let mutation = self.settings.mutation_prob.unwrap_or(1.0 / swept as f64);
        let cross = rng.random::<f64>() < self.settings.crossover_prob;
        let mut child = Point::new();
        for d in dims {
            if !d.applies(&child) {
                continue;
            }
            let key = &d.parameter.key;
            if let Some(v) = fixed.get(key) {
                child.insert(key.clone(), v.clone());
                continue;
            }
            let Some(axis) = Axis::of(&d.parameter.domain) else {
                child.insert(key.clone(), d.parameter.domain.grid_values().swap_remove(0));
                continue;
            };
            // A parent whose point lacks the parameter (its condition failed there) passes on
            // nothing; a value it cannot place (recorded under other bounds) neither.
            let (x, y) = (a.get(key).and_then(|v| axis.coordinate(v)), b.get(key).and_then(|v| axis.coordinate(v)));
            let mut value: Json = match (x, y) {
                (Some(x), Some(y)) if cross => crossed(&axis, x, y, rng),
                (Some(x), _) | (None, Some(x)) => axis.value(x),
                (None, None) => d.parameter.domain.sample(rng),
            };
            if rng.random::<f64>() < mutation {
                value = match &axis {
                    Axis::Numeric(scale) => {
                        let at = axis.coordinate(&value).unwrap_or(scale.low);
                        axis.value(polynomial_mutation(at, scale.low, scale.high, rng.random()))
                    }
                    Axis::Choice { .. } => d.parameter.domain.sample(rng),
                };
            }
            child.insert(key.clone(), value);
        }
        child
    }
}

impl Sampler for Nsga2 {
    fn ask(&self, history: &History) -> Option<Point> {
        self.ask_with(history, &Point::new())
    }

    fn ask_with(&self, history: &History, fixed: &Point) -> Option<Point> {
        let parents = self.parents(history);
        if parents.len() < 2 {
            return self.random.ask_with(history, fixed);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6e57_6132 ^ (history.trials.len() as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let tournament = |rng: &mut ChaCha8Rng| {
            let (i, j) = (rng.random_range(0..parents.len()), rng.random_range(0..parents.len()));
            if parents[j].beats(&parents[i]) { &parents[j] } else { &parents[i] }
        };
        for _ in 0..FRESH_TRIES {
            let a = tournament(&mut rng);
            let b = tournament(&mut rng);
            let child = self.breed(&a.trial.point, &b.trial.point, fixed, &mut rng);
            if !history.trials.iter().any(|t| *t.point == child) {
                return Some(child);
            }
        }
        self.random.ask_with(history, fixed)
    }
}

/// How a trial takes part in selection; None when it does not (not finished, pruned, failed,
/// or completed without a value of every objective).
fn fitness(t: &TrialRecord, history: &History, goals: &[Goal]) -> Option<Fitness> {
    match t.state {
        SearchState::Completed if goals.len() > 1 => (t.scores.len() == goals.len()).then(|| Fitness::Feasible(t.scores.clone())),
        SearchState::Completed => t.best(history.goal).map(|v| Fitness::Feasible(vec![v])),
        SearchState::Infeasible => Some(Fitness::Infeasible(t.violation)),
        _ => None,
    }
}

/// The `keep` best of `candidates`, best first: the feasible ones by front, the front that does
/// not fit whole cut to its least crowded members; then, if room is left, the infeasible ones
/// by violation.
fn survivors<'a>(candidates: Vec<(&'a TrialRecord, Fitness)>, keep: usize, goals: &[Goal]) -> Vec<Parent<'a>> {
    let (feasible, mut infeasible): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|(_, f)| matches!(f, Fitness::Feasible(_)));
    let points: Vec<Vec<f64>> = feasible.iter().map(|(_, f)| if let Fitness::Feasible(v) = f { v.clone() } else { unreachable!() }).collect();
    let mut kept: Vec<Parent<'a>> = Vec::with_capacity(keep);
    let fronts = pareto::fronts(&points, goals);
    let feasible_fronts = fronts.len();
    for (rank, front) in fronts.into_iter().enumerate() {
        if kept.len() >= keep {
            break;
        }
        let crowding = pareto::crowding(&front, &points, goals);
        let mut members: Vec<(usize, f64)> = front.into_iter().zip(crowding).collect();
        // Least crowded first, ties to the older trial.
        members.sort_by(|a, b| b.1.total_cmp(&a.1).then(feasible[a.0].0.number.cmp(&feasible[b.0].0.number)));
        members.truncate(keep - kept.len());
        kept.extend(members.into_iter().map(|(i, crowding)| Parent { trial: feasible[i].0, rank, crowding, fitness: feasible[i].1.clone() }));
    }
    let violation = |f: &Fitness| if let Fitness::Infeasible(v) = f { *v } else { 0.0 };
    infeasible.sort_by(|a, b| violation(&a.1).total_cmp(&violation(&b.1)).then(a.0.number.cmp(&b.0.number)));
    for (k, (trial, fitness)) in infeasible.into_iter().take(keep - kept.len()).enumerate() {
        kept.push(Parent { trial, rank: feasible_fronts + k, crowding: 0.0, fitness });
    }
    kept
}

/// A child of coordinates `x` and `y` on `axis`: a number by SBX with probability one half
/// (else `x`'s), a listed value from either parent.
fn crossed(axis: &Axis, x: f64, y: f64, rng: &mut ChaCha8Rng) -> Json {
    match axis {
        Axis::Numeric(scale) if rng.random::<f64>() < 0.5 => axis.value(sbx(x, y, scale.low, scale.high, rng.random(), rng.random())),
        Axis::Numeric(_) => axis.value(x),
        Axis::Choice { .. } => axis.value(if rng.random::<f64>() < 0.5 { x } else { y }),
    }
}

/// Simulated binary crossover of `x` and `y` on [low, high] (Deb and Agrawal's bounded form):
/// one of the two children, by `side`; `u` in [0, 1) draws the spread.
pub(crate) fn sbx(x: f64, y: f64, low: f64, high: f64, u: f64, side: f64) -> f64 {
    let (y1, y2) = (x.min(y), x.max(y));
    if y2 - y1 < 1e-14 {
        return x;
    }
    let spread = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(ETA + 1.0));
        if u <= 1.0 / alpha { (u * alpha).powf(1.0 / (ETA + 1.0)) } else { (1.0 / (2.0 - u * alpha)).powf(1.0 / (ETA + 1.0)) }
    };
    let c1 = 0.5 * ((y1 + y2) - spread(1.0 + 2.0 * (y1 - low) / (y2 - y1)) * (y2 - y1));
    let c2 = 0.5 * ((y1 + y2) + spread(1.0 + 2.0 * (high - y2) / (y2 - y1)) * (y2 - y1));
    (if side < 0.5 { c1 } else { c2 }).clamp(low, high)
}

/// Polynomial mutation of `x` on [low, high] (Deb's bounded form); `u` in [0, 1) draws it.
pub(crate) fn polynomial_mutation(x: f64, low: f64, high: f64, u: f64) -> f64 {
    let range = high - low;
    if range <= 0.0 {
        return x;
    }
    let power = 1.0 / (ETA + 1.0);
    let delta = if u < 0.5 {
        let xy = 1.0 - (x - low) / range;
        (2.0 * u + (1.0 - 2.0 * u) * xy.powf(ETA + 1.0)).powf(power) - 1.0
    } else {
        let xy = 1.0 - (high - x) / range;
        1.0 - (2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy.powf(ETA + 1.0)).powf(power)
    };
    (x + delta * range).clamp(low, high)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::study::space::{Condition, Dimension, Domain, Parameter};

    fn space(n: usize) -> Space {
        let parameters: Vec<Parameter> = (0..n).map(|i| Parameter { key: format!("x{i}"), domain: Domain::Uniform { min: 0.0, max: 1.0 } }).collect();
        Space::unconditional(&parameters)
    }

    fn done(number: usize, scores: [f64; 2]) -> TrialRecord {
        TrialRecord {
            number,
            point: Point::from([("x0".to_string(), json!(number as f64 / 100.0))]).into(),
            state: SearchState::Completed,
            values: [(1, scores[0])].into(),
            scores: scores.to_vec(),
            violation: 0.0,
        }
    }

    /// ZDT1 in `n` variables, both minimised.
    fn zdt1(x: &[f64]) -> [f64; 2] {
        let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
        [x[0], g * (1.0 - (x[0] / g).sqrt())]
    }

    /// The hypervolume (against (1.1, 11)) after `trials` of a sampler on ZDT1 in 4 variables.
    fn zdt1_hypervolume(sampler: &dyn Sampler, trials: usize) -> f64 {
        let goals = vec![Goal::Minimize, Goal::Minimize];
        let mut h = History::new("f1", Goal::Minimize, Vec::new()).with_objectives(goals.clone());
        for number in 0..trials {
            let p = sampler.ask(&h).unwrap();
            let x: Vec<f64> = (0..4).map(|i| p[&format!("x{i}")].as_f64().unwrap()).collect();
            let f = zdt1(&x);
            h.trials.push(TrialRecord { point: p.into(), ..done(number, f) });
        }
        let points: Vec<Vec<f64>> = h.trials.iter().map(|t| t.scores.clone()).collect();
        pareto::hypervolume(&points, &goals, &[1.1, 11.0])
    }

    #[test]
    fn sbx_and_polynomial_mutation_stay_in_bounds_and_centre_on_the_parents() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let (x, y, u, side): (f64, f64, f64, f64) = (rng.random(), rng.random(), rng.random(), rng.random());
            let c = sbx(x, y, 0.0, 1.0, u, side);
            assert!((0.0..=1.0).contains(&c), "{x} {y} {u}: {c}");
            // The two children sit symmetrically about the parents' mean where neither is clamped.
            let (c1, c2) = (sbx(x, y, -100.0, 100.0, u, 0.0), sbx(x, y, -100.0, 100.0, u, 0.9));
            assert!((c1 + c2 - (x + y)).abs() < 1e-9 || (x - y).abs() < 1e-14, "{x} {y}: {c1} {c2}");
            let m = polynomial_mutation(x, 0.0, 1.0, u);
            assert!((0.0..=1.0).contains(&m));
            assert_eq!(m > x, u > 0.5, "u above one half moves up: {x} {u} -> {m}");
        }
        assert_eq!(sbx(0.3, 0.3, 0.0, 1.0, 0.9, 0.1), 0.3, "equal parents: their value");
        assert_eq!(polynomial_mutation(0.3, 0.0, 1.0, 0.5), 0.3, "u = 1/2: no move");
        // u = 1/2 in SBX spreads the children by exactly the parents' gap (beta = 1, far from
        // the bounds).
        assert!((sbx(0.4, 0.6, -1e9, 1e9, 0.5, 0.0) - 0.4).abs() < 1e-6);
    }

    #[test]
    fn survivors_are_kept_by_front_then_least_crowded_then_least_violation() {
        let goals = [Goal::Minimize, Goal::Minimize];
        // Front 0: (0,4), (1,2), (2,1.5), (4,0); front 1: (3,3); then two infeasible trials.
        let trials = [done(0, [0.0, 4.0]), done(1, [1.0, 2.0]), done(2, [2.0, 1.5]), done(3, [4.0, 0.0]), done(4, [3.0, 3.0])];
        let mut bad = [done(5, [0.0, 0.0]), done(6, [0.0, 0.0])];
        (bad[0].state, bad[0].violation, bad[1].state, bad[1].violation) = (SearchState::Infeasible, 2.0, SearchState::Infeasible, 0.5);
        let all = || {
            trials
                .iter()
                .chain(&bad)
                .map(|t| (t, if t.state == SearchState::Infeasible { Fitness::Infeasible(t.violation) } else { Fitness::Feasible(t.scores.clone()) }))
                .collect::<Vec<_>>()
        };
        let numbers = |kept: &[Parent]| kept.iter().map(|p| p.trial.number).collect::<Vec<_>>();
        // Keep 3 of front 0: the extremes (infinite crowding), then the inner point whose
        // neighbours are further apart: trial 2 ((4-1)/4 + (2-0)/4 = 1.25), not trial 1
        // ((2-0)/4 + (4-1.5)/4 = 1.125).
        let kept = survivors(all(), 3, &goals);
        assert_eq!(numbers(&kept), [0, 3, 2]);
        assert!(kept.iter().all(|p| p.rank == 0));
        assert!((kept[2].crowding - 1.25).abs() < 1e-12, "{}", kept[2].crowding);
        // Room for everything: the fronts, then the infeasible by violation, least first.
        let kept = survivors(all(), 7, &goals);
        assert_eq!(numbers(&kept), [0, 3, 2, 1, 4, 6, 5]);
        assert_eq!(kept.iter().map(|p| p.rank).collect::<Vec<_>>(), [0, 0, 0, 0, 1, 2, 3]);
        // A feasible trial wins a tournament against any infeasible one; the same front goes to the
        // less crowded.
        assert!(kept[4].beats(&kept[5]) && !kept[5].beats(&kept[4]));
        assert!(kept[0].beats(&kept[2]) && kept[5].beats(&kept[6]));
    }

    #[test]
    fn generations_are_counted_from_the_history_and_the_first_is_the_random_streams() {
        let nsga = Nsga2::new(space(4), 5, Nsga2Settings { population: 6, ..Default::default() });
        let random = Random::new(space(4), 5);
        let goals = vec![Goal::Minimize, Goal::Minimize];
        let mut h = History::new("f1", Goal::Minimize, Vec::new()).with_objectives(goals);
        for number in 0..14 {
            let p = nsga.ask(&h).unwrap();
            if number < 6 {
                assert_eq!(Some(&p), random.ask(&h).as_ref(), "trial {number}: generation 0 is random search's");
            }
            assert_eq!(nsga.clone().ask(&h.clone()), Some(p.clone()), "the same history gives the same point");
            let x: Vec<f64> = (0..4).map(|i| p[&format!("x{i}")].as_f64().unwrap()).collect();
            h.trials.push(TrialRecord { point: p.into(), ..done(number, zdt1(&x)) });
            // Parents: none in generation 0, then the population's size (all six finished).
            let parents = nsga.parents(&h);
            assert_eq!(parents.len(), if number + 1 < 6 { 0 } else { 6 }, "after trial {number}");
        }
        // A trial of the last full generation still running takes no part.
        h.trials[11].state = SearchState::Running;
        let parents = nsga.parents(&h);
        assert_eq!(parents.len(), 6);
        assert!(parents.iter().all(|p| p.trial.number != 11));
    }

    #[test]
    fn nsga2_beats_random_search_on_zdt1_over_thirty_seeds() {
        let (mut ours, mut random, mut wins) = (0.0, 0.0, 0);
        for seed in 0..30 {
            let n = zdt1_hypervolume(&Nsga2::new(space(4), seed, Nsga2Settings { population: 10, ..Default::default() }), 150);
            let r = zdt1_hypervolume(&Random::new(space(4), seed), 150);
            (ours, random, wins) = (ours + n, random + r, wins + usize::from(n > r));
        }
        eprintln!(
            "ZDT1, 150 trials, mean hypervolume over 30 seeds: NSGA-II {:.3}, random {:.3}; NSGA-II ahead in {wins}",
            ours / 30.0,
            random / 30.0
        );
        assert!(ours > random && wins >= 22, "NSGA-II {ours} random {random} wins {wins}");
    }

    #[test]
    fn children_keep_to_the_domains_and_conditions_and_the_fixed_values() {
        let parameters = vec![
            Parameter { key: "opt".into(), domain: Domain::Values(vec![json!("adam"), json!("sgd")]) },
            Parameter { key: "momentum".into(), domain: Domain::QUniform { min: 0.5, max: 0.99, q: 0.01 } },
            Parameter { key: "lr".into(), domain: Domain::LogUniformValues { min: 1e-4, max: 1e-1 } },
            Parameter { key: "batch".into(), domain: Domain::IntUniform { min: 2, max: 8 } },
            Parameter { key: "fixed".into(), domain: Domain::Value(json!(3)) },
        ];
        let when = Condition { key: "opt".into(), values: vec![json!("sgd")] };
        let dims: Vec<Dimension> =
            parameters.into_iter().map(|p| Dimension { when: (p.key == "momentum").then(|| when.clone()), parameter: p }).collect();
        let nsga = Nsga2::new(Space::new(dims).unwrap(), 2, Nsga2Settings { population: 5, ..Default::default() });
        let mut h = History::new("val_iou", Goal::Maximize, Vec::new());
        let pinned = Point::from([("batch".to_string(), json!(4))]);
        for number in 0..40 {
            let p = if number % 7 == 6 { nsga.ask_with(&h, &pinned).unwrap() } else { nsga.ask(&h).unwrap() };
            assert_eq!(p.contains_key("momentum"), p["opt"] == json!("sgd"), "{p:?}");
            if let Some(m) = p.get("momentum") {
                let m = m.as_f64().unwrap();
                assert!((0.5..=0.99).contains(&m) && ((m * 100.0) - (m * 100.0).round()).abs() < 1e-9, "{p:?}");
            }
            assert!((1e-4..=1e-1).contains(&p["lr"].as_f64().unwrap()), "{p:?}");
            assert!((2..=8).contains(&p["batch"].as_i64().unwrap()) && p["fixed"] == json!(3), "{p:?}");
            if number % 7 == 6 {
                assert_eq!(p["batch"], json!(4));
            }
            assert!(!h.trials.iter().any(|t| *t.point == p), "a new point");
            let value = p["lr"].as_f64().unwrap().ln();
            h.trials.push(TrialRecord {
                number,
                point: p.into(),
                state: SearchState::Completed,
                values: [(1, value)].into(),
                scores: Vec::new(),
                violation: 0.0,
            });
        }
    }
}
