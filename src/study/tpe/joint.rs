//! The multivariate Parzen estimator: one density over a group of parameters together, so that
//! TPE learns which values go well *with each other* (a large learning rate with a small
//! momentum), not only which values are good on their own.
//!
//! Each observation is one component of the mixture, a product of one kernel per parameter (a
//! Gaussian truncated to the domain for a number, a smoothed choice for a categorical), plus one
//! prior component that covers the whole space. Drawing picks a component and then each
//! parameter from its kernel, so a draw near a good trial stays near it in every parameter at
//! once. Bandwidths follow Scott's rule for `d` dimensions, `0.2 range n^(-1/(d + 4))`, the rule
//! Optuna's multivariate TPE uses.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde_json::Value as Json;

use super::parzen::{Scale, log_sum_exp, truncated_log_pdf, truncated_normal};
use super::{pick, recency_weights};
use crate::study::space::same_value;
use crate::study::spec::Domain;

/// How one parameter of a group is modelled.
#[derive(Debug, Clone)]
pub(super) enum Axis {
    Numeric(Scale),
    /// Listed values with their prior probabilities.
    Choice {
        values: Vec<Json>,
        prior: Vec<f64>,
    },
}

impl Axis {
    /// The axis of a domain; None for a fixed value (nothing to learn).
    pub(super) fn of(domain: &Domain) -> Option<Axis> {
        match domain {
            Domain::Value(_) => None,
            Domain::Values(values) => Some(Axis::Choice { values: values.clone(), prior: vec![1.0 / values.len() as f64; values.len()] }),
            Domain::Categorical { values, probabilities } => Some(Axis::Choice { values: values.clone(), prior: probabilities.clone() }),
            numeric => Scale::of(numeric).map(Axis::Numeric),
        }
    }

    /// A recorded value as a coordinate: model space for a number, the index for a choice.
    /// None when the value cannot be placed (not a number, or not one of the values).
    pub(super) fn coordinate(&self, v: &Json) -> Option<f64> {
        match self {
            Axis::Numeric(scale) => scale.internal(v),
            Axis::Choice { values, .. } => values.iter().position(|x| same_value(x, v)).map(|i| i as f64),
        }
    }

    /// The domain's value at a coordinate (rounded as the domain rounds).
    pub(super) fn value(&self, x: f64) -> Json {
        match self {
            Axis::Numeric(scale) => scale.value(x),
            Axis::Choice { values, .. } => values[x as usize].clone(),
        }
    }
}

/// A density over several axes at once.
#[derive(Debug, Clone)]
pub(super) struct Joint {
    axes: Vec<Axis>,
    /// One per observation, then the prior's; they sum to 1.
    weights: Vec<f64>,
    /// Each observation's coordinates, oldest first.
    centres: Vec<Vec<f64>>,
    /// Each numeric axis's bandwidth (unused for a choice).
    sigmas: Vec<f64>,
}

impl Joint {
    /// The estimator of `observations` (coordinates on `axes`, oldest first, so that the
    /// recency weights fall on the right ones).
    pub(super) fn fit(axes: &[Axis], observations: Vec<Vec<f64>>, prior_weight: f64) -> Joint {
        let n = observations.len();
        let d = axes.len() as f64;
        let sigmas = axes
            .iter()
            .map(|axis| match axis {
                Axis::Numeric(scale) => {
                    let range = scale.range();
                    // Scott's rule, kept between the univariate estimator's bounds.
                    let min_sigma = range / (n as f64 + 1.0).min(100.0);
                    (0.2 * range * (n.max(1) as f64).powf(-1.0 / (d + 4.0))).clamp(min_sigma, range)
                }
                Axis::Choice { .. } => 0.0,
            })
            .collect();
        let mut weights = recency_weights(n);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Joint { axes: axes.to_vec(), weights, centres: observations, sigmas }
    }

    fn is_prior(&self, k: usize) -> bool {
        k == self.centres.len()
    }

    /// The kernel of component `k` on choice axis `a`: the observed value gets half the mass
    /// and the prior's probabilities the other half (the prior component is the prior alone).
    fn choice_probabilities(&self, k: usize, a: usize, prior: &[f64]) -> Vec<f64> {
        if self.is_prior(k) {
            return prior.to_vec();
        }
        let observed = self.centres[k][a] as usize;
        prior.iter().enumerate().map(|(i, p)| (p + f64::from(u8::from(i == observed))) / 2.0).collect()
    }

