//! The multivariate Parzen estimator: one density over a group of parameters together, so that
//! TPE learns which values go well *with each other* (a large learning rate with a small
//! momentum), not only which values are good on their own.
//!
//! Each observation is one component of the mixture, a product of one kernel per parameter (a
//! Gaussian truncated to the domain for a number, a smoothed choice for a categorical), plus one
//! prior component that covers the whole space. Drawing picks a component and then each
//! parameter from its kernel, so a draw near a good trial stays near it in every parameter at
//! once. On each numeric axis an observation's bandwidth is the larger gap to its neighbours
//! along that axis (the domain's ends count, except for the outermost observations, whose inner
//! gap is used), clipped between `range / min(100, n + 2)` and `range`, as Optuna 5 does: where
//! good trials crowd, the search looks closer. A categorical kernel puts weight 1 on the observed
//! value and `prior_weight / (n + 1)` spread by the prior over all values.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde_json::Value as Json;

use super::parzen::{Scale, log_sum_exp, truncated_log_pdf_with, truncated_normal, truncation};
use super::{pick, recency_weights};
use crate::study::space::Domain;
use crate::study::space::same_value;

/// How one parameter of a group is modelled.
#[derive(Debug, Clone)]
pub(crate) enum Axis {
    Numeric(Scale),
    /// Listed values with their prior probabilities.
    Choice {
        values: Vec<Json>,
        prior: Vec<f64>,
    },
}

impl Axis {
    /// The axis of a domain; None for a fixed value (nothing to learn).
    pub(crate) fn of(domain: &Domain) -> Option<Axis> {
        match domain {
            Domain::Value(_) => None,
            Domain::Values(values) => Some(Axis::Choice { values: values.clone(), prior: vec![1.0 / values.len() as f64; values.len()] }),
            Domain::Categorical { values, probabilities } => Some(Axis::Choice { values: values.clone(), prior: probabilities.clone() }),
            numeric => Scale::of(numeric).map(Axis::Numeric),
        }
    }

    /// A recorded value as a coordinate: model space for a number, the index for a choice.
    /// None when the value cannot be placed (not a number, or not one of the values).
    pub(crate) fn coordinate(&self, v: &Json) -> Option<f64> {
        match self {
            Axis::Numeric(scale) => scale.internal(v),
            Axis::Choice { values, .. } => values.iter().position(|x| same_value(x, v)).map(|i| i as f64),
        }
    }

