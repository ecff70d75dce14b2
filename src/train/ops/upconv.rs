//! The decoder's transposed convolution, 2x2 kernel with stride 2, on plain `f32` slices.
//!
//! With a 2x2 kernel and stride 2 every output pixel `(2i + a, 2j + c)` is reached by exactly one
//! input pixel `(i, j)` through exactly one tap `(a, c)`, so the op is one matrix product per
//! sample, `Z[(co, a, c), p] = sum_ci W[ci, (co, a, c)] x[ci, p]` over the input pixels `p`,
//! whose rows are then interleaved into the output (and the bias added). Its gradients are
//! products too: `dx = W * dZ` and `dW = sum over samples of x * dZ^T`, where `dZ` is the output
//! gradient gathered back into that row layout. burn's generic transposed convolution (and its
//! gradients, which it computes as convolutions) loop tap by tap instead.
//!
//! Units of work are samples; the weight gradient sums the samples' products in order, so every
//! result is independent of the thread count.

use super::matmul::product;
use rayon::prelude::*;

/// The shape of one transposed convolution (kernel 2x2, stride 2, no padding, groups 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpGeometry {
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    /// `[height, width]` of the input; the output is twice each.
    pub input: [usize; 2],
}

impl UpGeometry {
    fn pixels(&self) -> usize {
        self.input[0] * self.input[1]
    }

    /// Rows of the per-sample product: `(co, a, c)`.
    fn rows(&self) -> usize {
        self.channels_out * 4
    }
}

/// The output `[batch, channels_out, 2h, 2w]` of `x` (`[batch, channels_in, h, w]`) with `weight`
/// (`[channels_in, channels_out, 2, 2]`) and `bias` (`[channels_out]`).
pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], g: &UpGeometry) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels_in * g.pixels(), "transposed conv: input size");
    assert_eq!(weight.len(), g.channels_in * g.rows(), "transposed conv: weight size");
    assert_eq!(bias.len(), g.channels_out, "transposed conv: bias size");
    let (p, [h, w]) = (g.pixels(), g.input);
    let mut out = vec![0.0f32; g.batch * g.rows() * p];
    out.par_chunks_mut(g.rows() * p.max(1)).zip(x.par_chunks(g.channels_in * p.max(1))).for_each(|(out, x)| {
        let mut z = vec![0.0f32; g.rows() * p];
        // z [rows, p] = W^T [rows, ci] * x [ci, p]: W is [ci, rows] row-major, read transposed.
        product(g.rows(), p, g.channels_in, &mut z, p, (weight, 1, g.rows()), (x, p, 1));
        // Output row 2i + a interleaves row i of taps (a, 0) and (a, 1): both written in one
        // pass, which the compiler vectorises (a tap at a time, every other value, it did not).
        for (co, plane) in out.chunks_exact_mut(4 * p).enumerate() {
            let b = bias[co];
            for a in 0..2 {
                let (left, right) = (&z[(4 * co + 2 * a) * p..][..p], &z[(4 * co + 2 * a + 1) * p..][..p]);
                for i in 0..h {
                    let row = &mut plane[(2 * i + a) * 2 * w..][..2 * w];
                    for ((pair, &l), &r) in row.chunks_exact_mut(2).zip(&left[i * w..][..w]).zip(&right[i * w..][..w]) {
                        (pair[0], pair[1]) = (l + b, r + b);
                    }
                }
            }
        }
    });
    out
}

/// The output gradient `dy` (`[channels_out, 2h, 2w]` of one sample) gathered into the product's
/// layout `[(co, a, c), p]`.
fn gather(dz: &mut [f32], dy: &[f32], g: &UpGeometry) {
    let (p, [h, w]) = (g.pixels(), g.input);
    for (co, plane) in dy.chunks_exact(4 * p).enumerate() {
        for a in 0..2 {
            // Row 2i + a of the plane holds row i of taps (a, 0) and (a, 1), interleaved: taken
            // apart in one pass, as the forward puts them together.
            let (left, right) = dz[(4 * co + 2 * a) * p..][..2 * p].split_at_mut(p);
            for i in 0..h {
                let row = &plane[(2 * i + a) * 2 * w..][..2 * w];
                for ((pair, l), r) in row.chunks_exact(2).zip(&mut left[i * w..][..w]).zip(&mut right[i * w..][..w]) {
                    (*l, *r) = (pair[0], pair[1]);
                }
            }
        }
    }
}

/// The input gradient `[batch, channels_in, h, w]` from the output gradient `dy`.
pub fn input_grad(dy: &[f32], weight: &[f32], g: &UpGeometry) -> Vec<f32> {
    assert_eq!(dy.len(), g.batch * g.rows() * g.pixels(), "transposed conv: output gradient size");
    assert_eq!(weight.len(), g.channels_in * g.rows(), "transposed conv: weight size");
    let p = g.pixels();
    let mut dx = vec![0.0f32; g.batch * g.channels_in * p];
    dx.par_chunks_mut(g.channels_in * p.max(1)).zip(dy.par_chunks(g.rows() * p.max(1))).for_each(|(dx, dy)| {
        let mut dz = vec![0.0f32; g.rows() * p];
        gather(&mut dz, dy, g);
        // dx [ci, p] = W [ci, rows] * dz [rows, p]
        product(g.channels_in, p, g.rows(), dx, p, (weight, g.rows(), 1), (&dz, p, 1));
    });
    dx
}

