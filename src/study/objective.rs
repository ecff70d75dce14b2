//! The objective: what a study optimises, seen as one trial trained epoch by epoch. The real
//! trainer implements [`Objective`] over burn; [`FakeCurve`] is a cheap, seeded stand-in, a
//! learning curve whose asymptote is a known function of two parameters, so that samplers,
//! pruners and the scheduler can be tested in milliseconds without training a network.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde_json::Value as Json;

use crate::study::history::Point;
use crate::study::pruner::Decision;
use crate::study::space::point_key;
use crate::study::space::{Domain, Parameter};

/// How a trial that did not fail ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Completed,
    Pruned { epoch: usize, reason: String },
}

/// Trains one trial.
pub trait Objective {
    type Error;

    /// Trains trial `number` at `point`, epoch by epoch. After each epoch it calls
    /// `report(epoch, value)` with the objective's value (epochs count from 1), and stops at
    /// once, with [`Finish::Pruned`], when the answer is [`Decision::Prune`].
    fn train(&mut self, number: usize, point: &Point, report: &mut dyn FnMut(usize, f64) -> Decision) -> Result<Finish, Self::Error>;
}

/// A fake objective to maximise (like `val_iou`): at epoch `e` a point scores
/// `asymptote(x, y) * (1 - exp(-e / 2))` plus Gaussian noise, where the asymptote is the Branin
/// function (a standard optimisation benchmark with three global optima, value 0.3979) mapped to
/// (0, 0.95]: `0.95 * exp(-(branin - 0.3979) / 20)`. The noise is seeded by the seed, the point
/// and the epoch, so the same trial always gives the same curve.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCurve {
    /// The keys read as Branin's `x` (in [-5, 10]) and `y` (in [0, 15]).
    pub x: String,
    pub y: String,
    pub epochs: usize,
    /// The noise's standard deviation.
    pub noise: f64,
    pub seed: u64,
}

/// Branin's minimum.
const BRANIN_MIN: f64 = 0.397_887_357_729_738_1;

impl FakeCurve {
    pub fn new(x: &str, y: &str, epochs: usize, seed: u64) -> FakeCurve {
        FakeCurve { x: x.into(), y: y.into(), epochs, noise: 0.01, seed }
    }

    /// Uniform parameters over Branin's domain, for the keys `x` and `y`.
    pub fn parameters(&self) -> Vec<Parameter> {
        vec![
            Parameter { key: self.x.clone(), domain: Domain::Uniform { min: -5.0, max: 10.0 } },
            Parameter { key: self.y.clone(), domain: Domain::Uniform { min: 0.0, max: 15.0 } },
        ]
    }

    /// The value the curve rises towards at (x, y): 0.95 at Branin's optima.
    pub fn asymptote(x: f64, y: f64) -> f64 {
        use std::f64::consts::PI;
        let b = 5.1 / (4.0 * PI * PI);
        let c = 5.0 / PI;
        let t = 1.0 / (8.0 * PI);
        let branin = (y - b * x * x + c * x - 6.0).powi(2) + 10.0 * (1.0 - t) * x.cos() + 10.0;
        0.95 * (-(branin - BRANIN_MIN) / 20.0).exp()
    }

    /// The value at `epoch` without noise.
    pub fn expected(&self, point: &Point, epoch: usize) -> f64 {
        let coordinate = |key: &str| point.get(key).and_then(Json::as_f64).unwrap_or(0.0);
        Self::asymptote(coordinate(&self.x), coordinate(&self.y)) * (1.0 - (-(epoch as f64) / 2.0).exp())
    }

    fn noisy(&self, point: &Point, epoch: usize) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(fnv1a(self.seed, &format!("{}@{epoch}", point_key(point))));
        // Box-Muller: one standard normal from two uniforms in (0, 1].
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        self.expected(point, epoch) + self.noise * normal
    }
}

impl Objective for FakeCurve {
    type Error = std::convert::Infallible;

    fn train(&mut self, _number: usize, point: &Point, report: &mut dyn FnMut(usize, f64) -> Decision) -> Result<Finish, Self::Error> {
        for epoch in 1..=self.epochs {
            if let Decision::Prune { reason } = report(epoch, self.noisy(point, epoch)) {
                return Ok(Finish::Pruned { epoch, reason });
            }
        }
        Ok(Finish::Completed)
    }
}