    /// The domain's value at a coordinate (rounded as the domain rounds).
    pub(crate) fn value(&self, x: f64) -> Json {
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
    /// Each observation's bandwidth on each axis (unused for a choice).
    sigmas: Vec<Vec<f64>>,
    /// The mass every value of a choice gets from the prior in an observation's kernel, per
    /// unit of prior probability times the number of values.
    smoothing: f64,
    /// Per component, `ln(weight)`; and per axis every component's kernel on it
    /// ([`Column`]): what [`Joint::log_pdf`] reads that does not depend on where it is evaluated,
    /// worked out once per fit (every candidate is scored against every component), axis by
    /// axis so that scoring is a loop over plain numbers.
    ln_weights: Vec<f64>,
    columns: Vec<Column>,
}

/// Every component's kernel on one axis, component `k` at index `k`.
#[derive(Debug, Clone)]
enum Column {
    /// Centres, bandwidths and [`super::parzen::truncation`]'s parts.
    Numeric { mu: Vec<f64>, sigma: Vec<f64>, truncation: Vec<(f64, f64)> },
    /// Each component's row of `ln`: the log probability of each value under a kernel centred
    /// on value `i` (row `i`), then under the prior (the last row). Components that observed the
    /// same value share a row.
    Choice { row: Vec<usize>, ln: Vec<Vec<f64>> },
}

impl Joint {
    /// The estimator of `observations` (coordinates on `axes`, oldest first, so that the
    /// recency weights fall on the right ones).
    pub(super) fn fit(axes: &[Axis], observations: Vec<Vec<f64>>, prior_weight: f64) -> Joint {
        let n = observations.len();
        let mut sigmas = vec![vec![0.0; axes.len()]; n];
        for (a, axis) in axes.iter().enumerate() {
            if let Axis::Numeric(scale) = axis {
                let xs: Vec<f64> = observations.iter().map(|o| o[a]).collect();
                for (i, sigma) in neighbour_gaps(&xs, scale).into_iter().enumerate() {
                    sigmas[i][a] = sigma;
                }
            }
        }
        let mut weights = recency_weights(n);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let ln_weights = weights.iter().map(|w| w.ln()).collect();
        let mut joint = Joint {
            axes: axes.to_vec(),
            weights,
            centres: observations,
            sigmas,
            smoothing: prior_weight / (n as f64 + 1.0),
            ln_weights,
            columns: Vec::new(),
        };
        let components = joint.weights.len();
        joint.columns = (0..joint.axes.len())
            .map(|a| match &joint.axes[a] {
                Axis::Numeric(scale) => {
                    let (mu, sigma): (Vec<f64>, Vec<f64>) = (0..components).map(|k| joint.numeric_kernel(k, a, scale)).unzip();
                    let truncation = mu.iter().zip(&sigma).map(|(&m, &s)| truncation(m, s, scale.low, scale.high)).collect();
                    Column::Numeric { mu, sigma, truncation }
                }
                Axis::Choice { prior, .. } => {
                    let mut ln: Vec<Vec<f64>> = (0..prior.len()).map(|i| joint.choice_kernel(Some(i), prior)).collect();
                    ln.push(joint.choice_kernel(None, prior));
                    let ln = ln.into_iter().map(|row| row.iter().map(|p| p.ln()).collect()).collect();
                    let row = (0..components).map(|k| if joint.is_prior(k) { prior.len() } else { joint.centres[k][a] as usize }).collect();
                    Column::Choice { row, ln }
                }
            })
            .collect();
        joint
    }

    fn is_prior(&self, k: usize) -> bool {
        k == self.centres.len()
    }

    /// The kernel of component `k` on choice axis `a`: weight 1 on the observed value plus the
    /// prior's smoothing (the prior component is the prior alone).
    fn choice_probabilities(&self, k: usize, a: usize, prior: &[f64]) -> Vec<f64> {
        self.choice_kernel((!self.is_prior(k)).then(|| self.centres[k][a] as usize), prior)
    }

    /// A choice kernel: centred on value `observed`, or the prior's (None).
    fn choice_kernel(&self, observed: Option<usize>, prior: &[f64]) -> Vec<f64> {
        let Some(observed) = observed else { return prior.to_vec() };
        let spread = self.smoothing * prior.len() as f64;
        let mass: Vec<f64> = prior.iter().enumerate().map(|(i, p)| p * spread + f64::from(u8::from(i == observed))).collect();
        let total: f64 = mass.iter().sum();
        mass.iter().map(|m| m / total).collect()
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
        if self.is_prior(k) { ((scale.low + scale.high) / 2.0, scale.range()) } else { (self.centres[k][a], self.sigmas[k][a]) }
    }

