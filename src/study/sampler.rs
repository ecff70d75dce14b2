//! Samplers: what to try next. A sampler answers one question, lazily and for any worker: given
//! everything the tracker knows of the sweep (a [`History`]), which point comes next?
//!
//! Samplers hold only their settings and seed (`ask` takes `&self`): the next point is a function
//! of the history, so two workers asking with the same history get the same answer, and a killed
//! sweep resumes with the same study. Nothing here materialises a whole space: the grid decodes
//! a point from its index, and random search streams its draws.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde_json::Value as Json;

use crate::study::history::{History, Point};
use crate::study::space::{Space, SpaceError, finite_values, point_key, same_value};

/// A search strategy.
pub trait Sampler {
    /// The next point to try: one that is not yet in `history`, or None when the sampler has
    /// nothing new to propose (a grid is exhausted, a small space has no unseen draw left).
    /// How many points a sweep asks for (`run_cap`) is the caller's decision.
    fn ask(&self, history: &History) -> Option<Point>;

    /// The next point whose parameters named in `fixed` take the values given there (a
    /// configuration put first with `sweep enqueue` or `[[enqueue]]`; the others drawn as the
    /// sampler draws them), or None when the sampler has no such point it has not proposed.
    /// `fixed` names only parameters of the space, with values their domains take.
    fn ask_with(&self, history: &History, fixed: &Point) -> Option<Point>;
}

/// Whether `point` takes every value `fixed` gives (a parameter `fixed` names that the point
/// leaves out, because its condition fails there, does not match).
pub fn matches_fixed(point: &Point, fixed: &Point) -> bool {
    fixed.iter().all(|(k, v)| point.get(k).is_some_and(|p| same_value(p, v)))
}

/// The points already in the history, by identity.
pub(crate) fn seen(history: &History) -> HashSet<String> {
    history.trials.iter().map(|t| point_key(&t.point)).collect()
}

/// Grid search: the cartesian product of the parameters' values, never materialised. Index `i`
/// decodes to a point in mixed radix, the last parameter varying fastest, which is the order
/// sweeps have always expanded in.
#[derive(Debug, Clone)]
pub struct Grid {
    space: Space,
    axes: Vec<Vec<Json>>,
}