    /// One draw: a component by weight, then every axis from that component's kernel.
    pub(super) fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let k = pick(&self.weights, rng.random());
        self.axes
            .iter()
            .enumerate()
            .map(|(a, axis)| match axis {
                Axis::Numeric(scale) => {
                    let (mu, sigma) = self.numeric_kernel(k, a, scale);
                    truncated_normal(mu, sigma, scale.low, scale.high, rng)
                }
                Axis::Choice { prior, .. } => pick(&self.choice_probabilities(k, a, prior), rng.random()) as f64,
            })
            .collect()
    }

    /// Component `k`'s centre and bandwidth on numeric axis `a`: the prior sits in the middle
    /// with the whole range as its bandwidth.
    fn numeric_kernel(&self, k: usize, a: usize, scale: &Scale) -> (f64, f64) {
        if self.is_prior(k) { ((scale.low + scale.high) / 2.0, scale.range()) } else { (self.centres[k][a], self.sigmas[a]) }
    }

    /// The log density at coordinates `x`.
    pub(super) fn log_pdf(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                let per_axis: f64 = self
                    .axes
                    .iter()
                    .enumerate()
                    .map(|(a, axis)| match axis {
                        Axis::Numeric(scale) => {
                            let (mu, sigma) = self.numeric_kernel(k, a, scale);
                            truncated_log_pdf(x[a], mu, sigma, scale.low, scale.high)
                        }
                        Axis::Choice { prior, .. } => self.choice_probabilities(k, a, prior)[x[a] as usize].ln(),
                    })
                    .sum();
                self.weights[k].ln() + per_axis
            })
            .collect();
        log_sum_exp(&terms)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;

    fn unit() -> Axis {
        Axis::of(&Domain::Uniform { min: 0.0, max: 1.0 }).unwrap()
    }

    #[test]
    fn the_density_integrates_to_one_over_a_two_dimensional_domain() {
        let joint = Joint::fit(&[unit(), unit()], vec![vec![0.2, 0.8], vec![0.25, 0.7], vec![0.9, 0.1]], 1.0);
        let steps = 200;
        let h = 1.0 / steps as f64;
        let mass: f64 = (0..steps)
            .flat_map(|i| (0..steps).map(move |j| ((i as f64 + 0.5) * h, (j as f64 + 0.5) * h)))
            .map(|(x, y)| joint.log_pdf(&[x, y]).exp() * h * h)
            .sum();
        assert!((mass - 1.0).abs() < 1e-3, "mass {mass}");
    }

    #[test]
    fn a_choice_axis_is_a_distribution_over_the_values() {
        let axis = Axis::of(&Domain::Values(vec![json!("adam"), json!("sgd"), json!("rmsprop")])).unwrap();
        let joint = Joint::fit(&[axis], vec![vec![1.0], vec![1.0]], 1.0);
        let p: Vec<f64> = (0..3).map(|i| joint.log_pdf(&[i as f64]).exp()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{p:?}");
        // Two observations of sgd (weight 1 each, kernel 2/3 on sgd) and the prior (1/3 each).
        assert!((p[1] - (2.0 * 2.0 / 3.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn draws_keep_the_correlation_of_the_observations() {
        // Observations on the diagonal x = y: joint draws stay near it, where two independent
        // densities would fill the square.
        let observations: Vec<Vec<f64>> = (0..20).map(|i| vec![i as f64 / 19.0, i as f64 / 19.0]).collect();
        let joint = Joint::fit(&[unit(), unit()], observations, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<Vec<f64>> = (0..2000).map(|_| joint.sample(&mut rng)).collect();
        let near = draws.iter().filter(|p| (p[0] - p[1]).abs() < 0.3).count();
        // Two independent uniform coordinates are within 0.3 of each other about half the time
        // (1 - 0.7^2 = 0.51); the joint density's kernels keep nine draws in ten there.
        assert!(near > 1700, "{near} of 2000 draws within 0.3 of the diagonal");
        assert!(draws.iter().all(|p| p.iter().all(|x| (0.0..=1.0).contains(x))));
    }
}
