//! The convolution and its gradients as im2col + GEMM, on plain `f32` slices.
//!
//! burn's default weight gradient is a convolution with batch and channels swapped, which flex
//! runs on its direct small-channel path whenever the batch is small: the slowest part of a
//! training step. Here the gradient is what it is mathematically, a product over the batch and
//! the output pixels: `dW[co, (ci, kh, kw)] = sum_{b, p} dY[b, co, p] * col_b[(ci, kh, kw), p]`,
//! where `col_b` is the im2col matrix of sample `b`. The pixels are taken in row tiles, so a
//! tile's columns stay in cache for its GEMM, and the work is split into units that each own a
//! block of input channels (and, when the gradient is small, one sample): every element of the
//! result is summed in one fixed order whatever the thread count, so runs stay reproducible.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

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

/// Pixels per tile from which the weight gradient takes dot products rather than a GEMM: measured
/// (`cargo bench --bench conv -- --threads 1`) 1.5x to 2.8x faster from 32x32 planes up, level
/// at 16x16, 2x to 2.5x slower at 8x8 with 64 or more channels.
const DOT_MIN_PIXELS: usize = 512;

/// The shape of one 2-D convolution (groups = 1), in the terms the kernels need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    /// `[height, width]` of the input.
    pub input: [usize; 2],
    /// `[height, width]` of the output.
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before the first row and column (the end padding only shows in `output`).
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    fn kernel_len(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    fn output_pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn input_pixels(&self) -> usize {
        self.input[0] * self.input[1]
    }
}

/// The gradient of the loss with respect to the weight, `[channels_out, channels_in, kh, kw]`
/// flattened, from the input `x` (`[batch, channels_in, h, w]`) and the output gradient `dy`
/// (`[batch, channels_out, oh, ow]`), both contiguous.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels_in * g.input_pixels(), "conv weight gradient: input size");
    assert_eq!(dy.len(), g.batch * g.channels_out * g.output_pixels(), "conv weight gradient: output gradient size");
    let columns = g.channels_in * g.kernel_len();
    let per_sample = g.batch * g.channels_out * columns <= PARTIAL_BUDGET;
    let sample_groups: Vec<Range<usize>> = if per_sample { (0..g.batch).map(|b| b..b + 1).collect() } else { std::iter::once(0..g.batch).collect() };
    let channel_blocks: Vec<Range<usize>> = (0..g.channels_in).step_by(CHANNEL_BLOCK).map(|c| c..(c + CHANNEL_BLOCK).min(g.channels_in)).collect();
    let units: Vec<(Range<usize>, Range<usize>)> =
        sample_groups.iter().flat_map(|s| channel_blocks.iter().map(move |c| (s.clone(), c.clone()))).collect();
    let partials: Vec<Vec<f32>> = units.par_iter().map(|(samples, channels)| block_grad(x, dy, g, samples.clone(), channels.clone())).collect();

    // Sum the partials in unit order: samples in order, each block into its columns.
    let mut grad = vec![0.0f32; g.channels_out * columns];
    for ((_, channels), partial) in units.iter().zip(&partials) {
        let width = channels.len() * g.kernel_len();
        let first = channels.start * g.kernel_len();
        for (co, row) in partial.chunks_exact(width).enumerate() {
            let dst = &mut grad[co * columns + first..co * columns + first + width];
            dst.iter_mut().zip(row).for_each(|(d, s)| *d += s);
        }
    }
    grad
}

/// The gradient of the loss with respect to the bias, `[channels_out]`: `dy` summed over the
/// batch and the pixels, in order.
pub fn bias_grad(dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let pixels = g.output_pixels();
    let mut grad = vec![0.0f32; g.channels_out];
    for sample in dy.chunks_exact(g.channels_out * pixels) {
        for (sum, plane) in grad.iter_mut().zip(sample.chunks_exact(pixels)) {
            *sum += plane.iter().sum::<f32>();
        }
    }
    grad
}

