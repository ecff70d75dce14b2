//! The convolution and its gradients as im2col + GEMM, on plain `f32` slices.
//!
//! burn's default weight gradient is a convolution with batch and channels swapped, which flex
//! runs on its direct small-channel path whenever the batch is small: the slowest part of a
//! training step. Here the gradient is what it is mathematically, a product over the batch and
//! the output pixels: `dW[co, (ci, kh, kw)] = sum_{b, p} dY[b, co, p] * col_b[(ci, kh, kw), p]`,
//! where `col_b` is the im2col matrix of sample `b`. With stride 1 (every 3x3 of the U-Net) no
//! im2col is built: each row of `col_b` is a run of the input plane padded once ([`Taps`]), read
//! in place by dot products on AVX-512 or AVX2 ([`isa`](super::isa) picks); on AVX-512 the
//! forward (and so the input gradient) of such a layer reads those runs in place too, as the
//! rows of its product ([`Taps::forward`]), where that beats im2col + GEMM; on AVX-512 and AVX2
//! the wide 3x3 layers take Winograd's minimal filtering instead ([`winograd`](super::winograd)).
//! The pixels are
//! taken in row tiles, so a tile's columns stay in cache, and the work is split into units that
//! each own a block of input channels (and, when the gradient is small, one sample): every
//! element of the result is summed in one fixed order whatever the thread count, so runs stay
//! reproducible.

use std::ops::Range;

use rayon::prelude::*;

use super::buffers::{SharedOut, with_pooled, with_scratch};
pub use super::geometry::ConvGeometry;
use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::isa::lane_mask_256;
use super::matmul::{product_add, product_add_into};

/// Input channels per unit of work: its GEMM has `CHANNEL_BLOCK * kh * kw` columns.
const CHANNEL_BLOCK: usize = 8;
/// Output pixels per im2col tile (rounded to whole rows): the tile of a block fits in L2.
const TILE_PIXELS: usize = 2048;
/// Per-sample partial gradients are kept (one more level of parallelism) while they total at
/// most this many floats; larger layers sum the batch inside each unit instead.
const PARTIAL_BUDGET: usize = 1 << 21;

/// The forward's im2col tile, in floats: half of this machine's 512 KiB second-level cache.
/// Measured (`cargo bench --bench conv -- --threads 1`) against whole 2048-pixel tiles: the forward
/// 1.7x to 1.8x faster at 128x128 and 64x64 with 8 to 32 channels, and so the input gradient
/// (up to 2.7x at 32 channels).
const FORWARD_TILE_FLOATS: usize = 1 << 16;
/// ... but never fewer pixels than this: tiles of a few rows of a small plane with many channels
/// lost (8x8 with 256 channels, 1.2x slower in three tiles than in one).
const FORWARD_MIN_TILE_PIXELS: usize = 512;

/// Output pixels per tile of the weight gradient read from padded planes ([`Taps`]), rounded to
/// whole rows: a block's 4 + 4 runs of a tile (32 KiB) stay in the first-level cache. Measured
/// (`cargo bench --bench conv -- --threads 1`) against 2048 and 512: level with 2048 at 128x128,
/// 1.2x faster at the main job's 64x64 with 8 channels; 512 lost 1.1x to 1.2x from 32x32 up.
const DOT_TILE_PIXELS: usize = 1024;

/// Output columns from which the forward (and the input gradient) reads the padded input in
/// place ([`Taps::forward`]) instead of im2col + the `gemm` crate's product, on AVX-512 and on
/// AVX2. Measured (`cargo bench --bench conv -- --threads 1`): on AVX-512, 0.65x to 0.9x the time
/// from 16x16 planes up (3 to 64 channels), but 1.3x to 1.45x on 8x8 planes of 64 to 256
/// channels, where a few short rows of pixels meet a long weight matrix and the crate's packed
/// blocking wins. On AVX2 (AMD EPYC), 0.4x to 0.75x from 32x32 planes up (3 to 16 channels), but
/// 1.3x on 16x16 and 1.5x on 8x8 (16 channels).
const DIRECT_MIN_WIDTH: [usize; 2] = [16, 32];

/// ... and at most this many products per output value (`channels_in * kh * kw`): measured
/// level with the crate's product at 128 channels (32x32, 1152 columns), 1.2x slower at 256
/// (16x16, 2304), where its packed blocks pay.
const DIRECT_MAX_COLUMNS: usize = 1152;

/// Pixels per tile from which the weight gradient takes dot products rather than a GEMM: measured
/// (`cargo bench --bench conv -- --threads 1`) 1.5x to 2.8x faster from 32x32 planes up, level
/// at 16x16, 2x to 2.5x slower at 8x8 with 64 or more channels.
const DOT_MIN_PIXELS: usize = 512;

/// The gradient of the loss with respect to the weight, `[channels_out, channels_in, kh, kw]`
/// flattened, from the input `x` (`[batch, channels_in, h, w]`) and the output gradient `dy`
/// (`[batch, channels_out, oh, ow]`), both contiguous.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    weight_grad_on(x, dy, g, Isa::current())
}

/// [`weight_grad`] on the kernels of `isa` (at most what the CPU has).
fn weight_grad_on(x: &[f32], dy: &[f32], g: &ConvGeometry, isa: Isa) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels_in * g.input_pixels(), "conv weight gradient: input size");
    assert_eq!(dy.len(), g.batch * g.channels_out * g.output_pixels(), "conv weight gradient: output gradient size");
    if super::winograd::applies_to_weight_grad(g, isa) {
        return super::winograd::weight_grad(x, dy, g, isa);
    }
    let columns = g.channels_in * g.kernel_len();
    let per_sample = g.batch * g.channels_out * columns <= PARTIAL_BUDGET;
    let sample_groups: Vec<Range<usize>> = if per_sample { (0..g.batch).map(|b| b..b + 1).collect() } else { std::iter::once(0..g.batch).collect() };
    let channel_blocks: Vec<Range<usize>> = (0..g.channels_in).step_by(CHANNEL_BLOCK).map(|c| c..(c + CHANNEL_BLOCK).min(g.channels_in)).collect();
    let units: Vec<(Range<usize>, Range<usize>)> =
        sample_groups.iter().flat_map(|s| channel_blocks.iter().map(move |c| (s.clone(), c.clone()))).collect();
    let partials: Vec<Vec<f32>> = match Taps::for_weight_grad(g, isa) {
        Some(taps) => with_pooled(g.batch * g.channels_in * taps.plane, |padded| {
            taps.pad(padded, x, g);
            units.par_iter().map(|(samples, channels)| taps.block_grad(padded, dy, g, samples.clone(), channels.clone(), isa)).collect()
        }),
        None => units.par_iter().map(|(samples, channels)| block_grad(x, dy, g, samples.clone(), channels.clone(), isa)).collect(),
    };

    // Sum the partials in unit order (samples in order, each block into its columns), the rows
    // of the result in parallel.
    let mut grad = vec![0.0f32; g.channels_out * columns];
    grad.par_chunks_mut(columns.max(1)).enumerate().for_each(|(co, grad_row)| {
        for ((_, channels), partial) in units.iter().zip(&partials) {
            let width = channels.len() * g.kernel_len();
            let first = channels.start * g.kernel_len();
            let row = &partial[co * width..][..width];
            grad_row[first..first + width].iter_mut().zip(row).for_each(|(d, s)| *d += s);
        }
    });
    grad
}

/// The gradient of the loss with respect to the bias, `[channels_out]`: `dy` summed over the
/// batch and the pixels ([`channel_sums`]).
pub fn bias_grad(dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    channel_sums(dy, g.batch, g.channels_out, g.output_pixels())
}

/// Independent partial sums [`plane_sum`] keeps: four eight-lane registers, enough to hide the
/// latency of the additions (one chain of scalar additions ran at a quarter of the loads' rate).
const SUM_LANES: usize = 32;

