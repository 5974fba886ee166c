//! The weight gradient of a 3x3 stride-1 convolution with one pixel of zero padding, through
//! F(2x2, 3x3) as well (Lavin and Gray, section 5: the same transforms serve the backward pass).
//!
//! A tile's outputs are `Aᵀ [U ⊙ V] A` with `U = G g Gᵀ` and `V = Bᵀ d B`, linear in `U`. So
//! with `dY` the tile's 2x2 output gradient, `∂L/∂U[ξ] = Σ_tiles V[ξ]ᵀ · (A dY Aᵀ)[ξ]` (16 matrix
//! products `[in, tiles] · [tiles, out]`, 2.25x fewer multiplications than im2col's
//! `[9 · in, pixels] · [pixels, out]`) and `∂L/∂g = Gᵀ (∂L/∂U) G`. Output pixels past the map's
//! border take a zero gradient, which is exact: they were never outputs.
//!
//! The tiles are cut into a fixed number of groups, each summing into a partial `∂L/∂U` of its own;
//! the partials are added in a fixed order, so the result does not depend on which thread ran
//! what (the same pool size gives the same bits). The 16 products run in f32 on gemm
//! ([`F32Products`]) or, for a training step in bf16, on whatever [`Products`] the caller brings.

use std::ops::Range;

use rayon::prelude::*;

use super::{lanes, tile_corner, transform_input};
use crate::engine::groups::groups;
use crate::engine::map::{Shape, View, grow};
use crate::engine::matmul::matmul_tn;
use crate::engine::packed::runs_here;

/// Tiles transformed together before their 16 products.
const TILE_BLOCK: usize = 64;

/// Fewest input channels for which the transforms cost less than the multiplications they save
/// (GoogLeNet's narrow 3x3s on the "5x5" branches, 16 to 48 channels in, stay on im2col).
pub(crate) const MIN_CHANNELS: usize = 64;

/// Groups of tiles per thread, each with a partial sum.
const GROUPS_PER_THREAD: usize = 2;

/// (Channel, filter) pairs of the weight gradient that one task finishes (the partials summed,
/// then `Gᵀ · G`): 16 rows of them stay in L1.
const SUM_CHUNK: usize = 512;

/// The buffers of one group: a block's transformed inputs and gradients (and the two operands
/// rounded, for products in bf16), its partial `∂L/∂U`.
#[derive(Default)]
struct Group {
    transformed: Vec<f32>,
    rounded: [Vec<u16>; 2],
    partial: Vec<f32>,
}

/// How a group multiplies a block's transformed inputs and gradients, and where the sums of
/// (channel, filter) pairs lie in its partial `∂L/∂U`.
pub(crate) trait Products: Sync {
    /// Floats of one position's partial for `c` channels and `out` filters.
    fn partial_len(&self, c: usize, out: usize) -> usize;

    /// `partial (+)= inputsᵀ · gradients` for one position ξ of the 4x4 tile: `inputs` is the
    /// block's `[m, c]` transformed inputs, `gradients` its `[m, out]` transformed gradients;
    /// `rounded` holds buffers for operands in another format.
    #[allow(clippy::too_many_arguments)]
    fn multiply(
        &self,
        inputs: &[f32],
        gradients: &[f32],
        mco: [usize; 3],
        partial: &mut [f32],
        accumulate: bool,
        rounded: &mut [Vec<u16>; 2],
    );

    /// Adds to `u` the sums of the (channel, filter) pairs `pairs`, numbered `channel · out +
    /// filter`, from one position's partial.
    fn add_sums(&self, partial: &[f32], co: [usize; 2], pairs: Range<usize>, u: &mut [f32]);
}

/// f32 products on gemm, each position's partial a row-major `[c, out]`.
pub(crate) struct F32Products;

impl Products for F32Products {
    fn partial_len(&self, c: usize, out: usize) -> usize {
        c * out
    }

    fn multiply(
        &self,
        inputs: &[f32],
        gradients: &[f32],
        [m, c, out]: [usize; 3],
        partial: &mut [f32],
        accumulate: bool,
        _: &mut [Vec<u16>; 2],
    ) {
        let shape = [c, m, out];
        matmul_tn(
            partial, out, inputs, c, gradients, out, shape, accumulate, false,
        );
    }

    fn add_sums(&self, partial: &[f32], _: [usize; 2], pairs: Range<usize>, u: &mut [f32]) {
        u.iter_mut()
            .zip(&partial[pairs])
            .for_each(|(u, &p)| *u += p);
    }
}

/// Reusable buffers, grown on demand and kept between calls.
#[derive(Default)]
pub(crate) struct WeightGradientScratch {
    groups: Vec<Group>,
}

