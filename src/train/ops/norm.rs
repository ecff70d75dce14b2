//! Batch normalisation followed by ReLU, fused, on plain `f32` slices.
//!
//! burn's training op computes the statistics and the normalisation out of generic tensor ops
//! (channel-axis swaps, reshapes, means, broadcasts), and its backward the same way, then the ReLU
//! and its backward run as separate ops: about a dozen passes over the activations, several of
//! them copies. Here the forward reads the input twice (the statistics, then the normalisation)
//! and writes the output once; the backward reads twice and writes once. Every channel's sums
//! run over its samples and pixels in one fixed order whatever the thread count, so runs stay
//! reproducible.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements per unit of parallel work when writing, so that tiny planes are not one task each.
const MIN_ELEMENTS_PER_TASK: usize = 4096;

/// The layout of a `[batch, channels, ...]` activation: `pixels` elements per plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormGeometry {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl NormGeometry {
    fn len(&self) -> usize {
        self.batch * self.channels * self.pixels
    }

    /// Elements per channel: what the statistics average over.
    fn count(&self) -> f64 {
        (self.batch * self.pixels) as f64
    }

    /// The planes of channel `c`, one per sample.
    fn planes<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        data.chunks_exact(self.pixels).skip(c).step_by(self.channels)
    }
}

/// Lanes of the f64 sums here: independent accumulators that the compiler keeps in vector
/// registers (one running sum would wait on each addition in turn).
const LANES: usize = 8;

/// The batch statistics per channel: the mean and the biased variance (divided by the count, as
/// burn's `batch_norm_train` and PyTorch's normalisation use), in one pass: the sum and the sum
/// of squares in `f64`, whose 53 bits leave `E[x^2] - mean^2` exact to well below f32's
/// precision unless the mean exceeds the spread by a factor of about 10^6 (activations do not).
pub fn statistics(x: &[f32], g: &NormGeometry) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), g.len(), "batch norm: input size");
    (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let (sum, squares) = lane_sums(g.planes(x, c));
            let mean = sum / g.count();
            let var = (squares / g.count() - mean * mean).max(0.0);
            (mean as f32, var as f32)
        })
        .unzip()
}

/// The sum and the sum of squares of every value of `planes`, in [`LANES`] interleaved f64 lanes
/// each, added in a fixed order: the result depends on the data alone.
#[inline(always)]
fn lane_sums<'a>(planes: impl Iterator<Item = &'a [f32]>) -> (f64, f64) {
    let (mut sums, mut squares) = ([0.0f64; LANES], [0.0f64; LANES]);
    for plane in planes {
        let (chunks, tail) = plane.as_chunks::<LANES>();
        for chunk in chunks {
            for l in 0..LANES {
                let v = chunk[l] as f64;
                sums[l] += v;
                squares[l] += v * v;
            }
        }
        for (l, &v) in tail.iter().enumerate() {
            sums[l] += v as f64;
            squares[l] += v as f64 * v as f64;
        }
    }
    (sums.iter().sum(), squares.iter().sum())
}

/// `1 / sqrt(variance + epsilon)` per channel.
pub fn inverse_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance.iter().map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32).collect()
}

/// `max(0, (x - mean) * inv_std * gamma + beta)`, with per-channel `mean`, `inv_std`, `gamma`
/// and `beta`: the forward in training (batch statistics) and in inference (running ones).
pub fn normalize_relu(x: &[f32], mean: &[f32], inv_std: &[f32], gamma: &[f32], beta: &[f32], g: &NormGeometry) -> Vec<f32> {
    assert_eq!(x.len(), g.len(), "batch norm: input size");
    for per_channel in [mean, inv_std, gamma, beta] {
        assert_eq!(per_channel.len(), g.channels, "batch norm: one value per channel");
    }
    // SAFETY: the planes of `pixels` elements tile all `g.len()` values, and each plane is
    // written whole (zipped with the input's plane of the same length, asserted above).
    unsafe {
        written(g.len(), |out| {
            out.par_chunks_mut(g.pixels.max(1))
                .zip(x.par_chunks(g.pixels.max(1)))
                .with_min_len(MIN_ELEMENTS_PER_TASK.div_ceil(g.pixels.max(1)))
                .enumerate()
                .for_each(|(plane, (out, x))| {
                    let c = plane % g.channels;
                    let (center, scale, shift) = (mean[c], inv_std[c] * gamma[c], beta[c]);
                    out.iter_mut().zip(x).for_each(|(y, &v)| *y = MaybeUninit::new(((v - center) * scale + shift).max(0.0)));
                });
        })
    }
}

