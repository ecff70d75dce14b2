//! The 3x3 stride-1 convolution of the wide layers by Winograd's minimal filtering F(2x2, 3x3).
//!
//! Each 2x2 tile of the output is `A^T [(G g G^T) ⊙ (B^T d B)] A`, where `d` is the 4x4 patch of
//! the padded input the tile sees and `g` the 3x3 kernel: per input and output channel pair, 16
//! products a tile instead of 36 (2.25x fewer multiplications). Summed over the input channels,
//! the element-wise products become 16 matrix products, one per position `xi` of the 4x4 tile:
//! `M[xi] (co x tiles) = U[xi] (co x ci) * V[xi] (ci x tiles)`, run by the `gemm` crate; the
//! input transform (`V`) and the output transform (`M` to the output, plus the bias) are
//! vectorised over the tiles of a row, 16 at a time on AVX-512 and 8 on AVX2 (the tiles' even and
//! odd columns taken apart by lane permutes, and put back together the same way; both sets do
//! the same arithmetic in the same order, so they agree bit for bit).
//!
//! It pays where the products dominate: many channels (the transforms cost a few additions per
//! value, the products `16 * co` multiplications per input value). [`applies`] says where, from
//! measurements. The work is split into units of one sample's block of tile rows, each writing
//! its own part of the output and summing every element in one fixed order: the result does not
//! depend on the thread count.
//!
//! Accuracy: the transforms only add, subtract and halve, so each output is the direct sum's
//! terms regrouped; the f32 error grows with the channel count as the direct sum's does, by a
//! small constant factor (the tests bound it against an f64 reference).

use rayon::prelude::*;

use super::buffers::{SharedOut, with_pooled, with_scratch};
use super::geometry::ConvGeometry;
use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::isa::{load_lanes_256, store_lanes_256};
use super::matmul::product;

/// Input (and output) channels and output columns from which a layer takes this path, by
/// instruction set. Measured (`cargo bench --bench conv -- --threads 1`, the fastest of 4 rounds
/// each) against what the layer takes otherwise. On AVX-512 that is the direct forward
/// (`conv::Taps::forward`): from 64 channels and 16 columns (8 tiles a row, half a vector). On
/// AVX2 (no direct forward: im2col + the `gemm` crate) Winograd pays sooner: from 32 channels
/// and 8 columns the forward took 0.6x (128 channels at 32x32) to 0.98x (64 -> 128 at 8x8) of
/// im2col's time, the input gradient 0.6x to 0.9x (one noisy cell, 256 channels at 8x8, 1.26x
/// where its forward was 0.85x), the weight gradient 0.7x to 0.9x, level at 64 channels on
/// 32x32 (see [`applies_to_weight_grad`] for where it loses). From 8 or 16 channels it lost: the
/// 16-channel 128x128 forward 1.8x, the 8-channel 64x64 one 1.5x.
const MIN_CHANNELS: [usize; 2] = [64, 32];
const MIN_WIDTH: [usize; 2] = [16, 8];

/// The column of [`MIN_CHANNELS`] and [`MIN_WIDTH`] for `isa` (AVX-512, otherwise AVX2).
fn threshold(table: [usize; 2], isa: Isa) -> usize {
    if on_avx512(isa) { table[0] } else { table[1] }
}

/// Whether `isa`, capped by what the CPU has, is AVX-512: the rules measured on it apply.
fn on_avx512(isa: Isa) -> bool {
    isa.min(Isa::detected()) == Isa::Avx512
}

/// Channels under which, on AVX2, the weight gradient of a plane wider than
/// [`WEIGHT_GRAD_MAX_WIDTH`] keeps its dot products: 32 channels at 64x64 took 1.5x their time
/// by Winograd (its transformed operands, kept for the whole batch, stream from memory, where
/// the dot products read the padded input in place); 32 at 16x16 took 0.75x. Between the two
/// (32 channels at 32x32, which the U-Net meets at base 8 on 256x256 inputs) was not measured:
/// the dot products keep it.
const WEIGHT_GRAD_WIDE_CHANNELS: usize = 64;
const WEIGHT_GRAD_MAX_WIDTH: usize = 16;

/// Floats of `V` and `M` a unit keeps (its block of tile rows): they stay in this machine's 2 MiB
/// second-level cache while the 16 products pass over them.
const UNIT_FLOATS: usize = 1 << 18;

/// Tiles a unit takes at least (whole samples of small planes): the products' `n`.
const MIN_UNIT_TILES: usize = 64;

/// Tiles per unit for `channels` input and output channels together.
fn unit_tiles(channels: usize) -> usize {
    (UNIT_FLOATS / (16 * channels)).max(MIN_UNIT_TILES)
}

/// Tiles per AVX-512 vector: 16 lanes of f32 (and the reach past its rows that
/// [`Block::patch_len`] reserves, enough for the AVX2 loads too).
const LANES: usize = 16;

/// Floats between the end of one of a transformed operand's 16 matrices and the start of the next
/// (one cache line): without it the matrices lie a power of two apart in the U-Net's layers (32
/// channels by 256 tiles: 32 KiB), so a transform's 16 streams of stores, one per matrix, all fall
/// in one set of the first- and second-level caches and evict each other.
const MATRIX_SKEW: usize = 16;

/// Where a transformed operand's 16 matrices (`V`, `M` or `E`) lie: row `c` of matrix `xi` starts
/// at `xi * matrix + c * row`.
#[derive(Clone, Copy, Debug)]
struct Matrices {
    row: usize,
    matrix: usize,
}

impl Matrices {
    /// 16 matrices of `rows` rows of `row` floats each, [`MATRIX_SKEW`] apart.
    fn new(rows: usize, row: usize) -> Matrices {
        Matrices { row, matrix: rows * row + MATRIX_SKEW }
    }

    fn len(&self) -> usize {
        16 * self.matrix
    }

    fn at(&self, xi: usize, c: usize) -> usize {
        xi * self.matrix + c * self.row
    }

    /// Matrix `xi`'s `rows` rows.
    fn matrix<'a>(&self, data: &'a [f32], xi: usize, rows: usize) -> &'a [f32] {
        &data[xi * self.matrix..][..rows * self.row]
    }

    /// [`Matrices::matrix`], to write.
    fn matrix_mut<'a>(&self, data: &'a mut [f32], xi: usize, rows: usize) -> &'a mut [f32] {
        &mut data[xi * self.matrix..][..rows * self.row]
    }
}