impl Grid {
    /// Every parameter must be a finite list of values.
    pub fn new(space: Space) -> Result<Grid, SpaceError> {
        let axes = space
            .dimensions()
            .iter()
            .map(|d| finite_values(&d.parameter.domain).ok_or_else(|| SpaceError::NotFinite(d.parameter.key.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Grid { space, axes })
    }

    /// How many indices the grid has (saturating: a grid larger than `u128` is never walked
    /// to its end).
    pub fn len(&self) -> u128 {
        self.axes.iter().fold(1u128, |n, axis| n.saturating_mul(axis.len() as u128))
    }

    pub fn is_empty(&self) -> bool {
        self.axes.iter().any(Vec::is_empty)
    }

    /// The point at `index`, or None past the end or where the index is not its point's
    /// canonical index (a parameter whose condition fails is left out, and only the index with
    /// its first value stands for the point, so that the grid lists each point once).
    pub fn point(&self, index: u128) -> Option<Point> {
        if index >= self.len() {
            return None;
        }
        let digits = self.digits(index);
        let mut point = Point::new();
        for ((d, axis), digit) in self.space.dimensions().iter().zip(&self.axes).zip(digits) {
            if d.applies(&point) {
                point.insert(d.parameter.key.clone(), axis[digit].clone());
            } else if digit != 0 {
                return None;
            }
        }
        Some(point)
    }

    /// The digits of `index`, first parameter first (most significant).
    fn digits(&self, mut index: u128) -> Vec<usize> {
        let mut digits = vec![0; self.axes.len()];
        for (digit, axis) in digits.iter_mut().zip(&self.axes).rev() {
            let n = axis.len() as u128;
            *digit = (index % n) as usize;
            index /= n;
        }
        digits
    }
}

impl Sampler for Grid {
    /// The first index whose point is not in the history. Every index skipped on the way holds a
    /// point of the history, so an unconditional grid of any size answers in time proportional
    /// to the history. (A conditional grid also skips the indices that repeat a point.)
    fn ask(&self, history: &History) -> Option<Point> {
        let seen = seen(history);
        (0..self.len()).filter_map(|i| self.point(i)).find(|p| !seen.contains(&point_key(p)))
    }

    /// The first unseen grid point that takes the fixed values.
    fn ask_with(&self, history: &History, fixed: &Point) -> Option<Point> {
        let seen = seen(history);
        (0..self.len()).filter_map(|i| self.point(i)).find(|p| matches_fixed(p, fixed) && !seen.contains(&point_key(p)))
    }
}

/// Random search: draws from a ChaCha8 stream seeded by the sweep's seed, each parameter in
/// order, skipping a draw that repeats an earlier point. Draw `k` is the `k`-th point sweeps have
/// always drawn, so recorded trials keep their identities.
#[derive(Debug, Clone)]
pub struct Random {
    space: Space,
    seed: u64,
}

/// A small space runs out of new points: random search gives up after this many draws per point
/// it was asked for (the rule `run_cap * 100` that sweeps have always used).
pub(crate) const DRAWS_PER_POINT: usize = 100;

impl Random {
    pub fn new(space: Space, seed: u64) -> Random {
        Random { space, seed }
    }

    /// The distinct points of the stream, in draw order, from at most `draws` draws.
    pub fn points(&self, draws: usize) -> impl Iterator<Item = Point> + use<> {
        let this = self.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut seen = HashSet::new();
        (0..draws).filter_map(move |_| {
            let point = this.draw(&mut rng);
            seen.insert(point_key(&point)).then_some(point)
        })
    }

    /// The first `cap` points, as `run_cap = cap` has always drawn them.
    pub fn first(&self, cap: usize) -> impl Iterator<Item = Point> + use<> {
        self.points(cap.saturating_mul(DRAWS_PER_POINT)).take(cap)
    }

    /// One draw: each applicable parameter in order. A parameter whose condition fails takes
    /// nothing from the stream.
    fn draw(&self, rng: &mut ChaCha8Rng) -> Point {
        self.draw_with(rng, &Point::new())
    }

    /// One draw in which the parameters `fixed` names take its values (and take nothing from
    /// the stream).
    fn draw_with(&self, rng: &mut ChaCha8Rng, fixed: &Point) -> Point {
        let mut point = Point::new();
        for d in self.space.dimensions() {
            if d.applies(&point) {
                let value = match fixed.get(&d.parameter.key) {
                    Some(v) => v.clone(),
                    None => d.parameter.domain.sample(rng),
                };
                point.insert(d.parameter.key.clone(), value);
            }
        }
        point
    }
}

impl Sampler for Random {
    /// The first point of the stream not in the history, looked for within as many draws as
    /// `run_cap` = (trials known + 1) would allow.
    fn ask(&self, history: &History) -> Option<Point> {
        let seen = seen(history);
        let draws = (history.trials.len() + 1).saturating_mul(DRAWS_PER_POINT);
        self.points(draws).find(|p| !seen.contains(&point_key(p)))
    }

    /// With nothing fixed, `ask`. Otherwise draws from a side stream (seeded by the sweep's
    /// seed and the number of trials known), so that the main stream, and with it the points
    /// random search has always drawn, is left as it was.
    fn ask_with(&self, history: &History, fixed: &Point) -> Option<Point> {
        if fixed.is_empty() {
            return self.ask(history);
        }
        let seen = seen(history);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_f1fe_d000_0000 ^ history.trials.len() as u64);
        (0..DRAWS_PER_POINT).map(|_| self.draw_with(&mut rng, fixed)).find(|p| !seen.contains(&point_key(p)))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;
    use crate::config::Goal;
    use crate::study::history::{SearchState, TrialRecord};
    use crate::study::space::{Condition, Dimension};
    use crate::study::space::{Domain, Parameter};
    use crate::study::spec;

    fn values(key: &str, vs: &[Json]) -> Parameter {
        Parameter { key: key.into(), domain: Domain::Values(vs.to_vec()) }
    }

    fn history_of(points: &[Point]) -> History {
        let trials = points
            .iter()
            .enumerate()
            .map(|(i, p)| TrialRecord {
                number: i + 1,
                point: p.clone().into(),
                state: SearchState::Queued,
                values: Default::default(),
                scores: Vec::new(),
                violation: 0.0,
            })
            .collect();
        History::new("val_iou", Goal::Maximize, trials)
    }

    /// Asks `n` times, recording each answer as a queued trial, as workers would.
    fn ask_n(sampler: &dyn Sampler, n: usize) -> Vec<Point> {
        let mut points = Vec::new();
        for _ in 0..n {
            match sampler.ask(&history_of(&points)) {
                Some(p) => points.push(p),
                None => break,
            }
        }
        points
    }

    /// The grid as sweeps materialised it before samplers existed: the reference order.
    fn materialised_grid(parameters: &[Parameter]) -> Vec<Point> {
        let mut points = vec![Point::new()];
        for p in parameters {
            let vs = finite_values(&p.domain).unwrap();
            points = points
                .into_iter()
                .flat_map(|point| {
                    vs.iter().map(move |v| {
                        let mut next = point.clone();
                        next.insert(p.key.clone(), v.clone());
                        next
                    })
                })
                .collect();
        }
        points
    }

    fn three_axes() -> Vec<Parameter> {
        vec![
            values("train.optimizer", &[json!("adam"), json!("sgd")]),
            values("augment.hue_delta", &[json!(0.0), json!(0.1), json!(0.2)]),
            Parameter {
                key: "train.momentum".into(),
                domain: Domain::Categorical { values: vec![json!(0.0), json!(0.5), json!(0.9), json!(0.99)], probabilities: vec![0.25; 4] },
            },
        ]
    }

    #[test]
    fn grid_indices_decode_to_the_old_materialised_order_on_a_three_axis_grid() {
        let params = three_axes();
        let grid = Grid::new(Space::unconditional(&params)).unwrap();
        let old = materialised_grid(&params);
        assert_eq!(grid.len(), 24);
        let decoded: Vec<Point> = (0..grid.len()).map(|i| grid.point(i).unwrap()).collect();
        assert_eq!(decoded, old);
        assert_eq!(grid.point(24), None);
        assert_eq!(ask_n(&grid, 100), old, "asking one at a time walks the same order, then stops");
    }

    #[test]
    fn the_grid_asks_for_the_first_index_not_yet_in_the_history() {
        let grid = Grid::new(Space::unconditional(&three_axes())).unwrap();
        let old = materialised_grid(&three_axes());
        // Trials 0, 1 and 3 are known (say trial 2 was registered by a sweep file that changed).
        let history = history_of(&[old[0].clone(), old[1].clone(), old[3].clone()]);
        assert_eq!(grid.ask(&history), Some(old[2].clone()));
    }

    #[test]
    fn a_grid_of_a_billion_points_answers_three_points_at_once() {
        let digits: Vec<Json> = (0..10).map(|d| json!(d)).collect();
        let params: Vec<Parameter> = (0..9).map(|i| values(&format!("k{i}"), &digits)).collect();
        let grid = Grid::new(Space::unconditional(&params)).unwrap();
        assert_eq!(grid.len(), 1_000_000_000);
        let start = Instant::now();
        let points = ask_n(&grid, 3);
        assert!(start.elapsed() < Duration::from_millis(100), "{:?}", start.elapsed());
        let last_key: Vec<Json> = points.iter().map(|p| p["k8"].clone()).collect();
        assert_eq!(last_key, [json!(0), json!(1), json!(2)], "the last key varies fastest");
        assert!(points.iter().all(|p| p["k0"] == json!(0) && p.len() == 9));
        let end = grid.point(999_999_999).unwrap();
        assert!(end.values().all(|v| *v == json!(9)));
    }

    #[test]
    fn a_grid_refuses_a_distribution() {
        let params = [Parameter { key: "train.learning_rate".into(), domain: Domain::Uniform { min: 0.0, max: 1.0 } }];
        assert_eq!(Grid::new(Space::unconditional(&params)).unwrap_err(), SpaceError::NotFinite("train.learning_rate".into()));
    }

    fn conditional_space() -> Space {
        Space::new(vec![
            Dimension { parameter: values("train.optimizer", &[json!("adam"), json!("sgd")]), when: None },
            Dimension {
                parameter: values("train.momentum", &[json!(0.0), json!(0.9)]),
                when: Some(Condition { key: "train.optimizer".into(), values: vec![json!("sgd")] }),
            },
            Dimension { parameter: values("train.batch_size", &[json!(4), json!(8)]), when: None },
        ])
        .unwrap()
    }

    #[test]
    fn a_grid_lists_each_point_of_a_conditional_space_once_and_leaves_out_what_does_not_apply() {
        let grid = Grid::new(conditional_space()).unwrap();
        let points = ask_n(&grid, 100);
        let p = |o: &str, m: Option<f64>, b: u64| {
            let mut p = Point::from([("train.optimizer".to_string(), json!(o)), ("train.batch_size".to_string(), json!(b))]);
            if let Some(m) = m {
                p.insert("train.momentum".into(), json!(m));
            }
            p
        };
        assert_eq!(
            points,
            [p("adam", None, 4), p("adam", None, 8), p("sgd", Some(0.0), 4), p("sgd", Some(0.0), 8), p("sgd", Some(0.9), 4), p("sgd", Some(0.9), 8)]
        );
    }

    #[test]
    fn random_draws_leave_out_a_parameter_whose_condition_fails() {
        let random = Random::new(conditional_space(), 3);
        let points: Vec<Point> = random.points(200).collect();
        assert_eq!(points.len(), 6, "every point of the small space, each once");
        for p in &points {
            assert_eq!(p.contains_key("train.momentum"), p["train.optimizer"] == json!("sgd"), "{p:?}");
        }
    }

    #[test]
    fn random_search_asked_one_at_a_time_streams_the_first_draws_and_stops_when_the_space_runs_out() {
        let params = vec![
            values("train.optimizer", &[json!("adam"), json!("sgd"), json!("rmsprop")]),
            Parameter { key: "train.learning_rate".into(), domain: Domain::LogUniformValues { min: 1e-4, max: 1e-1 } },
        ];
        let random = Random::new(Space::unconditional(&params), 5);
        let first: Vec<Point> = random.first(12).collect();
        assert_eq!(ask_n(&random, 12), first);
        let tiny = Random::new(Space::unconditional(&params[..1]), 5);
        assert_eq!(ask_n(&tiny, 10).len(), 3, "three values give three points, then None");
    }

    /// Random search as sweeps drew it before samplers existed: the reference order.
    fn old_random_points(parameters: &[Parameter], seed: u64, cap: usize) -> Vec<Point> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut seen = HashSet::new();
        let mut points = Vec::new();
        let mut attempts = 0;
        while points.len() < cap && attempts < cap * 100 {
            attempts += 1;
            let point: Point = parameters.iter().map(|p| (p.key.clone(), p.domain.sample(&mut rng))).collect();
            if seen.insert(serde_json::to_string(&point).unwrap_or_default()) {
                points.push(point);
            }
        }
        points
    }

    #[test]
    fn random_draws_equal_the_old_random_points_on_the_shipped_optimizer_sweep() {
        let spec = spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/optimizer.toml"), &[]).unwrap();
        let random = Random::new(Space::unconditional(&spec.parameters), spec.seed);
        let cap = spec.run_cap.unwrap();
        let old = old_random_points(&spec.parameters, spec.seed, cap);
        assert_eq!(old.len(), 8);
        assert_eq!(random.first(cap).collect::<Vec<_>>(), old);
        assert_eq!(ask_n(&random, cap), old, "asked one at a time by workers");
        let trials: Vec<Point> = spec.trials(None).into_iter().map(|t| t.params).collect();
        assert_eq!(trials, old, "the sweep's trials come from the stream");
        // Streaming further gives what a larger run_cap always drew, the first eight unchanged.
        assert_eq!(ask_n(&random, 50), old_random_points(&spec.parameters, spec.seed, 50));
    }

    #[test]
    fn a_capped_grid_of_a_billion_points_parses_and_expands_its_three_trials_at_once() {
        let list = |step: f64| (1..=1000).map(|i| (i as f64 * step).to_string()).collect::<Vec<_>>().join(", ");
        let text = format!(
            "name = \"huge\"\nrun_cap = 3\n[parameters]\n\"train.learning_rate\" = {{ values = [{}] }}\n\"train.weight_decay\" = {{ values = [{}] }}\n\"train.epsilon\" = {{ values = [{}] }}\n",
            list(1e-5),
            list(1e-6),
            list(1e-9)
        );
        let start = Instant::now();
        let spec = spec::parse(&text, Path::new("sweeps/huge.toml")).unwrap();
        assert_eq!(Grid::new(Space::unconditional(&spec.parameters)).unwrap().len(), 1_000_000_000);
        let trials = spec.trials(None);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        let epsilons: Vec<f64> = trials.iter().map(|t| t.config.train.epsilon).collect();
        assert_eq!(epsilons, [1.0, 2.0, 3.0].map(|i: f64| i * 1e-9), "the last key varies fastest");
        assert!(trials.iter().all(|t| t.config.train.learning_rate == 1e-5));
    }

    #[test]
    fn the_same_history_gives_the_same_next_point() {
        let random = Random::new(Space::unconditional(&three_axes()), 9);
        let history = history_of(&ask_n(&random, 4));
        assert_eq!(random.ask(&history), random.clone().ask(&history.clone()));
    }
}