/// `dw` (`[3 · 3 · in, out]`, rows in (kernel row, kernel column, channel) order, overwritten) =
/// ∂L/∂w of the 3x3/1 convolution with padding 1 of `input` whose output gradient is `dy` (dense
/// `[pixels, out]`, the input's pixels), the products run by `products`. Returns false, leaving
/// `dw` alone, where the packed kernel's AVX-512 does not run or the input has fewer than
/// [`MIN_CHANNELS`] channels.
pub(crate) fn weight_gradient(
    input: View<f32>,
    dy: &[f32],
    out: usize,
    dw: &mut [f32],
    scratch: &mut WeightGradientScratch,
    products: &impl Products,
) -> bool {
    let s = input.shape;
    let c = s.c;
    if !runs_here() || c < MIN_CHANNELS {
        return false;
    }
    assert_eq!(dy.len(), s.pixels() * out, "output gradient length");
    assert_eq!(dw.len(), 9 * c * out, "weight gradient length");
    let tiles = s.n * s.h.div_ceil(2) * s.w.div_ceil(2);
    if tiles == 0 {
        dw.fill(0.0);
        return true;
    }
    if dw.is_empty() {
        return true;
    }
    let partial_len = products.partial_len(c, out);
    let len = 16 * partial_len;
    let (per_group, count) = groups(tiles.div_ceil(TILE_BLOCK), GROUPS_PER_THREAD);
    let groups = &mut scratch.groups;
    if groups.len() < count {
        groups.resize_with(count, Default::default);
    }
    let output = s.with_channels(out);
    groups[..count]
        .par_iter_mut()
        .enumerate()
        .for_each(|(g, group)| {
            grow(&mut group.partial, len);
            let first = g * per_group * TILE_BLOCK;
            let last = ((g + 1) * per_group * TILE_BLOCK).min(tiles);
            for (b, t0) in (first..last).step_by(TILE_BLOCK).enumerate() {
                let m = TILE_BLOCK.min(last - t0);
                grow(&mut group.transformed, 16 * m * (c + out) + c);
                let (inputs, rest) = group.transformed.split_at_mut(16 * m * c);
                let (gradients, zeros) = rest.split_at_mut(16 * m * out);
                let zeros = &mut zeros[..c];
                zeros.fill(0.0);
                for (i, t) in (t0..t0 + m).enumerate() {
                    transform_input(input, zeros, t, i, m, inputs);
                    transform_output_gradient(View::dense(dy, output), t, i, m, gradients);
                }
                for xi in 0..16 {
                    products.multiply(
                        &inputs[xi * m * c..][..m * c],
                        &gradients[xi * m * out..][..m * out],
                        [m, c, out],
                        &mut group.partial[xi * partial_len..][..partial_len],
                        b > 0,
                        &mut group.rounded,
                    );
                }
            }
        });
    let partials = &groups[..count];
    // Each task finishes a chunk of (channel, filter) pairs in all 9 taps: the partials summed
    // into the chunk's 16 values of ∂L/∂U, then ∂L/∂g[ky, kx] = Σ_ξν G[ξ, ky] · G[ν, kx] · ∂L/∂U[ξν].
    let taps = c * out;
    let mut tap_chunks: Vec<_> = dw
        .chunks_mut(taps)
        .map(|t| t.chunks_mut(SUM_CHUNK))
        .collect();
    let chunks: Vec<[&mut [f32]; 9]> = (0..taps.div_ceil(SUM_CHUNK))
        .map(|_| std::array::from_fn(|tap| tap_chunks[tap].next().expect("9 equal taps")))
        .collect();
    chunks
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut chunk)| {
            let (offset, len) = (i * SUM_CHUNK, chunk[0].len());
            let mut u = vec![0.0f32; 16 * len];
            for partial in partials {
                for (xi, u) in u.chunks_exact_mut(len).enumerate() {
                    let p = &partial.partial[xi * partial_len..][..partial_len];
                    products.add_sums(p, [c, out], offset..offset + len, u);
                }
            }
            for (tap, d) in chunk.iter_mut().enumerate() {
                d.fill(0.0);
                for (xi, &row) in G_COLUMNS[tap / 3].iter().enumerate() {
                    for (nu, &col) in G_COLUMNS[tap % 3].iter().enumerate() {
                        let weight = row * col;
                        if weight != 0.0 {
                            let u = &u[(xi * 4 + nu) * len..][..len];
                            d.iter_mut().zip(u).for_each(|(d, &u)| *d += weight * u);
                        }
                    }
                }
            }
        });
    true
}

/// The columns of G of F(2x2, 3x3), `[[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`: entry ξ of
/// column k is `G[ξ, k]`.
const G_COLUMNS: [[f32; 4]; 3] = [
    [1.0, 0.5, 0.5, 0.0],
    [0.0, 0.5, -0.5, 0.0],
    [0.0, 0.5, 0.5, 1.0],
];