    /// The log density at coordinates `x`.
    pub(super) fn log_pdf(&self, x: &[f64]) -> f64 {
        // Each component's sum over the axes, in axis order (as a sum of its per-axis terms).
        let mut terms = vec![-0.0; self.ln_weights.len()];
        for (column, &at) in self.columns.iter().zip(x) {
            match column {
                Column::Numeric { mu, sigma, truncation } => {
                    for (((term, &m), &s), &t) in terms.iter_mut().zip(mu).zip(sigma).zip(truncation) {
                        *term += truncated_log_pdf_with(at, m, s, t);
                    }
                }
                Column::Choice { row, ln } => {
                    let at_value: Vec<f64> = ln.iter().map(|probabilities| probabilities[at as usize]).collect();
                    for (term, &r) in terms.iter_mut().zip(row) {
                        *term += at_value[r];
                    }
                }
            }
        }
        for (term, ln_weight) in terms.iter_mut().zip(&self.ln_weights) {
            *term += ln_weight;
        }
        log_sum_exp(&terms)
    }
}

/// Each value's bandwidth on one axis: the larger gap to its neighbours, the domain's ends
/// counting as neighbours except for the outermost values (their inner gap), clipped between
/// `range / min(100, n + 2)` and `range`.
fn neighbour_gaps(xs: &[f64], scale: &Scale) -> Vec<f64> {
    let n = xs.len();
    let range = scale.range();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let sorted: Vec<f64> = std::iter::once(scale.low).chain(order.iter().map(|&i| xs[i])).chain([scale.high]).collect();
    let min_sigma = range / (n as f64 + 2.0).min(100.0);
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        let at = rank + 1;
        let (left, right) = (sorted[at] - sorted[at - 1], sorted[at + 1] - sorted[at]);
        let gap = match (n >= 2, rank) {
            (true, 0) => right,
            (true, r) if r == n - 1 => left,
            _ => left.max(right),
        };
        sigmas[i] = gap.clamp(min_sigma, range);
    }
    sigmas
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        // Two observations of sgd, each a kernel of 1 + 1/3 on sgd and 1/3 elsewhere (smoothing
        // 1 / (n + 1) = 1/3 for each value), normalised to 2/3 on sgd; and the prior, 1/3 each.
        assert!((p[1] - (2.0 * 2.0 / 3.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12, "{p:?}");
    }

    /// A draw in model space is rounded to the domain's value: each value of an integer or
    /// quantised domain owns the same width of the model interval, the end values included
    /// (modelled on `[min, max]`, a quantised domain's two ends would own half a step each).
    #[test]
    fn every_value_of_a_stepped_domain_owns_an_equal_share() {
        for (domain, values) in [
            (Domain::IntUniform { min: 2, max: 5 }, 4.0),
            (Domain::QUniform { min: 0.0, max: 0.5, q: 0.1 }, 6.0),
            (Domain::QUniform { min: 16.0, max: 64.0, q: 16.0 }, 4.0),
            (Domain::QUniform { min: 0.05, max: 0.47, q: 0.1 }, 4.0), // bounds off the grid: 0.1 to 0.4
        ] {
            let scale = Scale::of(&domain).unwrap();
            let steps = 60_000;
            let mut shares: BTreeMap<String, f64> = BTreeMap::new();
            for i in 0..steps {
                let x = scale.low + scale.range() * (i as f64 + 0.5) / steps as f64;
                *shares.entry(scale.value(x).to_string()).or_default() += 1.0 / steps as f64;
            }
            assert_eq!(shares.len() as f64, values, "{domain:?}: {shares:?}");
            assert!(shares.values().all(|s| (s - 1.0 / values).abs() < 1e-3), "{domain:?}: {shares:?}");
        }
    }

    #[test]
    fn bandwidths_are_the_gaps_to_the_neighbours() {
        let scale = Scale::of(&Domain::Uniform { min: 0.0, max: 1.0 }).unwrap();
        // Sorted 0.1, 0.2, 0.6, 0.65: inner gap for the outermost, the larger gap otherwise;
        // the least bandwidth is 1 / (4 + 2).
        let sigmas = neighbour_gaps(&[0.6, 0.1, 0.65, 0.2], &scale);
        let want = [0.4, 1.0 / 6.0, 1.0 / 6.0, 0.4];
        assert!(sigmas.iter().zip(want).all(|(s, w)| (s - w).abs() < 1e-12), "{sigmas:?}");
        assert_eq!(neighbour_gaps(&[0.3], &scale), [0.7], "a lone value: the larger gap to the ends");
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