/// A stable 64-bit hash (FNV-1a) of a seed and a text: the std hasher may change between Rust
/// releases, and a fake curve must not.
fn fnv1a(seed: u64, text: &str) -> u64 {
    seed.to_le_bytes().iter().chain(text.as_bytes()).fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A sequential study in memory for tests: ask, train with the pruner's decisions, record.
#[cfg(test)]
pub(crate) fn run_study(
    sampler: &dyn crate::study::sampler::Sampler,
    pruner: Option<&dyn crate::study::pruner::Pruner>,
    objective: &mut FakeCurve,
    trials: usize,
) -> crate::study::history::History {
    use crate::study::history::{History, SearchState, TrialRecord};
    let mut history = History::new("val_iou", crate::config::Goal::Maximize, Vec::new());
    for number in 0..trials {
        let Some(point) = sampler.ask(&history) else { break };
        history.trials.push(TrialRecord {
            number,
            point: point.clone().into(),
            state: SearchState::Running,
            values: Default::default(),
            scores: Vec::new(),
            violation: 0.0,
        });
        let finish = objective
            .train(number, &point, &mut |epoch, value| {
                history.trials[number].values.insert(epoch, value);
                pruner.map_or(Decision::Continue, |p| p.decide(&history, number, epoch))
            })
            .unwrap_or_else(|e| match e {});
        history.trials[number].state = match finish {
            Finish::Completed => SearchState::Completed,
            Finish::Pruned { .. } => SearchState::Pruned,
        };
    }
    history
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::study::history::SearchState;
    use crate::study::pruner::Percentile;
    use crate::study::sampler::Random;
    use crate::study::space::Space;

    fn at(x: f64, y: f64) -> Point {
        Point::from([("x".to_string(), json!(x)), ("y".to_string(), json!(y))])
    }

    #[test]
    fn the_fake_curve_rises_towards_its_asymptote_which_peaks_at_branins_optima() {
        let f = FakeCurve::new("x", "y", 12, 1);
        for (x, y) in [(-std::f64::consts::PI, 12.275), (std::f64::consts::PI, 2.275), (9.42478, 2.475)] {
            assert!((FakeCurve::asymptote(x, y) - 0.95).abs() < 1e-4, "({x}, {y})");
        }
        assert!(FakeCurve::asymptote(-5.0, 0.0) < 0.01, "a corner is poor");
        let curve: Vec<f64> = (1..=12).map(|e| f.expected(&at(3.0, 3.0), e)).collect();
        assert!(curve.windows(2).all(|w| w[0] < w[1]) && curve[11] > 0.99 * FakeCurve::asymptote(3.0, 3.0));
    }

    #[test]
    fn the_fake_curve_is_seeded_by_seed_point_and_epoch() {
        let record = |seed: u64| {
            let mut values = Vec::new();
            FakeCurve::new("x", "y", 4, seed)
                .train(0, &at(1.0, 2.0), &mut |_, v| {
                    values.push(v);
                    Decision::Continue
                })
                .unwrap();
            values
        };
        assert_eq!(record(7), record(7));
        assert_ne!(record(7), record(8));
        let noise: Vec<f64> = record(7).iter().zip(1..).map(|(v, e)| v - FakeCurve::new("x", "y", 4, 7).expected(&at(1.0, 2.0), e)).collect();
        assert!(noise.iter().all(|n| n.abs() < 0.05) && noise.iter().any(|n| *n != 0.0), "{noise:?}");
    }

    #[test]
    fn training_stops_at_the_epoch_a_pruner_says_so() {
        let mut f = FakeCurve::new("x", "y", 10, 1);
        let mut epochs = Vec::new();
        let finish = f
            .train(0, &at(0.0, 0.0), &mut |e, _| {
                epochs.push(e);
                if e == 3 { Decision::Prune { reason: "enough".into() } } else { Decision::Continue }
            })
            .unwrap();
        assert_eq!(finish, Finish::Pruned { epoch: 3, reason: "enough".into() });
        assert_eq!(epochs, [1, 2, 3]);
    }

    #[test]
    fn a_study_with_the_median_rule_prunes_poor_trials_and_saves_epochs() {
        let mut f = FakeCurve::new("x", "y", 10, 3);
        let sampler = Random::new(Space::unconditional(&f.parameters()), 3);
        let median = Percentile::median(2, 5);
        let h = run_study(&sampler, Some(&median), &mut f, 40);
        let pruned: Vec<_> = h.trials.iter().filter(|t| t.state == SearchState::Pruned).collect();
        assert!(pruned.len() >= 10, "{} pruned", pruned.len());
        assert!(pruned.iter().all(|t| t.last().unwrap().0 >= 3), "never in the warm-up");
        assert!(h.trials[..5].iter().all(|t| t.state == SearchState::Completed), "the first five are the startup trials");
        let epochs: usize = h.trials.iter().map(|t| t.values.len()).sum();
        assert!(epochs < 40 * 10 * 3 / 4, "{epochs} epochs trained of 400");
    }
}