/// `[channels]`: each channel's planes of `x` (`[batch, channels, plane]` flattened) summed,
/// samples in order, each plane by [`plane_sum`]. Channels in parallel; the result does not
/// depend on the thread count.
pub(super) fn channel_sums(x: &[f32], batch: usize, channels: usize, plane: usize) -> Vec<f32> {
    assert_eq!(x.len(), batch * channels * plane, "channel sums: operand size");
    (0..channels)
        .into_par_iter()
        .map(|c| (0..batch).map(|b| plane_sum(&x[(b * channels + c) * plane..][..plane])).fold(0.0, |sum, plane| sum + plane))
        .collect()
}

/// The sum of `values` in a fixed order: [`SUM_LANES`] running sums over the values' positions
/// modulo the lane count, added lane by lane, then the tail in order.
fn plane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; SUM_LANES];
    let chunks = values.chunks_exact(SUM_LANES);
    let tail = chunks.remainder().iter().sum::<f32>();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(lane, v)| *lane += v);
    }
    lanes.iter().sum::<f32>() + tail
}

/// The convolution itself, `[batch, channels_out, oh, ow]` flattened: for each sample and row
/// tile, `out[:, tile] = W[channels_out, (ci, kh, kw)] * col[(ci, kh, kw), tile] + bias`. Units
/// (sample, row tile) write disjoint parts of the output, so the result does not depend on the
/// thread count.
pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], g: &ConvGeometry) -> Vec<f32> {
    forward_on(x, weight, bias, g, Isa::current())
}

/// [`forward`] on the kernels of `isa` (at most what the CPU has): with AVX-512 or AVX2, a wide
/// 3x3 layer by Winograd's F(2x2, 3x3) ([`winograd`](super::winograd)); with AVX-512, another
/// stride-1 layer read from the input padded once ([`Taps::forward`]); otherwise im2col and the
/// `gemm` crate.
fn forward_on(x: &[f32], weight: &[f32], bias: &[f32], g: &ConvGeometry, isa: Isa) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels_in * g.input_pixels(), "conv: input size");
    assert_eq!(weight.len(), g.channels_out * g.channels_in * g.kernel_len(), "conv: weight size");
    assert_eq!(bias.len(), g.channels_out, "conv: bias size");
    if super::winograd::applies(g, isa) {
        return super::winograd::forward(x, weight, bias, g, isa);
    }
    #[cfg(target_arch = "x86_64")]
    if direct_applies(g, isa)
        && let Some(taps) = Taps::layout(g, forward_tile(g.channels_out.max(g.channels_in * g.kernel_len())))
    {
        return taps.forward(x, weight, bias, g, isa);
    }
    let [out_h, out_w] = g.output;
    let columns = g.channels_in * g.kernel_len();
    let tile_rows = (forward_tile(columns) / out_w.max(1)).clamp(1, out_h.max(1));
    let units: Vec<(usize, usize)> = (0..g.batch).flat_map(|b| (0..out_h).step_by(tile_rows).map(move |r| (b, r))).collect();
    let len = g.batch * g.channels_out * g.output_pixels();
    // Not zeroed first: every unit writes the bias over its part before the GEMM adds to it.
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let out_ptr = SharedOut(out.as_mut_ptr());
    units.par_iter().for_each(|&(b, row0)| {
        let rows = tile_rows.min(out_h - row0);
        let pixels = rows * out_w;
        with_scratch(columns * pixels, |col| {
            im2col(col, x, g, b, 0..g.channels_in, row0..row0 + rows);
            let dst = out_ptr.at((b * g.channels_out) * g.output_pixels() + row0 * out_w);
            // SAFETY: the destination is rows `row0..row0 + rows` of every output plane of
            // sample `b` (stride oh*ow), inside the allocation and written by no other unit;
            // the bias is written there first, so the GEMM reads initialised values. weight is
            // [channels_out, columns] row-major and col is [columns, pixels].
            unsafe {
                for (co, &b) in bias.iter().enumerate() {
                    let plane = dst.add(co * g.output_pixels());
                    (0..pixels).for_each(|i| plane.add(i).write(b));
                }
                product_add_into(g.channels_out, pixels, columns, dst, g.output_pixels(), (weight, columns, 1), (col, pixels, 1));
            }
        });
    });
    // SAFETY: the units cover every sample and every row tile, and each wrote all of its rows
    // in every output plane: all `len` values are initialised.
    unsafe { out.set_len(len) };
    out
}

/// Whether the forward of `g` on `isa` reads its input in place ([`Taps::forward`]) rather than
/// through im2col and the `gemm` crate: on AVX-512 or AVX2, from [`DIRECT_MIN_WIDTH`] output
/// columns (the first entry AVX-512's, the second AVX2's) and up to [`DIRECT_MAX_COLUMNS`]
/// products per output value.
fn direct_applies(g: &ConvGeometry, isa: Isa) -> bool {
    let min_width = match isa.min(Isa::detected()) {
        Isa::Avx512 => DIRECT_MIN_WIDTH[0],
        Isa::Avx2 => DIRECT_MIN_WIDTH[1],
        Isa::Portable => return false,
    };
    cfg!(target_arch = "x86_64") && g.output[1] >= min_width && g.channels_in * g.kernel_len() <= DIRECT_MAX_COLUMNS
}

/// Output pixels per tile of the forward, for a tile of `floats_per_pixel` floats a pixel (its
/// im2col block, or the output tile that [`Taps::forward`] writes before it is copied out) to
/// stay in the second-level cache while the product passes over it.
fn forward_tile(floats_per_pixel: usize) -> usize {
    (FORWARD_TILE_FLOATS / floats_per_pixel.max(1)).clamp(FORWARD_MIN_TILE_PIXELS, TILE_PIXELS)
}

/// The gradient of the loss with respect to the input, `[batch, channels_in, h, w]` flattened,
/// from the output gradient `dy` and the weight, for a convolution `g` with stride and dilation 1
/// and a begin padding smaller than the kernel. It is itself a convolution: of `dy` with the
/// kernel flipped and its channel axes swapped, padded by `k - 1 - padding`, so it takes
/// [`forward`] (whose im2col reads the taps that fall outside `dy` as zeros).
pub fn input_grad(dy: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    input_grad_on(dy, weight, g, Isa::current())
}

/// [`input_grad`] on the kernels of `isa` (at most what the CPU has).
fn input_grad_on(dy: &[f32], weight: &[f32], g: &ConvGeometry, isa: Isa) -> Vec<f32> {
    assert!(g.stride == [1, 1] && g.dilation == [1, 1], "conv input gradient: stride and dilation 1 only");
    assert!(g.padding[0] < g.kernel[0] && g.padding[1] < g.kernel[1], "conv input gradient: padding smaller than the kernel");
    let taps = g.kernel_len();
    assert_eq!(weight.len(), g.channels_out * g.channels_in * taps, "conv input gradient: weight size");
    // flipped[ci, co, a, b] = weight[co, ci, kh - 1 - a, kw - 1 - b]: each input channel's
    // block in parallel, a kernel at a time (an index split per value took a tenth of a step at
    // base 32, in its divisions).
    let mut flipped = vec![0.0f32; weight.len()];
    flipped.par_chunks_mut(g.channels_out * taps).enumerate().for_each(|(ci, block)| {
        for (co, kernel) in block.chunks_exact_mut(taps).enumerate() {
            kernel.iter_mut().zip(weight[(co * g.channels_in + ci) * taps..][..taps].iter().rev()).for_each(|(d, &s)| *d = s);
        }
    });
    let back = ConvGeometry {
        channels_in: g.channels_out,
        channels_out: g.channels_in,
        input: g.output,
        output: g.input,
        padding: [g.kernel[0] - 1 - g.padding[0], g.kernel[1] - 1 - g.padding[1]],
        ..*g
    };
    forward_on(dy, &flipped, &vec![0.0; g.channels_in], &back, isa)
}