/// The convolution itself, `[batch, channels_out, oh, ow]` flattened: for each sample and row
/// tile, `out[:, tile] = W[channels_out, (ci, kh, kw)] * col[(ci, kh, kw), tile] + bias`. Units
/// (sample, row tile) write disjoint parts of the output, so the result does not depend on the
/// thread count.
pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels_in * g.input_pixels(), "conv: input size");
    assert_eq!(weight.len(), g.channels_out * g.channels_in * g.kernel_len(), "conv: weight size");
    assert_eq!(bias.len(), g.channels_out, "conv: bias size");
    let [out_h, out_w] = g.output;
    let columns = g.channels_in * g.kernel_len();
    // A tile's im2col block stays in the second-level cache while the GEMM passes over it once
    // per few output channels.
    let tile = (FORWARD_TILE_FLOATS / columns).clamp(FORWARD_MIN_TILE_PIXELS, TILE_PIXELS);
    let tile_rows = (tile / out_w.max(1)).clamp(1, out_h.max(1));
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
                gemm_add(g.channels_out, pixels, columns, (dst, g.output_pixels()), (weight.as_ptr(), columns), (col.as_ptr(), 1, pixels));
            }
        });
    });
    // SAFETY: the units cover every sample and every row tile, and each wrote all of its rows
    // in every output plane: all `len` values are initialised.
    unsafe { out.set_len(len) };
    out
}

/// The gradient of the loss with respect to the input, `[batch, channels_in, h, w]` flattened,
/// from the output gradient `dy` and the weight, for a convolution `g` with stride and dilation 1
/// and a begin padding smaller than the kernel. It is itself a convolution: of `dy` with the
/// kernel flipped and its channel axes swapped, padded by `k - 1 - padding`, so it takes
/// [`forward`] (whose im2col reads the taps that fall outside `dy` as zeros).
pub fn input_grad(dy: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(g.stride == [1, 1] && g.dilation == [1, 1], "conv input gradient: stride and dilation 1 only");
    assert!(g.padding[0] < g.kernel[0] && g.padding[1] < g.kernel[1], "conv input gradient: padding smaller than the kernel");
    let taps = g.kernel_len();
    assert_eq!(weight.len(), g.channels_out * g.channels_in * taps, "conv input gradient: weight size");
    // flipped[ci, co, a, b] = weight[co, ci, kh - 1 - a, kw - 1 - b]
    let mut flipped = vec![0.0f32; weight.len()];
    for co in 0..g.channels_out {
        for ci in 0..g.channels_in {
            let src = &weight[(co * g.channels_in + ci) * taps..][..taps];
            let dst = &mut flipped[(ci * g.channels_out + co) * taps..][..taps];
            dst.iter_mut().zip(src.iter().rev()).for_each(|(d, s)| *d = *s);
        }
    }
    let back = ConvGeometry {
        channels_in: g.channels_out,
        channels_out: g.channels_in,
        input: g.output,
        output: g.input,
        padding: [g.kernel[0] - 1 - g.padding[0], g.kernel[1] - 1 - g.padding[1]],
        ..*g
    };
    forward(dy, &flipped, &vec![0.0; g.channels_in], &back)
}

/// The output buffer, shared by units that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: the units that share it write disjoint elements (see `forward`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers pass offsets inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// One unit: the weight-gradient columns of `channels`, summed over `samples`, as a
/// `[channels_out, channels.len() * kh * kw]` row-major block.
fn block_grad(x: &[f32], dy: &[f32], g: &ConvGeometry, samples: Range<usize>, channels: Range<usize>) -> Vec<f32> {
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
                add_products(&mut acc, dy_tile, g.output_pixels(), col, g.channels_out, pixels);
            }
        }
    });
    acc
}