/// Whether the convolution `g` (its forward, so also its input gradient) takes Winograd's
/// F(2x2, 3x3) on `isa`: where it [`fits`], with enough channels and columns ([`MIN_CHANNELS`]).
pub(super) fn applies(g: &ConvGeometry, isa: Isa) -> bool {
    let min_channels = threshold(MIN_CHANNELS, isa);
    fits(g, isa) && g.channels_in >= min_channels && g.channels_out >= min_channels && g.output[1] >= threshold(MIN_WIDTH, isa)
}

/// Whether the weight gradient of `g` takes it: where the forward does, except on AVX2 for
/// layers of few channels on wide planes ([`WEIGHT_GRAD_WIDE_CHANNELS`]).
pub(super) fn applies_to_weight_grad(g: &ConvGeometry, isa: Isa) -> bool {
    applies(g, isa) && (on_avx512(isa) || g.channels_in.min(g.channels_out) >= WEIGHT_GRAD_WIDE_CHANNELS || g.output[1] <= WEIGHT_GRAD_MAX_WIDTH)
}

/// Whether [`forward`] can run `g` on `isa`: a 3x3 kernel at stride and dilation 1 with a
/// padding of at most 2 on each side, a non-empty output, on AVX-512 or AVX2.
fn fits(g: &ConvGeometry, isa: Isa) -> bool {
    cfg!(target_arch = "x86_64")
        && isa.min(Isa::detected()) >= Isa::Avx2
        && g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.output[0] > 0
        && g.output[1] > 0
}

/// Kernels a block of [`transform_weights`] takes: its 16 rows of `U` are built on the stack and
/// written out as runs of whole cache lines. Written value by value, the 16 rows (`co * ci`
/// floats apart: a power of two times 4 KiB in the U-Net's wide layers, so all in one cache
/// set) thrashed the caches, and the transform took 3% to 9% of a base-32 training step.
const TRANSFORM_BLOCK: usize = 64;

/// `U[xi][co][ci] = (G g G^T)[xi]` for every kernel `g = weight[co, ci]`, with
/// `G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]`. Blocks of
/// [`TRANSFORM_BLOCK`] kernels in parallel.
fn transform_weights(weight: &[f32], channels_out: usize, channels_in: usize) -> Vec<f32> {
    let pairs = channels_out * channels_in;
    assert_eq!(weight.len(), 9 * pairs, "winograd: weight size");
    let mut u: Vec<f32> = Vec::with_capacity(16 * pairs);
    let u_ptr = SharedOut(u.as_mut_ptr());
    let left = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    weight.par_chunks(9 * TRANSFORM_BLOCK).enumerate().for_each(|(block, kernels)| {
        let mut rows = [[0.0f32; TRANSFORM_BLOCK]; 16];
        for (pair, g) in kernels.chunks_exact(9).enumerate() {
            // G g: 4 rows of 3, column by column.
            let columns: [[f32; 4]; 3] = std::array::from_fn(|j| left(g[j], g[3 + j], g[6 + j]));
            for r in 0..4 {
                let row = left(columns[0][r], columns[1][r], columns[2][r]);
                for (s, v) in row.into_iter().enumerate() {
                    rows[r * 4 + s][pair] = v;
                }
            }
        }
        let (first, n) = (block * TRANSFORM_BLOCK, kernels.len() / 9);
        for (xi, row) in rows.iter().enumerate() {
            // SAFETY: u holds 16 * pairs floats; this block alone writes columns first..first + n
            // of each of its 16 rows.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), u_ptr.at(xi * pairs + first), n) };
        }
    });
    // SAFETY: the blocks cover every pair, each writing its columns of all 16 rows.
    unsafe { u.set_len(16 * pairs) };
    u
}

/// The units of `g`'s tiles: one sample's block of tile rows (its `V` and `M` about
/// [`UNIT_FLOATS`]), or, where a sample has fewer than [`MIN_UNIT_TILES`] tiles, several whole
/// samples. The split depends on the shape only.
fn units(g: &ConvGeometry) -> Vec<Block> {
    let (tiles_h, tiles_w) = (g.output[0].div_ceil(2), g.output[1].div_ceil(2));
    let per_sample = tiles_h * tiles_w;
    let unit_tiles = unit_tiles(g.channels_in + g.channels_out);
    let (samples, block_rows) = if per_sample >= unit_tiles {
        (1, (unit_tiles / tiles_w).clamp(1, tiles_h))
    } else {
        (unit_tiles.div_ceil(per_sample).min(g.batch), tiles_h)
    };
    (0..g.batch)
        .step_by(samples)
        .flat_map(|b| {
            (0..tiles_h).step_by(block_rows).map(move |first| Block {
                g: *g,
                b,
                samples: samples.min(g.batch - b),
                first,
                rows: block_rows.min(tiles_h - first),
                tiles_w,
            })
        })
        .collect()
}

/// The convolution `g` (where it [`fits`]) on the kernels of `isa` (at most what the CPU has):
/// `[batch, channels_out, oh, ow]` flattened.
pub(super) fn forward(x: &[f32], weight: &[f32], bias: &[f32], g: &ConvGeometry, isa: Isa) -> Vec<f32> {
    let isa = isa.min(Isa::detected());
    assert!(fits(g, isa), "winograd: {g:?} is not a 3x3 stride-1 convolution this CPU can run here");
    assert!(
        x.len() == g.batch * g.channels_in * g.input[0] * g.input[1]
            && weight.len() == g.channels_out * g.channels_in * 9
            && bias.len() == g.channels_out,
        "winograd: operand sizes"
    );
    let [out_h, out_w] = g.output;
    let (ci, co) = (g.channels_in, g.channels_out);
    let u = transform_weights(weight, co, ci);
    let units = units(g);
    let len = g.batch * co * out_h * out_w;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let out_ptr = SharedOut(out.as_mut_ptr());
    units.par_iter().for_each(|block| {
        let tiles = block.tiles();
        let (v_at, m_at) = (Matrices::new(ci, tiles), Matrices::new(co, tiles));
        let padded_len = block.samples * ci * block.patch_len();
        with_scratch(padded_len + v_at.len() + m_at.len(), |scratch| {
            let (padded, rest) = scratch.split_at_mut(padded_len);
            let (v, m) = rest.split_at_mut(v_at.len());
            block.pad(padded, x);
            // SAFETY: `fits` (asserted above) holds only where the CPU has `isa`, AVX2 at least.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                block.input_transform(isa, SharedOut(v.as_mut_ptr()), v_at, 0, padded)
            };
            for xi in 0..16 {
                product(co, tiles, ci, m_at.matrix_mut(m, xi, co), tiles, (&u[xi * co * ci..][..co * ci], ci, 1), (v_at.matrix(v, xi, ci), tiles, 1));
            }
            // SAFETY: as above; the unit writes output rows `2 * first..` (up to
            // `2 * (first + rows)`, clipped to `oh`) of its samples in every plane, inside the
            // allocation and written by no other unit.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                block.output_transform(isa, out_ptr, m, m_at, bias)
            };
        });
    });
    // SAFETY: the units cover every sample and every tile row, each writing both output rows of
    // its tiles (the second where it lies inside the plane) at every column: all `len` values are
    // initialised.
    unsafe { out.set_len(len) };
    out
}