/// The weight gradient `[channels_in, channels_out, 2, 2]`: each sample's `x [ci, p] * dz^T [p,
/// rows]`, summed over the samples in order.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &UpGeometry) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels_in * g.pixels(), "transposed conv: input size");
    assert_eq!(dy.len(), g.batch * g.rows() * g.pixels(), "transposed conv: output gradient size");
    let p = g.pixels();
    let partials: Vec<Vec<f32>> = x
        .par_chunks(g.channels_in * p.max(1))
        .zip(dy.par_chunks(g.rows() * p.max(1)))
        .map(|(x, dy)| {
            let mut dz = vec![0.0f32; g.rows() * p];
            gather(&mut dz, dy, g);
            let mut dw = vec![0.0f32; g.channels_in * g.rows()];
            product(g.channels_in, g.rows(), p, &mut dw, g.rows(), (x, p, 1), (&dz, 1, p));
            dw
        })
        .collect();
    // Summed in sample order, in parallel over stretches of the result.
    let mut grad = vec![0.0f32; g.channels_in * g.rows()];
    grad.par_chunks_mut(4096).enumerate().for_each(|(i, stretch)| {
        for partial in &partials {
            stretch.iter_mut().zip(&partial[i * 4096..]).for_each(|(d, s)| *d += s);
        }
    });
    grad
}

/// The bias gradient `[channels_out]`: the output gradient summed per channel, samples in order
/// ([`channel_sums`](super::conv::channel_sums)).
pub fn bias_grad(dy: &[f32], g: &UpGeometry) -> Vec<f32> {
    super::conv::channel_sums(dy, g.batch, g.channels_out, 4 * g.pixels())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    /// The transposed convolution by its definition, in f64: each input pixel spreads through each
    /// tap to its output pixel.
    fn reference(x: &[f32], w: &[f32], bias: &[f32], g: &UpGeometry) -> Vec<f64> {
        let [h, wd] = g.input;
        let mut out = vec![0.0f64; g.batch * g.channels_out * 4 * h * wd];
        for b in 0..g.batch {
            for co in 0..g.channels_out {
                for oy in 0..2 * h {
                    for ox in 0..2 * wd {
                        let (i, a, j, c) = (oy / 2, oy % 2, ox / 2, ox % 2);
                        let mut sum = bias[co] as f64;
                        for ci in 0..g.channels_in {
                            sum += x[((b * g.channels_in + ci) * h + i) * wd + j] as f64 * w[((ci * g.channels_out + co) * 2 + a) * 2 + c] as f64;
                        }
                        out[((b * g.channels_out + co) * 2 * h + oy) * 2 * wd + ox] = sum;
                    }
                }
            }
        }
        out
    }

    fn close(what: &str, ours: &[f32], expected: &[f64]) {
        assert_eq!(ours.len(), expected.len(), "{what}: sizes");
        for (i, (&a, &e)) in ours.iter().zip(expected).enumerate() {
            assert!((a as f64 - e).abs() <= 1e-4 * e.abs().max(1.0), "{what}: element {i}: {a} against {e}");
        }
    }

    /// Forward against the definition; every gradient against the derivative of `sum(y * probe)`,
    /// which is linear in each argument, so its gradient is the reference applied to the probe.
    #[test]
    fn forward_and_every_gradient_match_the_definition() {
        for g in [
            UpGeometry { batch: 1, channels_in: 1, channels_out: 1, input: [1, 1] },
            UpGeometry { batch: 2, channels_in: 3, channels_out: 5, input: [4, 7] },
            UpGeometry { batch: 3, channels_in: 16, channels_out: 8, input: [9, 5] },
        ] {
            let x = values(g.batch * g.channels_in * g.pixels(), 1);
            let w = values(g.channels_in * g.rows(), 2);
            let bias = values(g.channels_out, 3);
            close(&format!("{g:?} forward"), &forward(&x, &w, &bias, &g), &reference(&x, &w, &bias, &g));
            let probe = values(g.batch * g.rows() * g.pixels(), 4);
            // d/dx sum(y * probe) at x: for each x value, sum over the outputs it reaches.
            let n_x = x.len();
            let dx_ref: Vec<f64> = (0..n_x)
                .map(|k| {
                    let mut unit = vec![0.0f32; n_x];
                    unit[k] = 1.0;
                    let zero = vec![0.0f32; g.channels_out];
                    reference(&unit, &w, &zero, &g).iter().zip(&probe).map(|(y, &p)| y * p as f64).sum()
                })
                .collect();
            close(&format!("{g:?} input gradient"), &input_grad(&probe, &w, &g), &dx_ref);
            let dw_ref: Vec<f64> = (0..w.len())
                .map(|k| {
                    let mut unit = vec![0.0f32; w.len()];
                    unit[k] = 1.0;
                    let zero = vec![0.0f32; g.channels_out];
                    reference(&x, &unit, &zero, &g).iter().zip(&probe).map(|(y, &p)| y * p as f64).sum()
                })
                .collect();
            close(&format!("{g:?} weight gradient"), &weight_grad(&x, &probe, &g), &dw_ref);
            let db_ref: Vec<f64> = (0..g.channels_out)
                .map(|co| probe.chunks_exact(4 * g.pixels()).skip(co).step_by(g.channels_out).flatten().map(|&p| p as f64).sum())
                .collect();
            close(&format!("{g:?} bias gradient"), &bias_grad(&probe, &g), &db_ref);
        }
    }
}