/// One unit: the weight-gradient columns of `channels`, summed over `samples`, as a
/// `[channels_out, channels.len() * kh * kw]` row-major block.
fn block_grad(x: &[f32], dy: &[f32], g: &ConvGeometry, samples: Range<usize>, channels: Range<usize>, isa: Isa) -> Vec<f32> {
    let [out_h, out_w] = g.output;
    let columns = channels.len() * g.kernel_len();
    let tile_rows = (TILE_PIXELS / out_w.max(1)).clamp(1, out_h.max(1));
    let mut acc = vec![0.0f32; g.channels_out * columns];
    with_scratch(columns * tile_rows * out_w, |col| {
        for b in samples {
            for row0 in (0..out_h).step_by(tile_rows) {
                let rows = tile_rows.min(out_h - row0);
                let pixels = rows * out_w;
                let col = &mut col[..columns * pixels];
                im2col(col, x, g, b, channels.clone(), row0..row0 + rows);
                let dy_tile = &dy[(b * g.channels_out) * g.output_pixels() + row0 * out_w..];
                add_products(&mut acc, dy_tile, g.output_pixels(), col, g.channels_out, pixels, isa);
            }
        }
    });
    acc
}

/// A stride-1 convolution read without im2col. With the input planes padded to
/// `width = ow + (kw - 1) * dilation` columns (and the rows the taps reach), the im2col row of tap
/// `(kh, kw)` over output row `r` is the run of `ow` values `offset(kh, kw) + r * width` into the
/// padded plane: the weight gradient's products read them in place, row by row ([`Runs`]),
/// beside `dy`'s rows as they are, and the forward's product reads them over whole padded rows
/// ([`Taps::forward`]). Each input value is copied once instead of once per tap.
struct Taps {
    /// Columns of a padded plane.
    width: usize,
    /// Floats per padded plane: `width` times the rows the taps reach, and the last tap's reach
    /// past them ([`Taps::padded_len`] of every output row).
    plane: usize,
    /// Rows the taps reach below an output row: `(kh - 1) * dilation`.
    halo: usize,
    /// Floats past the last padded row that a run over whole padded rows (the forward's) reads:
    /// the last tap's reach, `(kw - 1) * dilation`.
    tail: usize,
    /// Where each tap's first run starts in a padded plane, in (kh, kw) order.
    offsets: Vec<usize>,
    /// Output rows per tile: a tile's runs stay in the second-level cache.
    tile_rows: usize,
}

impl Taps {
    /// The layout of the stride-1 convolution `g` in row tiles of about `tile_pixels` output
    /// pixels, or `None` for another stride (or an empty output).
    fn layout(g: &ConvGeometry, tile_pixels: usize) -> Option<Taps> {
        let ([out_h, out_w], [kh, kw], [dh, dw]) = (g.output, g.kernel, g.dilation);
        if g.stride != [1, 1] || out_h == 0 || out_w == 0 {
            return None;
        }
        let width = out_w + (kw - 1) * dw;
        let (halo, tail) = ((kh - 1) * dh, (kw - 1) * dw);
        let offsets = (0..kh).flat_map(|a| (0..kw).map(move |b| a * dh * width + b * dw)).collect();
        let tile_rows = (tile_pixels / out_w).clamp(1, out_h);
        Some(Taps { width, plane: (out_h + halo) * width + tail, halo, tail, offsets, tile_rows })
    }

    /// Floats of a padded plane for `rows` output rows: the rows their taps reach, and the tail.
    fn padded_len(&self, rows: usize) -> usize {
        (rows + self.halo) * self.width + self.tail
    }

    /// Input rows `first - padding..` of `plane` (one input plane), padded, into `dst` (whole
    /// padded rows and then the tail, [`Taps::padded_len`]): zero wherever a padded row or column
    /// falls outside the input.
    fn pad_rows(&self, dst: &mut [f32], plane: &[f32], g: &ConvGeometry, first: usize) {
        let ([in_h, in_w], [pad_h, pad_w]) = (g.input, g.padding);
        let (rows, tail) = dst.split_at_mut(dst.len() / self.width * self.width);
        tail.fill(0.0);
        for (r, row) in rows.chunks_exact_mut(self.width).enumerate() {
            let ih = (first + r) as isize - pad_h as isize;
            if ih >= 0 && (ih as usize) < in_h {
                copy_row(row, &plane[ih as usize * in_w..][..in_w], -(pad_w as isize), 1);
            } else {
                row.fill(0.0);
            }
        }
    }

    /// The layout for the weight gradient, or `None` where im2col stays: a stride other than 1,
    /// or tiles too short for the dot products ([`dots_apply`]).
    fn for_weight_grad(g: &ConvGeometry, isa: Isa) -> Option<Taps> {
        Taps::layout(g, DOT_TILE_PIXELS).filter(|taps| dots_apply(taps.tile_rows * g.output[1], isa))
    }

    /// The input's planes padded (`[batch, channels_in, plane]`), in parallel, into `padded`
    /// (exactly that long; its old values are all overwritten).
    fn pad(&self, padded: &mut [f32], x: &[f32], g: &ConvGeometry) {
        assert_eq!(padded.len(), g.batch * g.channels_in * self.plane, "conv: padded input size");
        padded.par_chunks_mut(self.plane).zip(x.par_chunks(g.input_pixels())).for_each(|(dst, plane)| self.pad_rows(dst, plane, g, 0));
    }