/// `A dY Aᵀ` of tile `t`'s 2x2 output gradient (zero past the border) into row `i` of each of the
/// 16 `[count, out]` matrices of `out`, with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`.
fn transform_output_gradient(dy: View<f32>, t: usize, i: usize, count: usize, out: &mut [f32]) {
    let s: Shape = dy.shape;
    let n = s.c;
    let (image, y, x) = tile_corner(s, t);
    let d: [Option<&[f32]>; 4] = std::array::from_fn(|ab| {
        let (y, x) = (y + ab / 2, x + ab % 2);
        (y < s.h && x < s.w).then(|| &dy.pixel(image, y, x)[..n])
    });
    assert!(i < count && out.len() >= 16 * count * n);
    // SAFETY: weight_gradient runs only where the packed kernel, and so AVX-512F, runs; row `i`
    // of each of the 16 `[count, n]` matrices lies inside `out`, and every pixel holds `n` values.
    unsafe { transform_output_gradient_avx512(d, out.as_mut_ptr().add(i * n), count * n, n) };
}

/// Gradient transform of `n` channels, 16 at a time; a missing pixel reads as zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_output_gradient_avx512(
    d: [Option<&[f32]>; 4],
    out: *mut f32,
    matrix: usize,
    n: usize,
) {
    use std::arch::x86_64::*;
    for ch in (0..n).step_by(16) {
        let mask = lanes(n - ch);
        // SAFETY: the loads and stores are masked to the `n - ch` channels left of each row, and
        // the caller vouches for the 16 rows of `n` values `matrix` floats apart from `out`.
        unsafe {
            let v: [__m512; 4] = d.map(|pixel| match pixel {
                Some(pixel) => _mm512_maskz_loadu_ps(mask, pixel.as_ptr().add(ch)),
                None => _mm512_setzero_ps(),
            });
            let zero = _mm512_setzero_ps();
            // A dY: rows combined (dY[a][b] is v[2a + b]).
            let r = [
                [v[0], v[1]],
                [_mm512_add_ps(v[0], v[2]), _mm512_add_ps(v[1], v[3])],
                [_mm512_sub_ps(v[0], v[2]), _mm512_sub_ps(v[1], v[3])],
                [_mm512_sub_ps(zero, v[2]), _mm512_sub_ps(zero, v[3])],
            ];
            // (A dY) Aᵀ: columns combined.
            for (a, [p, q]) in r.into_iter().enumerate() {
                let values = [
                    p,
                    _mm512_add_ps(p, q),
                    _mm512_sub_ps(p, q),
                    _mm512_sub_ps(zero, q),
                ];
                for (b, value) in values.into_iter().enumerate() {
                    let row = out.add((a * 4 + b) * matrix + ch);
                    _mm512_mask_storeu_ps(row, mask, value);
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_output_gradient_avx512(
    _: [Option<&[f32]>; 4],
    _: *mut f32,
    _: usize,
    _: usize,
) {
    unreachable!("the Winograd weight gradient runs only where AVX-512F runs")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{values, window_taps};
    use super::{F32Products, WeightGradientScratch, weight_gradient};
    use crate::engine::map::{Shape, View};

    /// `Σ_pixels x[pixel + (ky, kx) − 1, c] · dy[pixel, o]` in f64.
    fn direct(x: &[f32], s: Shape, dy: &[f32], out: usize) -> Vec<f64> {
        let mut dw = vec![0.0; 9 * s.c * out];
        window_taps(s, |p, q, tap| {
            for c in 0..s.c {
                for o in 0..out {
                    dw[(tap * s.c + c) * out + o] += x[q * s.c + c] as f64 * dy[p * out + o] as f64;
                }
            }
        });
        dw
    }

    #[test]
    fn matches_the_direct_sum_in_f64() {
        // Odd sides (tiles past the border), one pixel, more tiles than a block and than the
        // groups of two threads, channels and filters not multiples of 16, no filters at all.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut scratch = WeightGradientScratch::default();
        for (n, h, w, c, out) in [
            (1, 7, 7, 64, 40),
            (3, 17, 17, 72, 50),
            (1, 1, 1, 64, 5),
            (2, 14, 9, 97, 17),
            (2, 5, 4, 64, 0),
        ] {
            let s = Shape { n, h, w, c };
            let x = values(s.len(), 1);
            let dy = values(s.pixels() * out, 2);
            let mut dw = vec![f32::NAN; 9 * c * out];
            let ran = pool.install(|| {
                weight_gradient(
                    View::dense(&x, s),
                    &dy,
                    out,
                    &mut dw,
                    &mut scratch,
                    &F32Products,
                )
            });
            if !ran {
                eprintln!(
                    "SKIPPED: this CPU has no AVX-512F, the Winograd gradient never runs here"
                );
                return;
            }
            let want = direct(&x, s, &dy, out);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (&got, &exact)) in dw.iter().zip(&want).enumerate() {
                assert!(
                    (got as f64 - exact).abs() < 1e-5 * scale,
                    "[{n}, {h}, {w}, {c}] -> {out}: weight {i}: {got} vs {exact}"
                );
            }
        }
    }
}