/// One unit: tile rows `first..first + rows` of samples `b..b + samples`; its tiles are
/// numbered sample by sample, row by row.
#[derive(Clone, Copy)]
struct Block {
    g: ConvGeometry,
    b: usize,
    samples: usize,
    first: usize,
    rows: usize,
    tiles_w: usize,
}

impl Block {
    fn tiles(&self) -> usize {
        self.samples * self.rows * self.tiles_w
    }

    /// Tile rows of a whole sample.
    fn rows_per_sample(&self) -> usize {
        self.g.output[0].div_ceil(2)
    }

    /// Columns of the padded patch: the tiles' 4 columns, 2 apart.
    fn width(&self) -> usize {
        2 * self.tiles_w + 2
    }

    /// Floats of one channel's padded patch: `2 * rows + 2` rows, and the reach of the last
    /// vector's loads past them (two vectors from the last tile chunk's first column, plus 2).
    fn patch_len(&self) -> usize {
        (2 * self.rows + 2) * self.width() + 2 * LANES + 2
    }

    /// The input rows the block sees, padded: `padded[s][c][r][q] = x[b + s, c, 2 * first + r -
    /// pad_h, q - pad_w]`, zero outside the input (and in the tail past the rows).
    fn pad(&self, padded: &mut [f32], x: &[f32]) {
        let ([in_h, in_w], [pad_h, pad_w]) = (self.g.input, self.g.padding);
        let (width, patch) = (self.width(), self.patch_len());
        let plane = in_h * in_w;
        let first_plane = self.b * self.g.channels_in;
        for (c, dst) in padded.chunks_exact_mut(patch).take(self.samples * self.g.channels_in).enumerate() {
            dst.fill(0.0);
            let src = &x[(first_plane + c) * plane..][..plane];
            for r in 0..2 * self.rows + 2 {
                let ih = (2 * self.first + r) as isize - pad_h as isize;
                if ih < 0 || ih >= in_h as isize {
                    continue;
                }
                let cols = in_w.min(width - pad_w);
                dst[r * width + pad_w..][..cols].copy_from_slice(&src[ih as usize * in_w..][..cols]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Block {
    /// `v[v_at.at(xi, c) + first_tile + t] = (B^T d B)[xi]` for each channel `c` and tile
    /// `t` of the block, `d` the tile's 4x4 patch of `padded` ([`Block::pad`]), with
    /// `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`. Sixteen tiles of a row
    /// at a time: the patch rows' columns `2t`, `2t + 1`, `2t + 2` and `2t + 3` for the 16 tiles
    /// are the even and odd lanes of two pairs of loads.
    ///
    /// # Safety
    /// `v` must hold `v_at.len()` floats, 16 matrices of `ci` rows, whose columns
    /// `first_tile..first_tile + tiles()` no one else writes meanwhile; the CPU must have
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn input_transform_512(&self, v: SharedOut, v_at: Matrices, first_tile: usize, padded: &[f32]) {
        use std::arch::x86_64::*;
        let ci = self.g.channels_in;
        let (width, patch) = (self.width(), self.patch_len());
        assert!(first_tile + self.tiles() <= v_at.row && padded.len() >= self.samples * ci * patch, "winograd: input transform sizes");
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for (plane, src) in padded.chunks_exact(patch).take(self.samples * ci).enumerate() {
            let (sample, c) = (plane / ci, plane % ci);
            for i in 0..self.rows {
                for j in (0..self.tiles_w).step_by(LANES) {
                    let mask = lane_mask(self.tiles_w - j);
                    let mut t = [[_mm512_setzero_ps(); 4]; 4];
                    for (r, t) in t.iter_mut().enumerate() {
                        let at = (2 * i + r) * width + 2 * j;
                        // SAFETY: at + 2 + 2 * LANES <= patch_len (the last row starts at
                        // (2 * rows + 1) * width and 2 * j < width).
                        let [a, b, c2, d] = [0, LANES, 2, 2 + LANES].map(|o| unsafe { _mm512_loadu_ps(src.as_ptr().add(at + o)) });
                        let e0 = _mm512_permutex2var_ps(a, even, b);
                        let o0 = _mm512_permutex2var_ps(a, odd, b);
                        let e1 = _mm512_permutex2var_ps(c2, even, d);
                        let o1 = _mm512_permutex2var_ps(c2, odd, d);
                        *t = [_mm512_sub_ps(e0, e1), _mm512_add_ps(o0, e1), _mm512_sub_ps(e1, o0), _mm512_sub_ps(o0, o1)];
                    }
                    let tile = (sample * self.rows + i) * self.tiles_w + j;
                    let [t0, t1, t2, t3] = t;
                    for (s, (((t0, t1), t2), t3)) in t0.into_iter().zip(t1).zip(t2).zip(t3).enumerate() {
                        let rows = [_mm512_sub_ps(t0, t2), _mm512_add_ps(t1, t2), _mm512_sub_ps(t2, t1), _mm512_sub_ps(t1, t3)];
                        for (r, value) in rows.into_iter().enumerate() {
                            let at = v_at.at(r * 4 + s, c) + first_tile + tile;
                            // SAFETY: the mask stores only tiles below tiles_w of this row, the
                            // block's columns of v (the caller's).
                            unsafe { _mm512_mask_storeu_ps(v.at(at), mask, value) };
                        }
                    }
                }
            }
        }
    }

    /// The output of the block's tiles: `A^T m A + bias` for each output channel and tile, `m`
    /// the tile's 4x4 of `M`, with `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`; each tile's two
    /// columns are interleaved back into the output rows by lane permutes.
    ///
    /// # Safety
    /// `out` must hold `[batch, channels_out, oh, ow]`, rows `2 * first..2 * (first + rows)`
    /// (clipped to `oh`) of sample `b` written by no one else; the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn output_transform_512(&self, out: SharedOut, m: &[f32], m_at: Matrices, bias: &[f32]) {
        use std::arch::x86_64::*;
        let co = self.g.channels_out;
        let [out_h, out_w] = self.g.output;
        let tiles = self.tiles();
        assert!(m_at.row == tiles && m.len() >= m_at.len() && bias.len() == co, "winograd: output transform sizes");
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (sample, k) in (0..self.samples).flat_map(|sample| (0..co).map(move |k| (sample, k))) {
            let b = _mm512_set1_ps(bias[k]);
            for i in 0..self.rows {
                let oh = 2 * (self.first + i);
                for j in (0..self.tiles_w).step_by(LANES) {
                    let mask = lane_mask(self.tiles_w - j);
                    let tile = (sample * self.rows + i) * self.tiles_w + j;
                    // SAFETY: the mask reads only tiles below tiles_w of this row, inside m.
                    let m: [__m512; 16] = std::array::from_fn(|xi| unsafe { _mm512_maskz_loadu_ps(mask, m.as_ptr().add(m_at.at(xi, k) + tile)) });
                    let q0: [__m512; 4] = std::array::from_fn(|s| _mm512_add_ps(_mm512_add_ps(m[s], m[4 + s]), m[8 + s]));
                    let q1: [__m512; 4] = std::array::from_fn(|s| _mm512_sub_ps(_mm512_sub_ps(m[4 + s], m[8 + s]), m[12 + s]));
                    let columns = |q: [__m512; 4]| {
                        let left = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(q[0], q[1]), q[2]), b);
                        let right = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(q[1], q[2]), q[3]), b);
                        [_mm512_permutex2var_ps(left, low, right), _mm512_permutex2var_ps(left, high, right)]
                    };
                    let first_col = 2 * j;
                    let masks = [lane_mask(out_w - first_col), lane_mask((out_w - first_col).saturating_sub(LANES))];
                    for (r, q) in [(oh, q0), (oh + 1, q1)] {
                        if r >= out_h {
                            continue;
                        }
                        let row = out.at((((self.b + sample) * co + k) * out_h + r) * out_w + first_col);
                        for (half, value) in columns(q).into_iter().enumerate() {
                            // SAFETY: the mask writes only columns below ow of row r of plane
                            // (b, k), the caller's.
                            unsafe { _mm512_mask_storeu_ps(row.wrapping_add(half * LANES), masks[half], value) };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Block {
    /// The weight gradient's transform of the output gradient: `e[e_at.at(xi, k) + first_tile + t] =
    /// (A dy A^T)[xi]` for each output channel `k` and tile `t` of the block,
    /// `dy` the tile's 2x2 of the output gradient (zero where the tile reaches past the output),
    /// with `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`: the transpose of the output transform, as
    /// the weight gradient of `A^T (U ⊙ V) A` with respect to `U` is `(A dy A^T) ⊙ V`.
    ///
    /// # Safety
    /// As [`Block::input_transform_512`], for 16 matrices of `co` rows in `e`.
    #[target_feature(enable = "avx512f")]
    unsafe fn gradient_transform_512(&self, e: SharedOut, e_at: Matrices, first_tile: usize, dy: &[f32]) {
        use std::arch::x86_64::*;
        let co = self.g.channels_out;
        let [out_h, out_w] = self.g.output;
        assert!(
            first_tile + self.tiles() <= e_at.row && dy.len() >= (self.b + self.samples) * co * out_h * out_w,
            "winograd: gradient transform sizes"
        );
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for (sample, k) in (0..self.samples).flat_map(|sample| (0..co).map(move |k| (sample, k))) {
            let plane = &dy[((self.b + sample) * co + k) * out_h * out_w..][..out_h * out_w];
            for i in 0..self.rows {
                let oh = 2 * (self.first + i);
                for j in (0..self.tiles_w).step_by(LANES) {
                    let first_col = 2 * j;
                    let masks = [lane_mask(out_w - first_col), lane_mask((out_w - first_col).saturating_sub(LANES))];
                    // The tiles' two columns of output row r, as (even, odd) lanes; zero past the
                    // output's last row and column.
                    let columns = |r: usize| {
                        if r >= out_h {
                            return [_mm512_setzero_ps(); 2];
                        }
                        let row = plane[r * out_w..].as_ptr();
                        // SAFETY: the masks read only columns below ow of row r.
                        let [lo, hi] = [0, 1].map(|h| unsafe { _mm512_maskz_loadu_ps(masks[h], row.wrapping_add(first_col + h * LANES)) });
                        [_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi)]
                    };
                    let ([a, b], [c, d]) = (columns(oh), columns(oh + 1));
                    let rows = [
                        [a, b],
                        [_mm512_add_ps(a, c), _mm512_add_ps(b, d)],
                        [_mm512_sub_ps(a, c), _mm512_sub_ps(b, d)],
                        [_mm512_sub_ps(_mm512_setzero_ps(), c), _mm512_sub_ps(_mm512_setzero_ps(), d)],
                    ];
                    let mask = lane_mask(self.tiles_w - j);
                    let tile = (sample * self.rows + i) * self.tiles_w + j;
                    for (r, [p, q]) in rows.into_iter().enumerate() {
                        let values = [p, _mm512_add_ps(p, q), _mm512_sub_ps(p, q), _mm512_sub_ps(_mm512_setzero_ps(), q)];
                        for (s, value) in values.into_iter().enumerate() {
                            let at = e_at.at(r * 4 + s, k) + first_tile + tile;
                            // SAFETY: the mask stores only tiles below tiles_w of this row, the
                            // block's columns of e (the caller's).
                            unsafe { _mm512_mask_storeu_ps(e.at(at), mask, value) };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Block {
    /// [`Block::input_transform_512`] or [`Block::input_transform_256`], as `isa` says.
    ///
    /// # Safety
    /// As the function it calls; `isa` must be AVX2 at least and at most what the CPU has.
    unsafe fn input_transform(&self, isa: Isa, v: SharedOut, v_at: Matrices, first_tile: usize, padded: &[f32]) {
        // SAFETY: the caller's promise.
        unsafe {
            match isa {
                Isa::Avx512 => self.input_transform_512(v, v_at, first_tile, padded),
                _ => self.input_transform_256(v, v_at, first_tile, padded),
            }
        }
    }

    /// [`Block::output_transform_512`] or [`Block::output_transform_256`], as `isa` says.
    ///
    /// # Safety
    /// As the function it calls; `isa` must be AVX2 at least and at most what the CPU has.
    unsafe fn output_transform(&self, isa: Isa, out: SharedOut, m: &[f32], m_at: Matrices, bias: &[f32]) {
        // SAFETY: the caller's promise.
        unsafe {
            match isa {
                Isa::Avx512 => self.output_transform_512(out, m, m_at, bias),
                _ => self.output_transform_256(out, m, m_at, bias),
            }
        }
    }

    /// [`Block::gradient_transform_512`] or [`Block::gradient_transform_256`], as `isa` says.
    ///
    /// # Safety
    /// As the function it calls; `isa` must be AVX2 at least and at most what the CPU has.
    unsafe fn gradient_transform(&self, isa: Isa, e: SharedOut, e_at: Matrices, first_tile: usize, dy: &[f32]) {
        // SAFETY: the caller's promise.
        unsafe {
            match isa {
                Isa::Avx512 => self.gradient_transform_512(e, e_at, first_tile, dy),
                _ => self.gradient_transform_256(e, e_at, first_tile, dy),
            }
        }
    }
}

/// Tiles per vector on AVX2: 8 lanes of f32.
#[cfg(target_arch = "x86_64")]
const LANES_256: usize = 8;

/// The even and odd lanes of the 16 values `a` then `b`: `[a0, a2, .., b4, b6]` and `[a1, a3, ..,
/// b5, b7]` (within each 128-bit half, then the halves' 64-bit pairs put in order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn even_odd_256(a: std::arch::x86_64::__m256, b: std::arch::x86_64::__m256) -> [std::arch::x86_64::__m256; 2] {
    use std::arch::x86_64::*;
    let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
    [order(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)), order(_mm256_shuffle_ps::<0b11_01_11_01>(a, b))]
}

/// The lanes of `left` and `right` interleaved: `[l0, r0, l1, r1, .., l3, r3]` and `[l4, r4, ..,
/// l7, r7]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn interleave_256(left: std::arch::x86_64::__m256, right: std::arch::x86_64::__m256) -> [std::arch::x86_64::__m256; 2] {
    use std::arch::x86_64::*;
    let (low, high) = (_mm256_unpacklo_ps(left, right), _mm256_unpackhi_ps(left, right));
    [_mm256_permute2f128_ps::<0x20>(low, high), _mm256_permute2f128_ps::<0x31>(low, high)]
}

/// The three transforms on AVX2 and FMA, eight tiles of a row at a time: the same arithmetic as
/// the AVX-512 ones, in the same order, so both give the same values bit for bit.
#[cfg(target_arch = "x86_64")]
impl Block {
    /// [`Block::input_transform_512`] on AVX2.
    ///
    /// # Safety
    /// As [`Block::input_transform_512`], with AVX2 and FMA for AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn input_transform_256(&self, v: SharedOut, v_at: Matrices, first_tile: usize, padded: &[f32]) {
        use std::arch::x86_64::*;
        let ci = self.g.channels_in;
        let (width, patch) = (self.width(), self.patch_len());
        assert!(first_tile + self.tiles() <= v_at.row && padded.len() >= self.samples * ci * patch, "winograd: input transform sizes");
        for (plane, src) in padded.chunks_exact(patch).take(self.samples * ci).enumerate() {
            let (sample, c) = (plane / ci, plane % ci);
            for i in 0..self.rows {
                for j in (0..self.tiles_w).step_by(LANES_256) {
                    let n = self.tiles_w - j;
                    let mut t = [[_mm256_setzero_ps(); 4]; 4];
                    for (r, t) in t.iter_mut().enumerate() {
                        let at = (2 * i + r) * width + 2 * j;
                        // SAFETY: at + 2 + 2 * LANES_256 <= patch_len, as for the AVX-512 loads
                        // (which reach 2 * LANES past `at`).
                        let [a, b, c2, d] = [0, LANES_256, 2, 2 + LANES_256].map(|o| unsafe { _mm256_loadu_ps(src.as_ptr().add(at + o)) });
                        let [e0, o0] = even_odd_256(a, b);
                        let [e1, o1] = even_odd_256(c2, d);
                        *t = [_mm256_sub_ps(e0, e1), _mm256_add_ps(o0, e1), _mm256_sub_ps(e1, o0), _mm256_sub_ps(o0, o1)];
                    }
                    let tile = (sample * self.rows + i) * self.tiles_w + j;
                    let [t0, t1, t2, t3] = t;
                    for (s, (((t0, t1), t2), t3)) in t0.into_iter().zip(t1).zip(t2).zip(t3).enumerate() {
                        let rows = [_mm256_sub_ps(t0, t2), _mm256_add_ps(t1, t2), _mm256_sub_ps(t2, t1), _mm256_sub_ps(t1, t3)];
                        for (r, value) in rows.into_iter().enumerate() {
                            let at = v_at.at(r * 4 + s, c) + first_tile + tile;
                            // SAFETY: only the tiles below tiles_w of this row are stored, the
                            // block's columns of v (the caller's).
                            unsafe { store_lanes_256(v.at(at), n, value) };
                        }
                    }
                }
            }
        }
    }

    /// [`Block::output_transform_512`] on AVX2.
    ///
    /// # Safety
    /// As [`Block::output_transform_512`], with AVX2 and FMA for AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn output_transform_256(&self, out: SharedOut, m: &[f32], m_at: Matrices, bias: &[f32]) {
        use std::arch::x86_64::*;
        let co = self.g.channels_out;
        let [out_h, out_w] = self.g.output;
        let tiles = self.tiles();
        assert!(m_at.row == tiles && m.len() >= m_at.len() && bias.len() == co, "winograd: output transform sizes");
        for (sample, k) in (0..self.samples).flat_map(|sample| (0..co).map(move |k| (sample, k))) {
            let b = _mm256_set1_ps(bias[k]);
            for i in 0..self.rows {
                let oh = 2 * (self.first + i);
                for j in (0..self.tiles_w).step_by(LANES_256) {
                    let n = self.tiles_w - j;
                    let tile = (sample * self.rows + i) * self.tiles_w + j;
                    // SAFETY: only the tiles below tiles_w of this row are read, inside m.
                    let m: [__m256; 16] = std::array::from_fn(|xi| unsafe { load_lanes_256(m.as_ptr().wrapping_add(m_at.at(xi, k) + tile), n) });
                    let q0: [__m256; 4] = std::array::from_fn(|s| _mm256_add_ps(_mm256_add_ps(m[s], m[4 + s]), m[8 + s]));
                    let q1: [__m256; 4] = std::array::from_fn(|s| _mm256_sub_ps(_mm256_sub_ps(m[4 + s], m[8 + s]), m[12 + s]));
                    let columns = |q: [__m256; 4]| {
                        let left = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q[0], q[1]), q[2]), b);
                        let right = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q[1], q[2]), q[3]), b);
                        interleave_256(left, right)
                    };
                    let first_col = 2 * j;
                    let columns_left = [out_w - first_col, (out_w - first_col).saturating_sub(LANES_256)];
                    for (r, q) in [(oh, q0), (oh + 1, q1)] {
                        if r >= out_h {
                            continue;
                        }
                        let row = out.at((((self.b + sample) * co + k) * out_h + r) * out_w + first_col);
                        for (half, value) in columns(q).into_iter().enumerate() {
                            // SAFETY: only the columns below ow of row r of plane (b, k) are
                            // written, the caller's.
                            unsafe { store_lanes_256(row.wrapping_add(half * LANES_256), columns_left[half], value) };
                        }
                    }
                }
            }
        }
    }

    /// [`Block::gradient_transform_512`] on AVX2.
    ///
    /// # Safety
    /// As [`Block::gradient_transform_512`], with AVX2 and FMA for AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gradient_transform_256(&self, e: SharedOut, e_at: Matrices, first_tile: usize, dy: &[f32]) {
        use std::arch::x86_64::*;
        let co = self.g.channels_out;
        let [out_h, out_w] = self.g.output;
        assert!(
            first_tile + self.tiles() <= e_at.row && dy.len() >= (self.b + self.samples) * co * out_h * out_w,
            "winograd: gradient transform sizes"
        );
        for (sample, k) in (0..self.samples).flat_map(|sample| (0..co).map(move |k| (sample, k))) {
            let plane = &dy[((self.b + sample) * co + k) * out_h * out_w..][..out_h * out_w];
            for i in 0..self.rows {
                let oh = 2 * (self.first + i);
                for j in (0..self.tiles_w).step_by(LANES_256) {
                    let first_col = 2 * j;
                    let columns_left = [out_w - first_col, (out_w - first_col).saturating_sub(LANES_256)];
                    // The tiles' two columns of output row r, as (even, odd) lanes; zero past the
                    // output's last row and column.
                    let columns = |r: usize| {
                        if r >= out_h {
                            return [_mm256_setzero_ps(); 2];
                        }
                        let row = plane[r * out_w..].as_ptr();
                        // SAFETY: only the columns below ow of row r are read.
                        let [lo, hi] = [0, 1].map(|h| unsafe { load_lanes_256(row.wrapping_add(first_col + h * LANES_256), columns_left[h]) });
                        even_odd_256(lo, hi)
                    };
                    let ([a, b], [c, d]) = (columns(oh), columns(oh + 1));
                    let zero = _mm256_setzero_ps();
                    let rows = [
                        [a, b],
                        [_mm256_add_ps(a, c), _mm256_add_ps(b, d)],
                        [_mm256_sub_ps(a, c), _mm256_sub_ps(b, d)],
                        [_mm256_sub_ps(zero, c), _mm256_sub_ps(zero, d)],
                    ];
                    let n = self.tiles_w - j;
                    let tile = (sample * self.rows + i) * self.tiles_w + j;
                    for (r, [p, q]) in rows.into_iter().enumerate() {
                        let values = [p, _mm256_add_ps(p, q), _mm256_sub_ps(p, q), _mm256_sub_ps(zero, q)];
                        for (s, value) in values.into_iter().enumerate() {
                            let at = e_at.at(r * 4 + s, k) + first_tile + tile;
                            // SAFETY: only the tiles below tiles_w of this row are stored, the
                            // block's columns of e (the caller's).
                            unsafe { store_lanes_256(e.at(at), n, value) };
                        }
                    }
                }
            }
        }
    }
}

/// The gradient of the loss with respect to the weight of the convolution `g` (where it
/// [`fits`]), `[channels_out, channels_in, 3, 3]` flattened, from the input `x` and the output
/// gradient `dy`: `dU[xi] (co x ci) = E[xi] (co x tiles) * V[xi]^T (tiles x ci)` over every tile
/// of the batch (16 products, one unit each, so every element is summed in one order), then
/// `dW = G^T dU G` for each kernel. `V` is the forward's input transform, `E` the output
/// gradient's ([`Block::gradient_transform`]); both are kept for the whole batch.
pub(super) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry, isa: Isa) -> Vec<f32> {
    let isa = isa.min(Isa::detected());
    assert!(fits(g, isa), "winograd: {g:?} is not a 3x3 stride-1 convolution this CPU can run here");
    let [out_h, out_w] = g.output;
    let (ci, co) = (g.channels_in, g.channels_out);
    assert!(x.len() == g.batch * ci * g.input[0] * g.input[1] && dy.len() == g.batch * co * out_h * out_w, "winograd: operand sizes");
    let total = g.batch * out_h.div_ceil(2) * out_w.div_ceil(2);
    let units = units(g);
    let (v_at, e_at) = (Matrices::new(ci, total), Matrices::new(co, total));
    let du: Vec<Vec<f32>> = with_pooled(v_at.len(), |v| {
        with_pooled(e_at.len(), |e| {
            // Every element is written below (the units cover every tile), so old values are
            // all overwritten.
            let (v_ptr, e_ptr) = (SharedOut(v.as_mut_ptr()), SharedOut(e.as_mut_ptr()));
            units.par_iter().for_each(|block| {
                let first_tile = block.b * block.rows_per_sample() * block.tiles_w + block.first * block.tiles_w;
                with_scratch(block.samples * ci * block.patch_len(), |padded| {
                    block.pad(padded, x);
                    // SAFETY: `fits` (asserted above) holds only where the CPU has `isa`;
                    // v and e hold 16 matrices of ci and co rows of `total` tiles, of which the unit
                    // writes its own columns (units cover disjoint tiles).
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        block.input_transform(isa, v_ptr, v_at, first_tile, padded);
                        block.gradient_transform(isa, e_ptr, e_at, first_tile, dy);
                    }
                });
            });
            let (v, e) = (&*v, &*e);
            (0..16)
                .into_par_iter()
                .map(|xi| {
                    let mut du = vec![0.0f32; co * ci];
                    product(co, ci, total, &mut du, ci, (e_at.matrix(e, xi, co), total, 1), (v_at.matrix(v, xi, ci), 1, total));
                    du
                })
                .collect()
        })
    });
    // dW = G^T dU G, with (G^T u) = [u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3].
    let back = |u: [f32; 4]| [u[0] + 0.5 * (u[1] + u[2]), 0.5 * (u[1] - u[2]), 0.5 * (u[1] + u[2]) + u[3]];
    let mut grad = vec![0.0f32; co * ci * 9];
    grad.par_chunks_exact_mut(9).enumerate().for_each(|(pair, kernel)| {
        let rows: [[f32; 3]; 4] = std::array::from_fn(|r| back(std::array::from_fn(|s| du[r * 4 + s][pair])));
        for b in 0..3 {
            let column = back(std::array::from_fn(|r| rows[r][b]));
            for a in 0..3 {
                kernel[a * 3 + b] = column[a];
            }
        }
    });
    grad
}