    /// [`block_grad`] from the padded input: the same unit, summed in row tiles.
    fn block_grad(&self, padded: &[f32], dy: &[f32], g: &ConvGeometry, samples: Range<usize>, channels: Range<usize>, isa: Isa) -> Vec<f32> {
        let [out_h, out_w] = g.output;
        let mut acc = vec![0.0f32; g.channels_out * channels.len() * self.offsets.len()];
        let mut cols: Vec<&[f32]> = Vec::with_capacity(channels.len() * self.offsets.len());
        for b in samples {
            for row0 in (0..out_h).step_by(self.tile_rows) {
                let runs = Runs { segments: self.tile_rows.min(out_h - row0), len: out_w, dy_step: out_w, col_step: self.width };
                cols.clear();
                for ci in channels.clone() {
                    let plane = &padded[(b * g.channels_in + ci) * self.plane..][..self.plane];
                    cols.extend(self.offsets.iter().map(|&offset| &plane[offset + row0 * self.width..]));
                }
                let dy_tile = &dy[b * g.channels_out * g.output_pixels() + row0 * out_w..];
                add_dots(&mut acc, dy_tile, g.output_pixels(), &cols, g.channels_out, runs, isa);
            }
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
impl Taps {
    /// [`forward`] from padded rows, on AVX-512 or AVX2: each unit (a sample's row tile) pads the
    /// input rows its taps reach into this thread's scratch ([`Taps::pad_rows`]; they stay in
    /// cache for the product, where a padded copy of the whole input streamed from memory: at
    /// 128x128 that cost the AVX2 path 1.15x im2col's time), computes its outputs over whole
    /// padded rows, `out[co, q] = bias[co] + sum_(ci, tap) W[co, ci, tap] *
    /// padded[ci, offset(tap) + q]` ([`direct_product`]: the rows of the product are runs of the
    /// padded planes, read in place), then copies the `ow` real columns of each row out (the
    /// other `(kw - 1) * dilation` are the product of taps that wrap into the next row). Units
    /// write disjoint parts of the output, each element summed in one order: the result does not
    /// depend on the thread count.
    fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32], g: &ConvGeometry, isa: Isa) -> Vec<f32> {
        let [out_h, out_w] = g.output;
        let units: Vec<(usize, usize)> = (0..g.batch).flat_map(|b| (0..out_h).step_by(self.tile_rows).map(move |r| (b, r))).collect();
        let len = g.batch * g.channels_out * g.output_pixels();
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let out_ptr = SharedOut(out.as_mut_ptr());
        units.par_iter().for_each(|&(b, row0)| {
            let rows = self.tile_rows.min(out_h - row0);
            let (n, padded_len) = (rows * self.width, self.padded_len(rows));
            with_scratch(g.channels_in * padded_len + g.channels_out * n, |scratch| {
                let (padded, tile) = scratch.split_at_mut(g.channels_in * padded_len);
                for (ci, dst) in padded.chunks_exact_mut(padded_len).enumerate() {
                    self.pad_rows(dst, &x[(b * g.channels_in + ci) * g.input_pixels()..][..g.input_pixels()], g, row0);
                }
                let cols: Vec<&[f32]> =
                    padded.chunks_exact(padded_len).flat_map(|plane| self.offsets.iter().map(move |&offset| &plane[offset..][..n])).collect();
                direct_product(tile, weight, bias, &cols, n, isa);
                for (co, plane) in tile.chunks_exact(n).enumerate() {
                    for (r, row) in plane.chunks_exact(self.width).enumerate() {
                        // SAFETY: row `row0 + r` of output plane (b, co) lies inside the
                        // allocation, and no other unit writes it.
                        unsafe {
                            std::ptr::copy_nonoverlapping(row.as_ptr(), out_ptr.at(((b * g.channels_out + co) * out_h + row0 + r) * out_w), out_w)
                        };
                    }
                }
            });
        });
        // SAFETY: the units cover every sample and row tile, each copying all `ow` columns of
        // its rows in every output plane: all `len` values are initialised.
        unsafe { out.set_len(len) };
        out
    }
}

/// `out[r * n + p] = bias[r] + sum_k weight[r * K + k] * cols[k][p]` for every output channel
/// `r < bias.len()` and pixel `p < n`, `K = cols.len()`: the product of the weight and a matrix
/// given by its rows, wherever each lies, on the widest registers `isa` allows (AVX-512 or AVX2;
/// only where [`direct_applies`]). Each element is summed in the order of `k`, so the two agree
/// bit for bit.
#[cfg(target_arch = "x86_64")]
fn direct_product(out: &mut [f32], weight: &[f32], bias: &[f32], cols: &[&[f32]], n: usize, isa: Isa) {
    assert!(out.len() >= bias.len() * n && weight.len() == bias.len() * cols.len(), "conv: product sizes");
    assert!(cols.iter().all(|row| row.len() >= n), "conv: product rows shorter than the pixels");
    match isa.min(Isa::detected()) {
        // SAFETY: the CPU has AVX-512F (`Isa::detected`); the sizes are asserted above.
        Isa::Avx512 => unsafe { direct_product_512(out, weight, bias, cols, n) },
        // SAFETY: the CPU has AVX2 and FMA (`Isa::detected`); the sizes are asserted above.
        Isa::Avx2 => unsafe { direct_product_256(out, weight, bias, cols, n) },
        Isa::Portable => unreachable!("the direct product without AVX2"),
    }
}

/// [`direct_product`] in sixteen-lane registers: blocks of 8 channels by 48 pixels keep 24 sums
/// in registers (28 of the 32 with the operands); per `k`, 3 loads of the row and 8 broadcasts of
/// the weight feed 24 fused multiply-adds. (Taking the rows 128 or 256 at a time, so that a
/// block's operands stay in the first-level cache, measured level with this.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn direct_product_512(out: &mut [f32], weight: &[f32], bias: &[f32], cols: &[&[f32]], n: usize) {
    let channels = bias.len();
    for p in (0..n).step_by(3 * 16) {
        let masks: [u16; 3] = std::array::from_fn(|v| ((1u32 << n.saturating_sub(p + 16 * v).min(16)) - 1) as u16);
        let mut r = 0;
        while r < channels {
            let block = ProductBlock { first: r, p, masks, n };
            r += match channels - r {
                8.. => block.run_512::<8, true>(out, weight, bias, cols),
                4..=7 => block.run_512::<4, true>(out, weight, bias, cols),
                2 | 3 => block.run_512::<2, true>(out, weight, bias, cols),
                _ => block.run_512::<1, true>(out, weight, bias, cols),
            };
        }
    }
}

/// Eight-lane registers of pixels a block of [`direct_product_256`] takes: 2, so that 4 channels
/// keep 8 sums. With 3 (12 sums, as the sixteen-lane kernel keeps 3 registers a channel), the
/// sums and operands wanted all 16 registers: the compiler spilled two sums and moved registers
/// every step, and the 16-channel 128x128 forward took 1.5x im2col's time.
#[cfg(target_arch = "x86_64")]
const PRODUCT_VECTORS_256: usize = 2;

/// [`direct_product`] in eight-lane registers: blocks of 4 channels by 16 pixels keep 8 sums in
/// registers (11 with the operands); per `k`, 2 loads of the row and 4 broadcasts of the weight
/// feed 8 fused multiply-adds, as many independent sums as the two FMA units need to hide their
/// latency. Whole blocks are read and written unmasked; the last pixels (past a multiple of 16)
/// with masks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn direct_product_256(out: &mut [f32], weight: &[f32], bias: &[f32], cols: &[&[f32]], n: usize) {
    let channels = bias.len();
    for p in (0..n).step_by(PRODUCT_VECTORS_256 * 8) {
        let masks: [_; PRODUCT_VECTORS_256] = std::array::from_fn(|v| lane_mask_256(n.saturating_sub(p + 8 * v)));
        let block = |first| ProductBlock { first, p, masks, n };
        let mut r = 0;
        if p + PRODUCT_VECTORS_256 * 8 <= n {
            while r < channels {
                r += match channels - r {
                    4.. => block(r).run_256::<4, false>(out, weight, bias, cols),
                    2 | 3 => block(r).run_256::<2, false>(out, weight, bias, cols),
                    _ => block(r).run_256::<1, false>(out, weight, bias, cols),
                };
            }
        } else {
            while r < channels {
                r += match channels - r {
                    4.. => block(r).run_256::<4, true>(out, weight, bias, cols),
                    2 | 3 => block(r).run_256::<2, true>(out, weight, bias, cols),
                    _ => block(r).run_256::<1, true>(out, weight, bias, cols),
                };
            }
        }
    }
}

/// One block of [`direct_product`]: channels from `first`, `V` registers of pixels from `p`
/// (`masks`, one per register, say which of them lie below `n`).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct ProductBlock<M, const V: usize> {
    first: usize,
    p: usize,
    masks: [M; V],
    n: usize,
}