/// The gradients of batch norm + ReLU with respect to its input and parameters.
pub struct NormGradients {
    pub x: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// The gradients of [`normalize_relu`] with batch statistics, from the input `x`, the forward's
/// output `y` (its zeros are where the ReLU cut) and the output gradient `dy`. With
/// `d = dy * (y > 0)` and `x_hat = (x - mean) * inv_std`: `dbeta = sum d`,
/// `dgamma = sum d * x_hat`, and `dx = gamma * inv_std * (d - dbeta / n - x_hat * dgamma / n)`
/// (n: elements per channel; the last two terms are the statistics' own gradients).
pub fn backward(x: &[f32], y: &[f32], dy: &[f32], gamma: &[f32], mean: &[f32], inv_std: &[f32], g: &NormGeometry) -> NormGradients {
    for full in [x, y, dy] {
        assert_eq!(full.len(), g.len(), "batch norm backward: activation size");
    }
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            // Over the channel's values where the ReLU passed: sum dy and sum dy * (x - mean),
            // in lanes as `lane_sums` does (the scale by inv_std is applied to the total).
            let (mut sum, mut sum_centered) = ([0.0f64; LANES], [0.0f64; LANES]);
            let center = mean[c] as f64;
            let mut add = |x: &[f32; LANES], y: &[f32; LANES], dy: &[f32; LANES]| {
                for l in 0..LANES {
                    let d = if y[l] > 0.0 { dy[l] as f64 } else { 0.0 };
                    sum[l] += d;
                    sum_centered[l] += d * (x[l] as f64 - center);
                }
            };
            for ((x, y), dy) in g.planes(x, c).zip(g.planes(y, c)).zip(g.planes(dy, c)) {
                let ((xs, x_tail), (ys, y_tail), (dys, dy_tail)) = (x.as_chunks::<LANES>(), y.as_chunks::<LANES>(), dy.as_chunks::<LANES>());
                xs.iter().zip(ys).zip(dys).for_each(|((x, y), dy)| add(x, y, dy));
                // The last values padded with zeros: y = 0 where the ReLU cut, so they add nothing.
                let pad = |tail: &[f32]| std::array::from_fn(|l| tail.get(l).copied().unwrap_or(0.0));
                add(&pad(x_tail), &pad(y_tail), &pad(dy_tail));
            }
            let total = |lanes: [f64; LANES]| lanes.iter().sum::<f64>();
            (total(sum) as f32, (total(sum_centered) * inv_std[c] as f64) as f32)
        })
        .unzip();
    let n = g.count() as f32;
    // SAFETY: the planes of `pixels` elements tile all `g.len()` values; each is written whole.
    let dx = unsafe {
        written(g.len(), |dx| {
            dx.par_chunks_mut(g.pixels.max(1)).with_min_len(MIN_ELEMENTS_PER_TASK.div_ceil(g.pixels.max(1))).enumerate().for_each(|(plane, dx)| {
                let c = plane % g.channels;
                let at = plane * g.pixels;
                let (x, y, dy) = (&x[at..at + g.pixels], &y[at..at + g.pixels], &dy[at..at + g.pixels]);
                // dx = scale * (d - mean_d - (x - mean) * inv_std * mean_d_hat)
                let (scale, mean_d, slope, center) = (gamma[c] * inv_std[c], dbeta[c] / n, inv_std[c] * dgamma[c] / n, mean[c]);
                for (((out, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                    let d = if y > 0.0 { dy } else { 0.0 };
                    *out = MaybeUninit::new(scale * (d - mean_d - (x - center) * slope));
                }
            });
        })
    };
    NormGradients { x: dx, gamma: dgamma, beta: dbeta }
}

/// A vector of `len` values that `fill` writes into its spare capacity (as `MaybeUninit`),
/// without zeroing it first.
///
/// # Safety
/// `fill` must write every one of the `len` elements.
unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: the caller's promise: all `len` elements are written.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 1.5).collect()
    }

    /// The loss `sum(relu(bn(x)) * probe)` in f64, for finite differences.
    fn loss(x: &[f32], gamma: &[f32], beta: &[f32], probe: &[f32], g: &NormGeometry, epsilon: f64) -> f64 {
        let mut total = 0.0;
        for c in 0..g.channels {
            let all: Vec<f64> = g.planes(x, c).flatten().map(|&v| v as f64).collect();
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64;
            for (plane, probe) in g.planes(x, c).zip(g.planes(probe, c)) {
                for (&v, &p) in plane.iter().zip(probe) {
                    let z = (v as f64 - mean) / (var + epsilon).sqrt() * gamma[c] as f64 + beta[c] as f64;
                    total += z.max(0.0) * p as f64;
                }
            }
        }
        total
    }

    #[test]
    fn statistics_and_forward_match_the_definition() {
        let g = NormGeometry { batch: 3, channels: 2, pixels: 5 };
        let x = values(g.len(), 1);
        let (mean, var) = statistics(&x, &g);
        for c in 0..2 {
            let all: Vec<f32> = g.planes(&x, c).flatten().copied().collect();
            assert_eq!(all.len(), 15);
            let m = all.iter().sum::<f32>() / 15.0;
            assert!((mean[c] - m).abs() < 1e-6);
            assert!((var[c] - all.iter().map(|v| (v - m).powi(2)).sum::<f32>() / 15.0).abs() < 1e-5);
        }
        let (gamma, beta) = ([1.5, -0.5], [0.1, 0.2]);
        let inv = inverse_std(&var, 1e-5);
        let y = normalize_relu(&x, &mean, &inv, &gamma, &beta, &g);
        for (i, (&y, &x)) in y.iter().zip(&x).enumerate() {
            let c = (i / 5) % 2;
            let expected = (((x - mean[c]) / (var[c] + 1e-5).sqrt()) * gamma[c] + beta[c]).max(0.0);
            assert!((y - expected).abs() < 1e-5, "element {i}: {y} against {expected}");
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let g = NormGeometry { batch: 2, channels: 3, pixels: 7 };
        let epsilon = 1e-5;
        let x = values(g.len(), 3);
        let probe = values(g.len(), 11);
        let (gamma, beta) = (vec![1.2f32, -0.7, 0.4], vec![0.3f32, 0.1, -0.2]);
        let (mean, var) = statistics(&x, &g);
        let inv = inverse_std(&var, epsilon);
        let y = normalize_relu(&x, &mean, &inv, &gamma, &beta, &g);
        let grads = backward(&x, &y, &probe, &gamma, &mean, &inv, &g);
        let h = 1e-3f32;
        let numeric = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
        for i in 0..g.len() {
            let d = numeric(&|e| {
                let mut x = x.clone();
                x[i] += e;
                loss(&x, &gamma, &beta, &probe, &g, epsilon)
            });
            assert!((grads.x[i] as f64 - d).abs() < 2e-3 * d.abs().max(1.0), "dx[{i}]: {} against {d}", grads.x[i]);
        }
        for c in 0..g.channels {
            let dg = numeric(&|e| {
                let mut gamma = gamma.clone();
                gamma[c] += e;
                loss(&x, &gamma, &beta, &probe, &g, epsilon)
            });
            let db = numeric(&|e| {
                let mut beta = beta.clone();
                beta[c] += e;
                loss(&x, &gamma, &beta, &probe, &g, epsilon)
            });
            assert!((grads.gamma[c] as f64 - dg).abs() < 2e-3 * dg.abs().max(1.0), "dgamma[{c}]: {} against {dg}", grads.gamma[c]);
            assert!((grads.beta[c] as f64 - db).abs() < 2e-3 * db.abs().max(1.0), "dbeta[{c}]: {} against {db}", grads.beta[c]);
        }
    }
}
