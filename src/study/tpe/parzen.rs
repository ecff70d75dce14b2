//! Densities on a numeric domain: where a parameter is modelled ([`Scale`]), the univariate Parzen
//! estimator ([`Parzen`]) and the truncated-normal arithmetic both estimators share.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde_json::{Value as Json, json};

use super::{pick, recency_weights};
use crate::study::space::{Domain, quantised_range};

/// Where a numeric domain is modelled, [low, high]: a log domain in log space; integer and
/// quantised domains as continuous ones whose draws are rounded, widened by half a step at each
/// end so that their end values get their full share (Optuna's `step` and `int` domains too).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) low: f64,
    pub(crate) high: f64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Linear,
    Log { min: f64, max: f64 },
    Int { min: i64, max: i64 },
    Quantised { min: f64, max: f64, q: f64 },
}

impl Scale {
    /// Where a numeric domain is modelled; None for a domain of listed values.
    pub(crate) fn of(domain: &Domain) -> Option<Scale> {
        let (low, high, kind) = match *domain {
            Domain::Uniform { min, max } => (min, max, Kind::Linear),
            Domain::LogUniformValues { min, max } => (min.ln(), max.ln(), Kind::Log { min, max }),
            Domain::IntUniform { min, max } => (min as f64 - 0.5, max as f64 + 0.5, Kind::Int { min, max }),
            Domain::QUniform { min, max, q } => {
                // Half a step past the first and last multiples of q inside the bounds (which
                // need not be multiples themselves).
                let (first, last) = quantised_range(min, max, q).map_or((min, max), |(first, last)| (first * q, last * q));
                (first - q / 2.0, last + q / 2.0, Kind::Quantised { min, max, q })
            }
            Domain::Value(_) | Domain::Values(_) | Domain::Categorical { .. } => return None,
        };
        Some(Scale { low, high, kind })
    }

    /// The interval's width (never zero, so that bandwidths stay positive).
    pub(super) fn range(&self) -> f64 {
        (self.high - self.low).max(f64::MIN_POSITIVE)
    }

    /// A recorded value in model space, clamped into the domain (a value recorded under other
    /// bounds still says which side is good); None if it is no number or not positive on a log
    /// scale.
    pub(crate) fn internal(&self, v: &Json) -> Option<f64> {
        let x = v.as_f64()?;
        let x = match self.kind {
            Kind::Log { .. } if x <= 0.0 => return None,
            Kind::Log { .. } => x.ln(),
            _ => x,
        };
        Some(x.clamp(self.low, self.high))
    }

    /// The domain's value for a point of model space, rounded as random search rounds.
    pub(crate) fn value(&self, x: f64) -> Json {
        match self.kind {
            Kind::Linear => json!(x.clamp(self.low, self.high)),
            Kind::Log { min, max } => json!(x.exp().clamp(min, max)),
            Kind::Int { min, max } => json!((x.round() as i64).clamp(min, max)),
            Kind::Quantised { min, max, q } => json!(crate::study::space::quantise(x.clamp(min, max), min, max, q)),
        }
    }
}

/// A Parzen estimator on [low, high]: a mixture of Gaussians truncated to the interval, one per
/// observation plus a wide prior in the middle.
#[derive(Debug, Clone)]
pub(super) struct Parzen {
    weights: Vec<f64>,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    low: f64,
    high: f64,
    /// Per component, what its log density adds whatever `x`: `ln(weight)` and
    /// [`truncation`]'s parts (the candidates are scored against every component, so these are
    /// worked out once per fit, not once per candidate).
    ln_weights: Vec<f64>,
    truncations: Vec<(f64, f64)>,
}