/// One block kernel of [`direct_product`], for one register width: the same body for AVX2 and
/// AVX-512, given the vector and mask types, the lane count and how to broadcast, load and store
/// (whole, or the lanes of a mask) and multiply-add.
#[cfg(target_arch = "x86_64")]
macro_rules! product_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal, $vector:ty, $mask:ty, $lanes:literal,
     set1: $set1:expr, load: $load:expr, load_masked: $load_masked:expr,
     store: $store:expr, store_masked: $store_masked:expr, fma: $fma:expr) => {
        impl<const V: usize> ProductBlock<$mask, V> {
            $(#[$doc])*
            #[target_feature(enable = $features)]
            fn $name<const R: usize, const MASKED: bool>(self, out: &mut [f32], weight: &[f32], bias: &[f32], cols: &[&[f32]]) -> usize {
                const LANES: usize = $lanes;
                let k_len = cols.len();
                let weights: [&[f32]; R] = std::array::from_fn(|r| &weight[(self.first + r) * k_len..][..k_len]);
                assert!(out.len() >= (self.first + R) * self.n, "conv: product output size");
                let base = out.as_mut_ptr();
                // Each channel's row of `out`: n floats from (first + r) * n, inside (asserted above).
                let rows: [*mut f32; R] = std::array::from_fn(|r| base.wrapping_add((self.first + r) * self.n));
                let mut sums: [[$vector; V]; R] = std::array::from_fn(|r| [$set1(bias[self.first + r]); V]);
                for (k, row) in cols.iter().enumerate() {
                    // SAFETY: unmasked, the block's pixels all lie below n <= row.len() (asserted
                    // by the caller); masked, only the lanes below n are read, and a pointer past
                    // the row is formed by wrapping_add and never read.
                    let b: [$vector; V] = std::array::from_fn(|v| unsafe {
                        let at = row.as_ptr().wrapping_add(self.p + LANES * v);
                        if MASKED { $load_masked(at, self.masks[v]) } else { $load(at) }
                    });
                    for (sums, w) in sums.iter_mut().zip(&weights) {
                        // SAFETY: k < k_len, each weight row's length.
                        let w = $set1(unsafe { *w.get_unchecked(k) });
                        for (sum, &b) in sums.iter_mut().zip(&b) {
                            *sum = $fma(w, b, *sum);
                        }
                    }
                }
                for (row, sums) in rows.iter().zip(&sums) {
                    for (v, &sum) in sums.iter().enumerate() {
                        // SAFETY: as the loads: only pixels below n, inside the channel's row of `out`.
                        unsafe {
                            let at = row.wrapping_add(self.p + LANES * v);
                            if MASKED { $store_masked(at, self.masks[v], sum) } else { $store(at, sum) }
                        }
                    }
                }
                R
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
product_kernel!(
    /// Writes the block's `R` channels, `V` sixteen-lane registers of pixels (3: 48); returns `R`.
    run_512, "avx512f", std::arch::x86_64::__m512, u16, 16,
    set1: std::arch::x86_64::_mm512_set1_ps,
    load: |at: *const f32| std::arch::x86_64::_mm512_loadu_ps(at),
    load_masked: |at: *const f32, mask| std::arch::x86_64::_mm512_maskz_loadu_ps(mask, at),
    store: |at: *mut f32, v| std::arch::x86_64::_mm512_storeu_ps(at, v),
    store_masked: |at: *mut f32, mask, v| std::arch::x86_64::_mm512_mask_storeu_ps(at, mask, v),
    fma: std::arch::x86_64::_mm512_fmadd_ps
);

#[cfg(target_arch = "x86_64")]
product_kernel!(
    /// Writes the block's `R` channels, `V` eight-lane registers of pixels
    /// ([`PRODUCT_VECTORS_256`]: 16); returns `R`.
    run_256, "avx2,fma", std::arch::x86_64::__m256, std::arch::x86_64::__m256i, 8,
    set1: std::arch::x86_64::_mm256_set1_ps,
    load: |at: *const f32| std::arch::x86_64::_mm256_loadu_ps(at),
    load_masked: |at: *const f32, mask| std::arch::x86_64::_mm256_maskload_ps(at, mask),
    store: |at: *mut f32, v| std::arch::x86_64::_mm256_storeu_ps(at, v),
    store_masked: |at: *mut f32, mask, v| std::arch::x86_64::_mm256_maskstore_ps(at, mask, v),
    fma: std::arch::x86_64::_mm256_fmadd_ps
);

/// `acc[co, j] += sum_p dy[co * dy_stride + p] * col[j, p]` for every `co < channels_out` and
/// every row `j` of `col` (`[acc.len() / channels_out, pixels]`): the weight gradient's product.
///
/// Over a long row of pixels it is a product of few rows and long columns, which a general GEMM
/// runs at a loss: it repacks the long `col` operand, which took twice the multiply's time at the
/// main job's shape. With [`DOT_MIN_PIXELS`] or more, on x86-64 with AVX-512 or AVX2, it is dot
/// products instead ([`add_dots`]); otherwise (small planes,
/// where the GEMM's blocking pays, or another CPU) the `gemm` crate's product.
fn add_products(acc: &mut [f32], dy: &[f32], dy_stride: usize, col: &[f32], channels_out: usize, pixels: usize, isa: Isa) {
    let columns = acc.len() / channels_out;
    assert!(col.len() >= columns * pixels && dy.len() >= (channels_out - 1) * dy_stride + pixels, "weight gradient: operand sizes");
    if dots_apply(pixels, isa) {
        let rows: Vec<&[f32]> = col.chunks_exact(pixels).take(columns).collect();
        return add_dots(acc, dy, dy_stride, &rows, channels_out, Runs::contiguous(pixels), isa);
    }
    // acc is [channels_out, columns] row-major; dy's rows start `dy_stride` apart and the first
    // `pixels` of each are read; col is [columns, pixels], read transposed.
    product_add(channels_out, columns, pixels, acc, columns, (dy, dy_stride, 1), (col, 1, pixels));
}

/// Whether [`add_dots`] takes products over `pixels` on `isa` (x86-64 with AVX2 at least, and
/// long enough rows).
fn dots_apply(pixels: usize, isa: Isa) -> bool {
    cfg!(target_arch = "x86_64") && pixels >= DOT_MIN_PIXELS && isa.min(Isa::detected()) >= Isa::Avx2
}

/// The pixels one dot product runs over: `segments` runs of `len` values, the `s`-th starting
/// `s * dy_step` into a row of `dy` and `s * col_step` into a row of the columns (one run for an
/// im2col tile; one per output row for [`Taps`], whose rows are wider than the output's).
#[derive(Debug, Clone, Copy)]
struct Runs {
    segments: usize,
    len: usize,
    dy_step: usize,
    col_step: usize,
}

impl Runs {
    fn contiguous(pixels: usize) -> Runs {
        Runs { segments: 1, len: pixels, dy_step: pixels, col_step: pixels }
    }

    /// How far into a row of `dy` (of the columns) the runs reach.
    fn dy_span(&self) -> usize {
        self.segments.saturating_sub(1) * self.dy_step + self.len
    }

    fn col_span(&self) -> usize {
        self.segments.saturating_sub(1) * self.col_step + self.len
    }
}

/// `acc[co, j] += sum over the runs of dy[co * dy_stride + p] * cols[j][p]`, as dot products on
/// the widest registers `isa` allows (only where [`dots_apply`]).
fn add_dots(acc: &mut [f32], dy: &[f32], dy_stride: usize, cols: &[&[f32]], channels_out: usize, runs: Runs, isa: Isa) {
    assert!(acc.len() == channels_out * cols.len() && dy.len() >= (channels_out - 1) * dy_stride + runs.dy_span(), "weight gradient: operand sizes");
    assert!(cols.iter().all(|row| row.len() >= runs.col_span()), "weight gradient: column rows shorter than the runs");
    #[cfg(target_arch = "x86_64")]
    {
        let columns = cols.len();
        match isa.min(Isa::detected()) {
            Isa::Avx512 => for_blocks(channels_out, columns, 4, |co, j, rows, width| {
                let block = Block { co, j, dy_stride, runs, columns };
                // SAFETY: the CPU has AVX-512F (`Isa::detected`); the sizes are asserted above.
                unsafe {
                    match (rows, width) {
                        (4, 4) => block.add_wide::<4, 4>(acc, dy, cols),
                        (4, _) => block.add_wide::<4, 1>(acc, dy, cols),
                        (_, 4) => block.add_wide::<1, 4>(acc, dy, cols),
                        _ => block.add_wide::<1, 1>(acc, dy, cols),
                    }
                }
            }),
            Isa::Avx2 => for_blocks(channels_out, columns, 2, |co, j, rows, width| {
                let block = Block { co, j, dy_stride, runs, columns };
                // SAFETY: the CPU has AVX2 and FMA (`Isa::detected`); the sizes are asserted above.
                unsafe {
                    match (rows, width) {
                        (4, 2) => block.add::<4, 2>(acc, dy, cols),
                        (4, _) => block.add::<4, 1>(acc, dy, cols),
                        (_, 2) => block.add::<1, 2>(acc, dy, cols),
                        _ => block.add::<1, 1>(acc, dy, cols),
                    }
                }
            }),
            Isa::Portable => unreachable!("dot products without AVX2"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("dot products off x86-64: {isa:?}, {:?}", (acc.len(), dy.len(), dy_stride, cols.len(), channels_out, runs));
}

/// Rows of `dy` that every block of columns meets in turn ([`for_blocks`]): 8 rows of a
/// 1024-pixel tile (32 KiB) stay in the first-level cache beside the block's columns while every
/// block passes. Measured (`cargo bench --bench conv -- --threads 1`) against 16 rows (64 KiB,
/// from the second-level cache): the weight gradient 0.75x to 0.85x the time from 16 to 128
/// channels on AVX-512, 0.85x to 0.9x on AVX2; 4 rows level with 8.
#[cfg(target_arch = "x86_64")]
const DOT_ROWS: usize = 8;

/// Calls `block(co, j, rows, width)` over `[channels_out, columns]` in blocks of 4 rows (or 1)
/// by `width` columns (or 1), [`DOT_ROWS`] rows of `dy` at a time.
#[cfg(target_arch = "x86_64")]
fn for_blocks(channels_out: usize, columns: usize, width: usize, mut block: impl FnMut(usize, usize, usize, usize)) {
    for channels in (0..channels_out).step_by(DOT_ROWS).map(|c| c..(c + DOT_ROWS).min(channels_out)) {
        let mut j = 0;
        while j < columns {
            let block_width = if columns - j >= width { width } else { 1 };
            let mut co = channels.start;
            while co < channels.end {
                let rows = if channels.end - co >= 4 { 4 } else { 1 };
                block(co, j, rows, block_width);
                co += rows;
            }
            j += block_width;
        }
    }
}

/// Where one block of [`add_dots`] reads and writes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Block {
    co: usize,
    j: usize,
    dy_stride: usize,
    runs: Runs,
    columns: usize,
}

/// One dot-product kernel of [`Block`], for one register width: the same body for AVX2 and
/// AVX-512, given the vector type, its lane count and how to make a zero, load (whole or the
/// first lanes by a mask), multiply-add and sum across the lanes.
#[cfg(target_arch = "x86_64")]
macro_rules! dot_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal, $vector:ty, $lanes:literal,
     zero: $zero:expr, tail: $tail:expr, load: $load:expr, load_first: $load_first:expr, fma: $fma:expr, sum: $sum:expr) => {
        $(#[$doc])*
        #[target_feature(enable = $features)]
        fn $name<const R: usize, const C: usize>(self, acc: &mut [f32], dy: &[f32], cols: &[&[f32]]) {
            const LANES: usize = $lanes;
            let Runs { segments, len, dy_step, col_step } = self.runs;
            let dy_rows: [&[f32]; R] = std::array::from_fn(|r| &dy[(self.co + r) * self.dy_stride..][..self.runs.dy_span()]);
            let col_rows: [&[f32]; C] = std::array::from_fn(|k| &cols[self.j + k][..self.runs.col_span()]);
            let mut sums: [[$vector; C]; R] = [[$zero; C]; R];
            let full = len / LANES * LANES;
            let tail = $tail(len - full);
            for s in 0..segments {
                let (dy_at, col_at) = (s * dy_step, s * col_step);
                // LANES pixels from `p` of this run, or its last `len - full` (the rest as zeros).
                let mut step = |p: usize, masked: bool| {
                    // SAFETY: every row holds its runs (the spans above); a full step ends at or
                    // before `len`, a masked one reads only the lanes before it.
                    let load = |row: &[f32], at: usize| unsafe {
                        let at = row.as_ptr().add(at + p);
                        if masked { $load_first(at, tail) } else { $load(at) }
                    };
                    let b: [$vector; C] = std::array::from_fn(|k| load(col_rows[k], col_at));
                    for (sums, row) in sums.iter_mut().zip(&dy_rows) {
                        let a = load(row, dy_at);
                        for (sum, &b) in sums.iter_mut().zip(&b) {
                            *sum = $fma(a, b, *sum);
                        }
                    }
                };
                for p in (0..full).step_by(LANES) {
                    step(p, false);
                }
                if full < len {
                    step(full, true);
                }
            }
            for (r, sums) in sums.iter().enumerate() {
                for (k, &sum) in sums.iter().enumerate() {
                    acc[(self.co + r) * self.columns + self.j + k] += $sum(sum);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl Block {
    dot_kernel!(
        /// Adds the dot products of `dy` rows `co..co + R` with the rows `cols[j..j + C]` to
        /// `acc`, each pair summed in an eight-lane register (4 x 2 of them, 6 loads to 8
        /// multiply-adds). Each run's last values (fewer than 8) are read with a masked load. Each
        /// lane sums its pixels in order and the lanes are added in order: the result depends on
        /// the data alone.
        add, "avx2,fma", std::arch::x86_64::__m256, 8,
        zero: std::arch::x86_64::_mm256_setzero_ps(),
        tail: lane_mask_256,
        load: |at: *const f32| std::arch::x86_64::_mm256_loadu_ps(at),
        load_first: |at: *const f32, mask| std::arch::x86_64::_mm256_maskload_ps(at, mask),
        fma: std::arch::x86_64::_mm256_fmadd_ps,
        sum: |v| {
            let mut lanes = [0.0f32; 8];
            // SAFETY: lanes holds 8 floats.
            unsafe { std::arch::x86_64::_mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            lanes.iter().sum::<f32>()
        }
    );

    dot_kernel!(
        /// [`Block::add`] in sixteen-lane registers, 4 x 4 of them (16 of the 32): per sixteen
        /// pixels, 8 loads feed 16 fused multiply-adds, which the two FMA units of a core take in
        /// 8 cycles.
        add_wide, "avx512f", std::arch::x86_64::__m512, 16,
        zero: std::arch::x86_64::_mm512_setzero_ps(),
        tail: |n: usize| ((1u32 << n) - 1) as u16,
        load: |at: *const f32| std::arch::x86_64::_mm512_loadu_ps(at),
        load_first: |at: *const f32, mask| std::arch::x86_64::_mm512_maskz_loadu_ps(mask, at),
        fma: std::arch::x86_64::_mm512_fmadd_ps,
        sum: std::arch::x86_64::_mm512_reduce_add_ps
    );
}

/// Fills `col` (`[channels.len() * kh * kw, rows.len() * ow]`) with the input values each
/// output pixel of `rows` sees through each kernel tap, zero where the tap falls in the padding.
fn im2col(col: &mut [f32], x: &[f32], g: &ConvGeometry, b: usize, channels: Range<usize>, rows: Range<usize>) {
    let [in_h, in_w] = g.input;
    let out_w = g.output[1];
    let pixels = rows.len() * out_w;
    let mut taps = col.chunks_exact_mut(pixels);
    for c in channels {
        let plane = &x[(b * g.channels_in + c) * g.input_pixels()..][..g.input_pixels()];
        for kh in 0..g.kernel[0] {
            for kw in 0..g.kernel[1] {
                let dst = taps.next().expect("im2col: one row per tap");
                let shift_w = (kw * g.dilation[1]) as isize - g.padding[1] as isize;
                if g.stride == [1, 1] && in_w == out_w {
                    shifted_plane(dst, plane, in_w, rows.start as isize + (kh * g.dilation[0]) as isize - g.padding[0] as isize, shift_w);
                    continue;
                }
                for (out_row, dst_row) in rows.clone().zip(dst.chunks_exact_mut(out_w)) {
                    let ih = (out_row * g.stride[0] + kh * g.dilation[0]) as isize - g.padding[0] as isize;
                    if ih < 0 || ih >= in_h as isize {
                        dst_row.fill(0.0);
                        continue;
                    }
                    let src_row = &plane[ih as usize * in_w..][..in_w];
                    copy_row(dst_row, src_row, shift_w, g.stride[1]);
                }
            }
        }
    }
}

/// One tap of a stride-1 convolution whose output rows are as wide as the input's (`Same`
/// padding, as the U-Net's): `dst` (`rows x width`) is the input `plane` moved up by `first_row`
/// rows and left by `shift` columns, zero where that falls outside it. The rows inside the plane
/// are then one contiguous run of the input, copied at once; the columns that wrapped around from
/// the neighbouring row are zeroed after.
fn shifted_plane(dst: &mut [f32], plane: &[f32], width: usize, first_row: isize, shift: isize) {
    let (rows, height) = ((dst.len() / width) as isize, (plane.len() / width) as isize);
    // Output rows `lo..hi` read input rows `first_row + lo..first_row + hi`, all inside the plane.
    let lo = (-first_row).clamp(0, rows);
    let hi = (height - first_row).clamp(lo, rows);
    let (lo, hi) = (lo as usize * width, hi as usize * width);
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if lo == hi {
        return;
    }
    // dst[i] = plane[first_row * width + shift + i] for i in lo..hi, clipped to the plane (what the
    // clipping leaves out lies in the zeroed columns below).
    let offset = first_row * width as isize + shift;
    let start = (-offset).clamp(lo as isize, hi as isize) as usize;
    let end = (plane.len() as isize - offset).clamp(start as isize, hi as isize) as usize;
    dst[lo..start].fill(0.0);
    if start < end {
        dst[start..end].copy_from_slice(&plane[(start as isize + offset) as usize..(end as isize + offset) as usize]);
    }
    dst[end..hi].fill(0.0);
    let zeroed = if shift < 0 { 0..(-shift as usize).min(width) } else { width - (shift as usize).min(width)..width };
    if !zeroed.is_empty() {
        for row in dst[lo..hi].chunks_exact_mut(width) {
            row[zeroed.clone()].fill(0.0);
        }
    }
}

/// `dst[i] = src[i * stride + shift]`, zero where that index is outside `src`.
fn copy_row(dst: &mut [f32], src: &[f32], shift: isize, stride: usize) {
    let inside = |i: usize| {
        let at = (i * stride) as isize + shift;
        (at >= 0 && at < src.len() as isize).then_some(at as usize)
    };
    if stride == 1 {
        // One contiguous run, zeros on either side.
        let lo = (-shift).clamp(0, dst.len() as isize) as usize;
        let hi = (src.len() as isize - shift).clamp(lo as isize, dst.len() as isize) as usize;
        dst[..lo].fill(0.0);
        dst[lo..hi].copy_from_slice(&src[(lo as isize + shift) as usize..(hi as isize + shift) as usize]);
        dst[hi..].fill(0.0);
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = inside(i).map_or(0.0, |at| src[at]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, summed naively in f64.
    fn reference(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
        let [kh_n, kw_n] = g.kernel;
        let mut out = vec![0.0f32; g.channels_out * g.channels_in * kh_n * kw_n];
        for co in 0..g.channels_out {
            for ci in 0..g.channels_in {
                for kh in 0..kh_n {
                    for kw in 0..kw_n {
                        let mut sum = 0.0f64;
                        for b in 0..g.batch {
                            for oh in 0..g.output[0] {
                                for ow in 0..g.output[1] {
                                    let ih = (oh * g.stride[0] + kh * g.dilation[0]) as isize - g.padding[0] as isize;
                                    let iw = (ow * g.stride[1] + kw * g.dilation[1]) as isize - g.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.input[0] as isize || iw >= g.input[1] as isize {
                                        continue;
                                    }
                                    let xv = x[((b * g.channels_in + ci) * g.input[0] + ih as usize) * g.input[1] + iw as usize];
                                    let dv = dy[((b * g.channels_out + co) * g.output[0] + oh) * g.output[1] + ow];
                                    sum += xv as f64 * dv as f64;
                                }
                            }
                        }
                        out[((co * g.channels_in + ci) * kh_n + kh) * kw_n + kw] = sum as f32;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    fn check(g: ConvGeometry) {
        let x = values(g.batch * g.channels_in * g.input_pixels(), 1);
        let dy = values(g.batch * g.channels_out * g.output_pixels(), 7);
        let expected = reference(&x, &dy, &g);
        for isa in every_isa() {
            let ours = weight_grad_on(&x, &dy, &g, isa);
            for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
                assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{g:?} on {isa:?}: element {i}: {a} against {e}");
            }
        }
    }

    fn geometry(batch: usize, ci: usize, co: usize, input: [usize; 2], kernel: usize, stride: usize, padding: usize) -> ConvGeometry {
        let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
        ConvGeometry {
            batch,
            channels_in: ci,
            channels_out: co,
            input,
            output: [out(input[0]), out(input[1])],
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
        }
    }

    #[test]
    fn weight_grad_matches_the_definition() {
        check(geometry(1, 1, 1, [5, 7], 3, 1, 1));
        check(geometry(3, 11, 5, [9, 6], 3, 1, 1)); // channel blocks of 8 and 3
        check(geometry(2, 4, 3, [7, 9], 3, 2, 1)); // strided
        check(geometry(2, 5, 2, [6, 5], 1, 1, 0)); // the head's 1x1
        check(geometry(1, 2, 2, [3, 4], 3, 1, 2)); // padding wider than the taps reach
        check(ConvGeometry { dilation: [2, 1], output: [3, 4], ..geometry(2, 3, 2, [7, 4], 3, 1, 1) });
        check(geometry(2, 3, 4, [130, 3], 3, 1, 1)); // more than one row tile
        check(geometry(2, 3, 5, [41, 19], 3, 1, 1)); // dot products: blocks of 4 and 1 channels, 2 and 1 columns, a tail
        check(geometry(1, 2, 18, [24, 24], 3, 1, 1)); // dot products over three groups of channels (8, 8 and 2)
        check(geometry(2, 8, 19, [32, 17], 3, 1, 1)); // 72 columns in blocks of 4; 19 rows (4s and 1s); 544 pixels, a tail of 0 lanes
        check(geometry(1, 3, 6, [23, 29], 3, 1, 1)); // 27 columns (a block of 1 after six of 4), a tail of 11 pixels
        check(geometry(2, 32, 40, [19, 21], 3, 1, 1)); // Winograd on AVX2
        check(geometry(2, 32, 32, [20, 34], 3, 1, 1)); // on AVX2 dot products, where the forward takes Winograd
        for g in same_width_cases() {
            check(g);
        }
    }

    /// Stride 1 with tiles long enough for the dot products: the gradient read from the padded
    /// planes in place ([`Taps`]), at every padding, dilation and kernel the layout handles.
    #[test]
    fn weight_grad_from_padded_planes_matches_the_definition() {
        let cases = [
            geometry(2, 3, 4, [30, 25], 3, 1, 0),  // no padding: the output smaller than the input
            geometry(1, 2, 2, [40, 20], 3, 1, 2),  // padding wider than the taps reach
            geometry(2, 5, 2, [30, 30], 1, 1, 0),  // the head's 1x1
            geometry(2, 9, 17, [33, 35], 3, 1, 1), // channel blocks of 8 and 1, 17 rows, odd widths
            geometry(1, 2, 3, [300, 9], 3, 1, 1),  // several row tiles, the last one short
            ConvGeometry { dilation: [2, 2], padding: [2, 2], ..geometry(1, 2, 3, [26, 31], 3, 1, 1) },
            ConvGeometry { output: [24, 29], ..geometry(2, 3, 2, [25, 30], 2, 1, 0) }, // an even kernel
        ];
        for g in cases {
            if Isa::detected() >= Isa::Avx2 {
                assert!(Taps::for_weight_grad(&g, Isa::detected()).is_some(), "{g:?} takes the padded planes");
            }
            check(g);
        }
    }

    /// Stride 1 with the output as wide as the input: the taps im2col copies as shifted planes.
    fn same_width_cases() -> Vec<ConvGeometry> {
        vec![
            geometry(2, 2, 3, [6, 1], 5, 1, 2), // taps shifted past the whole row
            ConvGeometry { dilation: [2, 2], padding: [2, 2], ..geometry(2, 3, 2, [7, 5], 3, 1, 1) }, // dilated
            geometry(1, 2, 2, [300, 9], 3, 1, 1), // row tiles of 227 and 73 rows
            geometry(2, 2, 3, [1, 1], 5, 1, 2), // a single pixel: taps shifted past the whole plane
        ]
    }

    /// The convolution by its definition, in f64.
    fn reference_forward(x: &[f32], w: &[f32], bias: &[f32], g: &ConvGeometry) -> Vec<f32> {
        let [kh_n, kw_n] = g.kernel;
        let mut out = Vec::with_capacity(g.batch * g.channels_out * g.output_pixels());
        for b in 0..g.batch {
            for co in 0..g.channels_out {
                for oh in 0..g.output[0] {
                    for ow in 0..g.output[1] {
                        let mut sum = bias[co] as f64;
                        for ci in 0..g.channels_in {
                            for kh in 0..kh_n {
                                for kw in 0..kw_n {
                                    let ih = (oh * g.stride[0] + kh * g.dilation[0]) as isize - g.padding[0] as isize;
                                    let iw = (ow * g.stride[1] + kw * g.dilation[1]) as isize - g.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.input[0] as isize || iw >= g.input[1] as isize {
                                        continue;
                                    }
                                    let xv = x[((b * g.channels_in + ci) * g.input[0] + ih as usize) * g.input[1] + iw as usize];
                                    sum += xv as f64 * w[((co * g.channels_in + ci) * kh_n + kh) * kw_n + kw] as f64;
                                }
                            }
                        }
                        out.push(sum as f32);
                    }
                }
            }
        }
        out
    }

    /// Every path this CPU can run: the widest, and those a CPU without it takes.
    fn every_isa() -> impl Iterator<Item = Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&isa| isa <= Isa::detected())
    }

    /// Shapes for the forward and the input gradient.
    fn cases() -> Vec<ConvGeometry> {
        vec![
            geometry(1, 1, 1, [5, 7], 3, 1, 1),
            geometry(2, 5, 15, [19, 37], 3, 1, 1), // 15 channels: product blocks of 8, 4, 2 and 1; rows of 39 floats
            geometry(1, 17, 3, [50, 70], 3, 1, 1), // several row tiles, the last short, a masked tail of pixels
            geometry(3, 2, 9, [1, 1], 3, 1, 1),    // one-pixel planes
            ConvGeometry { dilation: [2, 2], padding: [2, 2], ..geometry(2, 3, 4, [11, 21], 3, 1, 1) }, // dilated (the forward only)
            geometry(2, 5, 3, [17, 20], 1, 1, 0),  // the head's 1x1, wide enough for the padded planes
            geometry(2, 8, 1, [5, 41], 1, 1, 0),   // the head's 1x1 on AVX2's padded planes: a single output channel
            ConvGeometry { output: [16, 19], ..geometry(2, 3, 2, [17, 20], 2, 1, 0) }, // an even kernel, as wide
            geometry(3, 11, 5, [9, 6], 3, 1, 1),
            geometry(2, 4, 3, [7, 9], 3, 2, 1), // strided (the forward only)
            geometry(2, 5, 2, [6, 5], 1, 1, 0),
            geometry(2, 3, 4, [130, 3], 3, 1, 1),
            geometry(1, 2, 3, [6, 6], 3, 1, 0), // no padding: the output is smaller than the input
            ConvGeometry { output: [4, 5], ..geometry(2, 3, 2, [5, 6], 2, 1, 0) }, // an even kernel
            geometry(2, 32, 40, [19, 21], 3, 1, 1), // Winograd on AVX2 (forward and both gradients)
            geometry(2, 32, 32, [20, 34], 3, 1, 1), // on AVX2 the forward by Winograd, the weight gradient by dot products
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in cases().into_iter().chain(same_width_cases()) {
            let x = values(g.batch * g.channels_in * g.input_pixels(), 1);
            let w = values(g.channels_out * g.channels_in * g.kernel_len(), 3);
            let bias = values(g.channels_out, 9);
            let expected = reference_forward(&x, &w, &bias, &g);
            if g.stride == [1, 1] && direct_applies(&g, Isa::detected()) {
                assert!(Taps::layout(&g, TILE_PIXELS).is_some(), "{g:?}: read from the padded planes");
            }
            for isa in every_isa() {
                let ours = forward_on(&x, &w, &bias, &g, isa);
                assert_eq!(ours.len(), expected.len());
                for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
                    assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{g:?} on {isa:?}: element {i}: {a} against {e}");
                }
            }
        }
    }

    /// The direct product sums each element in the same order on both register widths: on a CPU
    /// with AVX-512, its sixteen-lane and eight-lane kernels agree bit for bit, at every block
    /// size and masked tail.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_direct_product_agrees_bit_for_bit_across_register_widths() {
        if Isa::detected() < Isa::Avx512 {
            eprintln!("skipped: this CPU has no AVX-512, so there is only one width to run");
            return;
        }
        for (channels, k, n) in [(15, 27, 101), (16, 144, 48), (3, 9, 7), (1, 72, 1), (9, 5, 200)] {
            let weight = values(channels * k, 5);
            let bias = values(channels, 6);
            let data = values(k * n + n + 4, 7);
            // Rows that overlap and start unaligned, as the taps of a padded plane do.
            let cols: Vec<&[f32]> = (0..k).map(|j| &data[j * (n / 2) + j % 4..][..n]).collect();
            let run = |isa| {
                let mut out = vec![f32::NAN; channels * n];
                direct_product(&mut out, &weight, &bias, &cols, n, isa);
                out
            };
            let (wide, narrow) = (run(Isa::Avx512), run(Isa::Avx2));
            assert!(wide.iter().all(|v| v.is_finite()), "every output written");
            assert_eq!(wide.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), narrow.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    /// The input gradient by its definition, in f64: every output pixel's gradient sent back
    /// through every tap.
    fn reference_input_grad(dy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
        let [kh_n, kw_n] = g.kernel;
        let mut dx = vec![0.0f64; g.batch * g.channels_in * g.input_pixels()];
        for b in 0..g.batch {
            for co in 0..g.channels_out {
                for oh in 0..g.output[0] {
                    for ow in 0..g.output[1] {
                        let d = dy[((b * g.channels_out + co) * g.output[0] + oh) * g.output[1] + ow] as f64;
                        for ci in 0..g.channels_in {
                            for kh in 0..kh_n {
                                for kw in 0..kw_n {
                                    let ih = (oh + kh) as isize - g.padding[0] as isize;
                                    let iw = (ow + kw) as isize - g.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.input[0] as isize || iw >= g.input[1] as isize {
                                        continue;
                                    }
                                    dx[((b * g.channels_in + ci) * g.input[0] + ih as usize) * g.input[1] + iw as usize] +=
                                        d * w[((co * g.channels_in + ci) * kh_n + kh) * kw_n + kw] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        dx.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn input_grad_matches_the_definition() {
        for g in cases().into_iter().chain(same_width_cases()).filter(|g| g.stride == [1, 1] && g.dilation == [1, 1]) {
            let dy = values(g.batch * g.channels_out * g.output_pixels(), 5);
            let w = values(g.channels_out * g.channels_in * g.kernel_len(), 3);
            let expected = reference_input_grad(&dy, &w, &g);
            for isa in every_isa() {
                let ours = input_grad_on(&dy, &w, &g, isa);
                assert_eq!(ours.len(), expected.len());
                for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
                    assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{g:?} on {isa:?}: element {i}: {a} against {e}");
                }
            }
        }
    }

    #[test]
    fn bias_grad_sums_every_sample_and_pixel() {
        let g = geometry(2, 1, 2, [2, 2], 1, 1, 0);
        assert_eq!(bias_grad(&[1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0], &g), vec![12.0, 44.0]);
    }

    #[test]
    fn channel_sums_cover_the_lanes_and_the_tail() {
        // Planes of 77 values (two full chunks of SUM_LANES and a tail of 13) and of 5 (a tail
        // only); small integers, so every partial sum is exact and the result must equal the
        // f64 sum whatever the order.
        for plane in [77, 5, 64] {
            let (batch, channels) = (3, 2);
            let x: Vec<f32> = (0..batch * channels * plane).map(|i| (i * 7 % 11) as f32 - 5.0).collect();
            let expected: Vec<f32> = (0..channels)
                .map(|c| (0..batch).flat_map(|b| &x[(b * channels + c) * plane..][..plane]).map(|&v| v as f64).sum::<f64>() as f32)
                .collect();
            assert_eq!(channel_sums(&x, batch, channels, plane), expected, "plane of {plane}");
        }
    }
}