/// `acc[co, j] += sum_p dy[co * dy_stride + p] * col[j, p]` for every `co < channels_out` and
/// every row `j` of `col` (`[acc.len() / channels_out, pixels]`): the weight gradient's product.
///
/// Over a long row of pixels it is a product of few rows and long columns, which a general GEMM
/// runs at a loss: it repacks the long `col` operand, which took twice the multiply's time at the
/// main job's shape. With [`DOT_MIN_PIXELS`] or more, on x86-64 with AVX2 and FMA, it is dot
/// products instead ([`add_products_avx2`]); otherwise (small planes, where the GEMM's blocking
/// pays, or another CPU) the `gemm` crate's product.
fn add_products(acc: &mut [f32], dy: &[f32], dy_stride: usize, col: &[f32], channels_out: usize, pixels: usize) {
    let columns = acc.len() / channels_out;
    assert!(col.len() >= columns * pixels && dy.len() >= (channels_out - 1) * dy_stride + pixels, "weight gradient: operand sizes");
    #[cfg(target_arch = "x86_64")]
    if pixels >= DOT_MIN_PIXELS && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { add_products_avx2(acc, dy, dy_stride, col, channels_out, columns, pixels) };
        return;
    }
    // SAFETY: acc is [channels_out, columns] row-major; dy's rows start `dy_stride` apart and
    // the first `pixels` of each are read; col is [columns, pixels] (sizes asserted above).
    unsafe { gemm_add(channels_out, columns, pixels, (acc.as_mut_ptr(), columns), (dy.as_ptr(), dy_stride), (col.as_ptr(), pixels, 1)) };
}

/// `dst += lhs * rhs` for an `m x k` times `k x n` product, on this thread, with the `gemm`
/// crate: `dst` and `lhs` are row-major with the row strides given, `rhs` is given with its column
/// and row strides.
///
/// # Safety
/// Every pointer must address a live buffer that holds the matrix its strides describe.
unsafe fn gemm_add(m: usize, n: usize, k: usize, dst: (*mut f32, usize), lhs: (*const f32, usize), rhs: (*const f32, usize, usize)) {
    // SAFETY: the caller's promise.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            1,
            dst.1 as isize,
            true,
            lhs.0,
            1,
            lhs.1 as isize,
            rhs.0,
            rhs.1 as isize,
            rhs.2 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// [`add_products`] as dot products in blocks of 4 rows of `dy` against 2 rows of `col`, each
/// pair summed in an eight-lane register, read straight from both operands. Each lane sums its
/// pixels in order and the lanes are added in order: the result depends on the data alone.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn add_products_avx2(acc: &mut [f32], dy: &[f32], dy_stride: usize, col: &[f32], channels_out: usize, columns: usize, pixels: usize) {
    // Each pair of `col` rows meets 16 rows of `dy` while it is in the first-level cache; those 16
    // rows stay in the second while every pair of `col` passes.
    for channels in (0..channels_out).step_by(16).map(|c| c..(c + 16).min(channels_out)) {
        let mut j = 0;
        while j < columns {
            let cols = if columns - j >= 2 { 2 } else { 1 };
            let mut co = channels.start;
            while co < channels.end {
                let rows = if channels.end - co >= 4 { 4 } else { 1 };
                let block = Block { co, j, dy_stride, pixels, columns };
                match (rows, cols) {
                    (4, 2) => block.add::<4, 2>(acc, dy, col),
                    (4, _) => block.add::<4, 1>(acc, dy, col),
                    (_, 2) => block.add::<1, 2>(acc, dy, col),
                    _ => block.add::<1, 1>(acc, dy, col),
                }
                co += rows;
            }
            j += cols;
        }
    }
}

/// Where one block of [`add_products_avx2`] reads and writes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Block {
    co: usize,
    j: usize,
    dy_stride: usize,
    pixels: usize,
    columns: usize,
}

