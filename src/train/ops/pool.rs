//! The U-Net's 2x2 max-pool with stride 2 and no padding on plain slices: the forward, which
//! also says which of each window's four inputs won, and the backward, which routes each
//! output's gradient to that input. An odd last row or column is left out of every window, as
//! burn's and PyTorch's floor mode leave it.
//!
//! A window's winner is the first of its largest values in row-major order, or its last NaN:
//! NaN propagates, as in burn's and PyTorch's max-pool (whose backward it follows exactly: the
//! windows do not overlap, so each input gets the gradient of at most one output).

use rayon::prelude::*;

/// Work below this many output values a task is not worth a thread.
const MIN_OUTPUTS_PER_TASK: usize = 4096;

/// The planes pooled (batch x channels, each `input` high and wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub planes: usize,
    pub input: [usize; 2],
}

impl PoolGeometry {
    /// The pooled plane's height and width.
    pub fn output(&self) -> [usize; 2] {
        [self.input[0] / 2, self.input[1] / 2]
    }

    fn output_pixels(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
    }
}

/// The pooled planes and, per output, its winner (0 to 3: top left, top right, bottom left,
/// bottom right).
pub fn forward(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<u8>) {
    let [h, w] = g.input;
    assert_eq!(x.len(), g.planes * h * w, "max-pool: the input holds the planes");
    let [oh, ow] = g.output();
    let per_plane = oh * ow;
    let mut y = vec![0.0f32; g.planes * per_plane];
    let mut winners = vec![0u8; g.planes * per_plane];
    if per_plane == 0 {
        return (y, winners);
    }
    y.par_chunks_mut(per_plane)
        .zip(winners.par_chunks_mut(per_plane))
        .zip(x.par_chunks(h * w))
        .with_min_len(MIN_OUTPUTS_PER_TASK.div_ceil(per_plane))
        .for_each(|((y, winners), plane)| {
            // Branch-free, each window's four values compared in row-major order: the compiler
            // turns a row into vector compares and blends (the branching loop ran scalar, at
            // 4.5% of the main job's inference).
            let pick = |(best, at): (f32, u8), (v, i): (f32, u8)| if v > best || v.is_nan() { (v, i) } else { (best, at) };
            for r in 0..oh {
                let (top, bottom) = (&plane[2 * r * w..][..2 * ow], &plane[(2 * r + 1) * w..][..2 * ow]);
                let (y, winners) = (&mut y[r * ow..][..ow], &mut winners[r * ow..][..ow]);
                for (((y, at), t), b) in y.iter_mut().zip(winners.iter_mut()).zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                    (*y, *at) = pick(pick(pick((t[0], 0), (t[1], 1)), (b[0], 2)), (b[1], 3));
                }
            }
        });
    (y, winners)
}

/// The input gradient: each output's gradient `dy` at its window's winner, zero elsewhere.
pub fn backward(dy: &[f32], winners: &[u8], g: &PoolGeometry) -> Vec<f32> {
    let [h, w] = g.input;
    let [oh, ow] = g.output();
    let per_plane = g.output_pixels();
    assert_eq!(dy.len(), g.planes * per_plane, "max-pool backward: one gradient per output");
    assert_eq!(winners.len(), dy.len(), "max-pool backward: one winner per output");
    let mut dx = vec![0.0f32; g.planes * h * w];
    if per_plane == 0 {
        return dx;
    }
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(per_plane))
        .zip(winners.par_chunks(per_plane))
        .with_min_len(MIN_OUTPUTS_PER_TASK.div_ceil(per_plane))
        .for_each(|((dx, dy), winners)| {
            for r in 0..oh {
                for c in 0..ow {
                    let at = winners[r * ow + c] as usize;
                    dx[(2 * r + at / 2) * w + 2 * c + at % 2] = dy[r * ow + c];
                }
            }
        });
    dx
}