/// The lanes below `n` (all 16 from 16 up).
fn lane_mask(n: usize) -> u16 {
    if n >= LANES { u16::MAX } else { ((1u32 << n) - 1) as u16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction sets this CPU runs the path on (none off x86-64 or without AVX2: the
    /// tests then check nothing, and `conv` takes im2col there).
    fn isas() -> Vec<Isa> {
        [Isa::Avx2, Isa::Avx512].into_iter().filter(|&isa| fits(&geometry(1, 1, 1, [3, 3], 1), isa) && isa <= Isa::detected()).collect()
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    fn geometry(batch: usize, ci: usize, co: usize, [h, w]: [usize; 2], padding: usize) -> ConvGeometry {
        ConvGeometry {
            batch,
            channels_in: ci,
            channels_out: co,
            input: [h, w],
            output: [h + 2 * padding - 2, w + 2 * padding - 2],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [padding, padding],
            dilation: [1, 1],
        }
    }

    /// Calls `term(output, weight, input)` with the indices of every product of the convolution's
    /// definition: one per output value, input channel and tap that falls inside the input.
    fn for_each_term(g: &ConvGeometry, mut term: impl FnMut(usize, usize, usize)) {
        let ([in_h, in_w], [out_h, out_w], [pad_h, pad_w]) = (g.input, g.output, g.padding);
        for b in 0..g.batch {
            for co in 0..g.channels_out {
                for (oh, ow) in (0..out_h).flat_map(|oh| (0..out_w).map(move |ow| (oh, ow))) {
                    for (ci, kh, kw) in (0..g.channels_in).flat_map(|ci| (0..9).map(move |t| (ci, t / 3, t % 3))) {
                        let (ih, iw) = ((oh + kh) as isize - pad_h as isize, (ow + kw) as isize - pad_w as isize);
                        if ih < 0 || iw < 0 || ih >= in_h as isize || iw >= in_w as isize {
                            continue;
                        }
                        term(
                            ((b * g.channels_out + co) * out_h + oh) * out_w + ow,
                            ((co * g.channels_in + ci) * 3 + kh) * 3 + kw,
                            ((b * g.channels_in + ci) * in_h + ih as usize) * in_w + iw as usize,
                        );
                    }
                }
            }
        }
    }

    /// The convolution by its definition in f64, and beside each output the sum of its terms'
    /// magnitudes (`|bias| + sum |x * w|`), which bounds its rounding error.
    fn reference(x: &[f32], w: &[f32], bias: &[f32], g: &ConvGeometry) -> Vec<(f64, f64)> {
        let plane = g.output[0] * g.output[1];
        let mut out: Vec<(f64, f64)> = (0..g.batch * g.channels_out * plane)
            .map(|i| (bias[i / plane % g.channels_out] as f64, (bias[i / plane % g.channels_out] as f64).abs()))
            .collect();
        for_each_term(g, |o, k, i| {
            let term = x[i] as f64 * w[k] as f64;
            out[o] = (out[o].0 + term, out[o].1 + term.abs());
        });
        out
    }

    /// The weight gradient by its definition in f64, each beside its terms' magnitude.
    fn reference_weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<(f64, f64)> {
        let mut grad = vec![(0.0f64, 0.0f64); g.channels_out * g.channels_in * 9];
        for_each_term(g, |o, k, i| {
            let term = x[i] as f64 * dy[o] as f64;
            grad[k] = (grad[k].0 + term, grad[k].1 + term.abs());
        });
        grad
    }

    /// Rounding bound of every output, in its terms' magnitude (see the forward's test).
    const TOLERANCE: f64 = 16.0 * f32::EPSILON as f64;

    /// Odd sizes, one-pixel planes, padding 0 to 2, batch 1 to 13, channels 1 to 80 (the
    /// transforms do not depend on the channel count; the products' blocking does), rows of more
    /// than 16 tiles (a second, masked chunk of lanes: 16 and 3 on AVX-512, 8, 8 and 3 on AVX2),
    /// several units of tile rows with a short last one, units of several whole samples.
    fn cases() -> Vec<ConvGeometry> {
        vec![
            geometry(1, 1, 1, [1, 1], 1),     // one pixel: every tap but the centre's in the padding
            geometry(2, 3, 5, [7, 9], 1),     // odd sizes: half tiles on the last row and column
            geometry(1, 2, 3, [6, 6], 0),     // no padding
            geometry(3, 4, 2, [5, 8], 2),     // padding 2: the output larger than the input
            geometry(2, 5, 7, [9, 37], 1),    // 19 tiles a row: full chunks of lanes and a masked one
            geometry(1, 64, 64, [32, 32], 1), // the wide layers' shape
            geometry(2, 70, 80, [41, 40], 1), // several units of tile rows, the last one short
            geometry(2, 64, 65, [1, 1], 1),   // one-pixel planes with many channels
            geometry(1, 3, 2, [2, 40], 1),    // one tile row
            geometry(13, 2, 3, [5, 5], 1),    // small planes: units of whole samples (8, then a short 5)
        ]
    }

    /// Every output against the definition within `TOLERANCE` of its terms' magnitudes, on
    /// [`cases`].
    ///
    /// The tolerance: the input transform adds up to 4 values twice, the weight transform halves
    /// sums of 3 twice, the output transform adds up to 9 products of those: each term of an
    /// output passes through a handful of roundings more than the direct sum's, each at most one
    /// f32 epsilon (1.2e-7) of a partial sum no larger than a few times the terms' magnitude. The
    /// bound, 16 epsilons of that magnitude, leaves room over the worst seen (under 2, printed
    /// for the record) while a wrong tap or tile (an error of a whole term) is far outside it.
    #[test]
    fn forward_matches_the_definition() {
        if isas().is_empty() {
            eprintln!("this CPU has no AVX2: Winograd's path is not taken here");
            return;
        }
        let mut worst: f64 = 0.0;
        for (isa, g) in isas().into_iter().flat_map(|isa| cases().into_iter().map(move |g| (isa, g))) {
            let x = values(g.batch * g.channels_in * g.input[0] * g.input[1], 1);
            let w = values(g.channels_out * g.channels_in * 9, 3);
            let bias = values(g.channels_out, 9);
            let ours = forward(&x, &w, &bias, &g, isa);
            let expected = reference(&x, &w, &bias, &g);
            assert_eq!(ours.len(), expected.len(), "{g:?}");
            for (i, (&a, &(e, magnitude))) in ours.iter().zip(&expected).enumerate() {
                let error = (a as f64 - e).abs();
                worst = worst.max(error / magnitude.max(f64::MIN_POSITIVE));
                assert!(error <= TOLERANCE * magnitude, "{isa:?} {g:?}: element {i}: {a} against {e} (terms' magnitude {magnitude})");
            }
        }
        eprintln!("worst error: {:.1} epsilons of the terms' magnitudes", worst / f32::EPSILON as f64);
    }

    /// The weight gradient against the definition, on the forward's cases: its transforms are
    /// the forward's transposed (`dW = G^T [(A dy A^T) ⊙ V] G`), with as many roundings a term,
    /// but each element is a sum over every tile of the batch (up to 840 here) where the forward
    /// sums over the channels: a sum of `n` f32 terms errs by about `sqrt(n)` epsilons of their
    /// magnitude (29 for 840; `n` at worst), so the bound is 64 (the worst seen is under 10).
    /// What the output transform masks (tiles past the last row and column) must here be zeros,
    /// which the odd sizes check.
    #[test]
    fn weight_grad_matches_the_definition() {
        let mut worst: f64 = 0.0;
        for (isa, g) in isas().into_iter().flat_map(|isa| cases().into_iter().map(move |g| (isa, g))) {
            let x = values(g.batch * g.channels_in * g.input[0] * g.input[1], 1);
            let dy = values(g.batch * g.channels_out * g.output[0] * g.output[1], 11);
            let ours = weight_grad(&x, &dy, &g, isa);
            let expected = reference_weight_grad(&x, &dy, &g);
            assert_eq!(ours.len(), expected.len(), "{g:?}");
            for (i, (&a, &(e, magnitude))) in ours.iter().zip(&expected).enumerate() {
                let error = (a as f64 - e).abs();
                worst = worst.max(error / magnitude.max(f64::MIN_POSITIVE));
                assert!(error <= 4.0 * TOLERANCE * magnitude, "{isa:?} {g:?}: element {i}: {a} against {e} (terms' magnitude {magnitude})");
            }
        }
        eprintln!("worst error: {:.1} epsilons of the terms' magnitudes", worst / f32::EPSILON as f64);
    }

    /// The units split work, not sums: the same output at 1 thread and 2, bit for bit.
    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let g = geometry(2, 64, 64, [40, 23], 1);
        let (x, w, bias) = (values(2 * 64 * 40 * 23, 5), values(64 * 64 * 9, 6), values(64, 7));
        let dy = values(2 * 64 * 40 * 23, 8);
        for isa in isas() {
            let on = |threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (y, dw) = pool.install(|| (forward(&x, &w, &bias, &g, isa), weight_grad(&x, &dy, &g, isa)));
                y.into_iter().chain(dw).map(f32::to_bits).collect::<Vec<_>>()
            };
            assert_eq!(on(1), on(2), "{isa:?}");
        }
    }

    /// The AVX2 transforms do the AVX-512 ones' arithmetic in the same order (and the products
    /// are the `gemm` crate's either way): the same values bit for bit, on the cases' odd sizes
    /// and masked lanes. Runs where the CPU has AVX-512; elsewhere the tests above check AVX2
    /// against the definition.
    #[test]
    fn avx2_and_avx512_agree_bit_for_bit() {
        if Isa::detected() < Isa::Avx512 {
            eprintln!("this CPU has no AVX-512: nothing to compare the AVX2 transforms with");
            return;
        }
        for g in cases() {
            let x = values(g.batch * g.channels_in * g.input[0] * g.input[1], 1);
            let (w, bias) = (values(g.channels_out * g.channels_in * 9, 3), values(g.channels_out, 9));
            let dy = values(g.batch * g.channels_out * g.output[0] * g.output[1], 11);
            let on = |isa| {
                let (y, dw) = (forward(&x, &w, &bias, &g, isa), weight_grad(&x, &dy, &g, isa));
                y.into_iter().chain(dw).map(f32::to_bits).collect::<Vec<_>>()
            };
            assert!(on(Isa::Avx2) == on(Isa::Avx512), "{g:?}");
        }
    }

    /// Which layers take the path, by instruction set, as measured (see [`MIN_CHANNELS`]).
    #[test]
    fn the_layers_that_take_it_depend_on_the_instruction_set() {
        let detected = Isa::detected();
        if detected >= Isa::Avx2 {
            assert!(applies(&geometry(8, 32, 32, [16, 16], 1), Isa::Avx2) && applies(&geometry(8, 64, 128, [8, 8], 1), Isa::Avx2));
            assert!(!applies(&geometry(8, 16, 16, [128, 128], 1), Isa::Avx2), "16 channels keep im2col");
            assert!(applies_to_weight_grad(&geometry(8, 32, 32, [16, 16], 1), Isa::Avx2));
            let wide = geometry(4, 32, 32, [64, 64], 1);
            assert!(applies(&wide, Isa::Avx2) && !applies_to_weight_grad(&wide, Isa::Avx2), "32 channels at 64x64: dot products");
            assert!(applies_to_weight_grad(&geometry(8, 64, 64, [32, 32], 1), Isa::Avx2));
        }
        if detected == Isa::Avx512 {
            assert!(!applies(&geometry(8, 32, 32, [16, 16], 1), Isa::Avx512), "the direct forward keeps 32 channels");
            assert!(applies_to_weight_grad(&geometry(8, 64, 64, [32, 32], 1), Isa::Avx512));
            assert!(!applies(&geometry(4, 256, 256, [8, 8], 1), Isa::Avx512), "8 columns: under half a vector");
        }
        assert!(!applies(&geometry(8, 64, 64, [32, 32], 1), Isa::Portable));
    }

    /// The weight transform against `G g G^T` written out for one kernel.
    #[test]
    fn weight_transform_is_g_g_gt() {
        // One kernel, and 5 x 29 kernels: two whole blocks of TRANSFORM_BLOCK and a partial one.
        // Small integers: every entry of G g G^T (quarters of integer sums) is exact in f32.
        for (co, ci) in [(1, 1), (5, 29)] {
            let weight: Vec<f32> = (0..co * ci * 9).map(|i| (i * 7 % 13) as f32 - 6.0).collect();
            let u = transform_weights(&weight, co, ci);
            let big_g = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
            for (pair, g) in weight.chunks_exact(9).enumerate() {
                for r in 0..4 {
                    for s in 0..4 {
                        let mut e = 0.0f64;
                        for a in 0..3 {
                            for b in 0..3 {
                                e += big_g[r][a] * g[a * 3 + b] as f64 * big_g[s][b];
                            }
                        }
                        assert_eq!(u[(r * 4 + s) * co * ci + pair] as f64, e, "U[{r}][{s}] of kernel {pair} of {co}x{ci}");
                    }
                }
            }
        }
    }

    #[test]
    fn lane_masks() {
        assert_eq!(lane_mask(0), 0);
        assert_eq!(lane_mask(3), 0b111);
        assert_eq!(lane_mask(16), u16::MAX);
        assert_eq!(lane_mask(40), u16::MAX);
    }
}