impl Parzen {
    /// Each observation's bandwidth is the larger gap to its neighbours among the observations
    /// and the prior's centre (the interval's ends do not count, or the outermost values would
    /// always get wide kernels), clipped between `range / min(100, n + 1)` (so that a cluster of
    /// equal values still spreads) and `range` (so that a lone value still covers the domain).
    pub(super) fn fit(observations: &[f64], low: f64, high: f64, prior_weight: f64) -> Parzen {
        let range = (high - low).max(f64::MIN_POSITIVE);
        let n = observations.len();
        let centre = (low + high) / 2.0;
        let mut sorted: Vec<f64> = observations.iter().copied().chain([centre]).collect();
        sorted.sort_by(f64::total_cmp);
        let min_sigma = range / (n as f64 + 1.0).min(100.0);
        let sigmas: Vec<f64> = observations
            .iter()
            .map(|&x| {
                let at = sorted.partition_point(|&s| s < x);
                let left = at.checked_sub(1).map_or(0.0, |i| x - sorted[i]);
                // The first value at or above x is x itself; its right neighbour is the next one.
                let right = sorted.get(at + 1).map_or(0.0, |&s| s - x);
                left.max(right).clamp(min_sigma, range)
            })
            .collect();
        let mut weights = recency_weights(n);
        let mut mus = observations.to_vec();
        let mut sigmas = sigmas;
        weights.push(prior_weight);
        mus.push(centre);
        sigmas.push(range);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let ln_weights = weights.iter().map(|w| w.ln()).collect();
        let truncations = mus.iter().zip(&sigmas).map(|(&mu, &sigma)| truncation(mu, sigma, low, high)).collect();
        Parzen { weights, mus, sigmas, low, high, ln_weights, truncations }
    }

    /// A draw: a component by weight, then its truncated Gaussian.
    pub(super) fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        let k = pick(&self.weights, rng.random());
        truncated_normal(self.mus[k], self.sigmas[k], self.low, self.high, rng)
    }

    /// The log density at `x` (log-sum-exp over the components).
    pub(super) fn log_pdf(&self, x: f64) -> f64 {
        let terms: Vec<f64> = self
            .ln_weights
            .iter()
            .zip(&self.mus)
            .zip(&self.sigmas)
            .zip(&self.truncations)
            .map(|(((ln_w, mu), sigma), truncation)| ln_w + truncated_log_pdf_with(x, *mu, *sigma, *truncation))
            .collect();
        log_sum_exp(&terms)
    }
}

/// A draw from a Gaussian truncated to [low, high], by rejection. The centre lies in the
/// interval, so at least about a third of the draws are accepted; after many misses the draw is
/// clamped, which keeps this finite whatever the numbers.
pub(super) fn truncated_normal(mu: f64, sigma: f64, low: f64, high: f64, rng: &mut ChaCha8Rng) -> f64 {
    let mut x = mu;
    for _ in 0..100 {
        x = mu + sigma * standard_normal(rng);
        if (low..=high).contains(&x) {
            return x;
        }
    }
    x.clamp(low, high)
}

/// The parts of the log density of a Gaussian truncated to [low, high] that do not depend on
/// where it is evaluated: `ln(sigma)` and the log of the Gaussian's mass inside [low, high].
pub(super) fn truncation(mu: f64, sigma: f64, low: f64, high: f64) -> (f64, f64) {
    let mass = normal_cdf((high - mu) / sigma) - normal_cdf((low - mu) / sigma);
    (sigma.ln(), mass.max(f64::MIN_POSITIVE).ln())
}

/// The log density at `x` of a Gaussian truncated to [low, high], with its [`truncation`]
/// worked out before (once per kernel, however many points are scored).
pub(super) fn truncated_log_pdf_with(x: f64, mu: f64, sigma: f64, (ln_sigma, ln_mass): (f64, f64)) -> f64 {
    let z = (x - mu) / sigma;
    -0.5 * z * z - ln_sigma - 0.5 * (2.0 * std::f64::consts::PI).ln() - ln_mass
}

/// `ln(sum(exp(t)))` without overflow; minus infinity for no terms.
pub(super) fn log_sum_exp(terms: &[f64]) -> f64 {
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY {
        return top;
    }
    top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function by a Chebyshev fit (fractional error below 1.2e-7 for every
/// x), as `std` offers none on stable Rust.
pub(super) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