#[cfg(target_arch = "x86_64")]
impl Block {
    /// Adds the dot products of `dy` rows `co..co + R` with `col` rows `j..j + C` to `acc`.
    #[target_feature(enable = "avx2,fma")]
    fn add<const R: usize, const C: usize>(self, acc: &mut [f32], dy: &[f32], col: &[f32]) {
        use std::arch::x86_64::{__m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps};
        const LANES: usize = 8;
        let mut dy_rows = [&dy[..0]; R];
        for (r, row) in dy_rows.iter_mut().enumerate() {
            *row = &dy[(self.co + r) * self.dy_stride..][..self.pixels];
        }
        let mut col_rows = [&col[..0]; C];
        for (k, row) in col_rows.iter_mut().enumerate() {
            *row = &col[(self.j + k) * self.pixels..][..self.pixels];
        }
        let mut sums: [[__m256; C]; R] = [[_mm256_setzero_ps(); C]; R];
        let full = self.pixels / LANES * LANES;
        for p in (0..full).step_by(LANES) {
            let mut b: [__m256; C] = [_mm256_setzero_ps(); C];
            for (b, row) in b.iter_mut().zip(&col_rows) {
                // SAFETY: p + LANES <= pixels, the row's length.
                *b = unsafe { _mm256_loadu_ps(row.as_ptr().add(p)) };
            }
            for (sums, row) in sums.iter_mut().zip(&dy_rows) {
                // SAFETY: as above.
                let a = unsafe { _mm256_loadu_ps(row.as_ptr().add(p)) };
                for (sum, &b) in sums.iter_mut().zip(&b) {
                    *sum = _mm256_fmadd_ps(a, b, *sum);
                }
            }
        }
        for (r, (sums, dy_row)) in sums.iter().zip(&dy_rows).enumerate() {
            for (k, (&sum, col_row)) in sums.iter().zip(&col_rows).enumerate() {
                let mut lanes = [0.0f32; LANES];
                // SAFETY: lanes holds LANES floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
                // The last pixels (fewer than LANES) go to the first lanes.
                for (lane, (&a, &b)) in lanes.iter_mut().zip(dy_row[full..].iter().zip(&col_row[full..])) {
                    *lane = a.mul_add(b, *lane);
                }
                acc[(self.co + r) * self.columns + self.j + k] += lanes.iter().sum::<f32>();
            }
        }
    }
}

thread_local! {
    /// Each thread's im2col buffer, kept between calls: every use overwrites what it reads, so it
    /// is neither freed nor zeroed per tile.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer, at least `len` long (its old contents remain: `f`
/// writes before it reads). `f` must not call back into rayon, which could run another unit
/// that wants the buffer on this thread.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        f(&mut scratch[..len])
    })
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
        let ours = weight_grad(&x, &dy, &g);
        let expected = reference(&x, &dy, &g);
        for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
            assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{g:?}: element {i}: {a} against {e}");
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
        check(geometry(1, 2, 18, [24, 24], 3, 1, 1)); // dot products over two groups of channels (16 and 2)
        for g in same_width_cases() {
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

    /// Shapes for the forward and the input gradient.
    fn cases() -> Vec<ConvGeometry> {
        vec![
            geometry(1, 1, 1, [5, 7], 3, 1, 1),
            geometry(3, 11, 5, [9, 6], 3, 1, 1),
            geometry(2, 4, 3, [7, 9], 3, 2, 1), // strided (the forward only)
            geometry(2, 5, 2, [6, 5], 1, 1, 0),
            geometry(2, 3, 4, [130, 3], 3, 1, 1),
            geometry(1, 2, 3, [6, 6], 3, 1, 0), // no padding: the output is smaller than the input
            ConvGeometry { output: [4, 5], ..geometry(2, 3, 2, [5, 6], 2, 1, 0) }, // an even kernel
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in cases().into_iter().chain(same_width_cases()) {
            let x = values(g.batch * g.channels_in * g.input_pixels(), 1);
            let w = values(g.channels_out * g.channels_in * g.kernel_len(), 3);
            let bias = values(g.channels_out, 9);
            let ours = forward(&x, &w, &bias, &g);
            let expected = reference_forward(&x, &w, &bias, &g);
            assert_eq!(ours.len(), expected.len());
            for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
                assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{g:?}: element {i}: {a} against {e}");
            }
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
            let ours = input_grad(&dy, &w, &g);
            let expected = reference_input_grad(&dy, &w, &g);
            assert_eq!(ours.len(), expected.len());
            for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
                assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{g:?}: element {i}: {a} against {e}");
            }
        }
    }

    #[test]
    fn bias_grad_sums_every_sample_and_pixel() {
        let g = geometry(2, 1, 2, [2, 2], 1, 1, 0);
        assert_eq!(bias_grad(&[1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0], &g), vec![12.0, 44.0]);
    }
}
