//! The weight gradient of a 3x3 stride-1 convolution with one pixel of zero padding, through
//! F(2x2, 3x3) or F(4x4, 3x3) as well (Lavin and Gray, section 5: the same transforms serve the
//! backward pass).
//!
//! A tile's outputs are `Aᵀ [U ⊙ V] A` with `U = G g Gᵀ` and `V = Bᵀ d B`, linear in `U`. So
//! with `dY` the tile's output gradient, `∂L/∂U[ξ] = Σ_tiles V[ξ]ᵀ · (A dY Aᵀ)[ξ]` (one matrix
//! product `[in, tiles] · [tiles, out]` per position ξ, 2.25x or 4x fewer multiplications than
//! im2col's `[9 · in, pixels] · [pixels, out]`) and `∂L/∂g = Gᵀ (∂L/∂U) G`. Output pixels past
//! the map's border take a zero gradient, which is exact: they were never outputs.
//!
//! The tiles are cut into a fixed number of groups, each summing into a partial `∂L/∂U` of its own;
//! the partials are added in a fixed order, so the result does not depend on which thread ran
//! what (the same pool size gives the same bits). The products run in f32 on gemm
//! ([`F32Products`]) or, for a training step in bf16, on whatever [`Products`] the caller brings.

use std::ops::Range;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::{Tiling, f4x4, resized, tile_corner, transform_input};
use crate::engine::groups::groups;
use crate::engine::map::{Shape, View, grow};
use crate::engine::matmul::matmul_tn;
use crate::engine::simd::simd_kernel;
use crate::engine::vector::{Isa, Transform, Vector, on_isa_vectors, separable};

/// Tiles transformed together before their products: the reduction dimension of each product.
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

    /// `partial (+)= inputsᵀ · gradients` for one position ξ of the input block: `inputs` is the
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
        add_scaled(u, 1.0, &partial[pairs]);
    }
}

simd_kernel! {
    /// `sum += weight · part`, element by element over `sum` (a weight of 1 adds `part` exactly).
    pub(crate) fn add_scaled(sum: &mut [f32], weight: f32, part: &[f32]) {
        sum.iter_mut().zip(part).for_each(|(s, &p)| *s += weight * p);
    }
}

/// Reusable buffers, grown on demand and kept between calls.
#[derive(Default)]
pub(crate) struct WeightGradientScratch {
    groups: Vec<Group>,
}

/// `dw` (`[3 · 3 · in, out]`, rows in (kernel row, kernel column, channel) order, overwritten) =
/// ∂L/∂w of the 3x3/1 convolution with padding 1 of `input` whose output gradient is `dy` (dense
/// `[pixels, out]`, the input's pixels), through `tiling`, the products run by `products`.
/// Returns false, leaving `dw` alone, where the packed kernel's instructions (AVX-512F, or AVX2
/// and FMA) do not run or the input has fewer than [`MIN_CHANNELS`] channels.
pub(crate) fn weight_gradient(
    input: View<f32>,
    dy: &[f32],
    out: usize,
    dw: &mut [f32],
    scratch: &mut WeightGradientScratch,
    products: &impl Products,
    tiling: Tiling,
) -> bool {
    let s = input.shape;
    let c = s.c;
    let Some(isa) = Isa::here().filter(|_| c >= MIN_CHANNELS) else {
        return false;
    };
    assert_eq!(dy.len(), s.pixels() * out, "output gradient length");
    assert_eq!(dw.len(), 9 * c * out, "weight gradient length");
    let tiles = tiling.tiles(s);
    if tiles == 0 {
        dw.fill(0.0);
        return true;
    }
    if dw.is_empty() {
        return true;
    }
    let partial_len = products.partial_len(c, out);
    let positions = tiling.positions();
    let len = positions * partial_len;
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
                grow(&mut group.transformed, positions * m * (c + out) + c);
                let (inputs, rest) = group.transformed.split_at_mut(positions * m * c);
                let (gradients, zeros) = rest.split_at_mut(positions * m * out);
                let zeros = &mut zeros[..c];
                zeros.fill(0.0);
                let dy = View::dense(dy, output);
                for (i, t) in (t0..t0 + m).enumerate() {
                    transform_input(isa, tiling, input, zeros, t, i, m, inputs);
                    transform_output_gradient(isa, tiling, dy, t, i, m, gradients);
                }
                for xi in 0..positions {
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
    // into the chunk's values of ∂L/∂U, one per position, then
    // ∂L/∂g[ky, kx] = Σ_ξν G[ξ, ky] · G[ν, kx] · ∂L/∂U[ξν].
    let g_columns: [&[f32]; 3] = match tiling {
        Tiling::F2x2 => G_COLUMNS.each_ref().map(|c| c.as_slice()),
        Tiling::F4x4 => f4x4::G_COLUMNS.each_ref().map(|c| c.as_slice()),
    };
    let side = g_columns[0].len();
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
        .for_each_init(Vec::new, |u, (i, mut chunk)| {
            let (offset, len) = (i * SUM_CHUNK, chunk[0].len());
            u.clear();
            u.resize(positions * len, 0.0);
            for partial in partials {
                for (xi, u) in u.chunks_exact_mut(len).enumerate() {
                    let p = &partial.partial[xi * partial_len..][..partial_len];
                    products.add_sums(p, [c, out], offset..offset + len, u);
                }
            }
            for (tap, d) in chunk.iter_mut().enumerate() {
                d.fill(0.0);
                for (xi, &row) in g_columns[tap / 3].iter().enumerate() {
                    for (nu, &col) in g_columns[tap % 3].iter().enumerate() {
                        let weight = row * col;
                        if weight != 0.0 {
                            add_scaled(d, weight, &u[(xi * side + nu) * len..][..len]);
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

/// `A dY Aᵀ` of tile `t`'s output gradient (zero past the border) into row `i` of each position's
/// `[count, out]` matrix of `out`, on `isa`'s vectors.
///
/// # Panics
/// Where `isa` does not run here.
fn transform_output_gradient(
    isa: Isa,
    tiling: Tiling,
    dy: View<f32>,
    t: usize,
    i: usize,
    count: usize,
    out: &mut [f32],
) {
    let s: Shape = dy.shape;
    let n = s.c;
    let side = tiling.side();
    let (image, y, x) = tile_corner(s, t, side);
    let pixel = |q: usize| {
        let (y, x) = (y + q / side, x + q % side);
        (y < s.h && x < s.w).then(|| &dy.pixel(image, y, x)[..n])
    };
    assert!(i < count && out.len() >= tiling.positions() * count * n);
    assert!(isa.runs_here(), "{isa:?} does not run here");
    let out = out[i * n..].as_mut_ptr();
    // SAFETY (both): `isa` runs here; row `i` of each position's `[count, n]` matrix lies inside
    // `out`, and every pixel holds `n` values.
    match tiling {
        Tiling::F2x2 => unsafe {
            let d = std::array::from_fn(pixel);
            transform_output_gradient_f32::<4, 16>(isa, d, out, count * n, n)
        },
        Tiling::F4x4 => unsafe {
            let d = std::array::from_fn(pixel);
            transform_output_gradient_f32::<16, 36>(isa, d, out, count * n, n)
        },
    }
}

on_isa_vectors! {
    /// Gradient transform of `n` channels from a tiling's `Q` output pixels to its `P` positions
    /// (a missing pixel reads as zeros), on `isa`'s vectors.
    ///
    /// # Safety
    /// `isa` runs here; every pixel holds `n` values, and the `P` rows of `n` values `matrix`
    /// floats apart from `out` are writable.
    unsafe fn transform_output_gradient_f32<const Q: usize, const P: usize>(
        d: [Option<&[f32]>; Q],
        out: *mut f32,
        matrix: usize,
        n: usize,
    ) => transform_output_gradient_vectors
}

/// `A dY Aᵀ` of `n` channels, a vector at a time.
///
/// # Safety
/// As [`transform_output_gradient_f32`], on the instructions of `V`.
#[inline(always)]
unsafe fn transform_output_gradient_vectors<V: Vector, const Q: usize, const P: usize>(
    d: [Option<&[f32]>; Q],
    out: *mut f32,
    matrix: usize,
    n: usize,
) {
    for ch in (0..n).step_by(V::LANES) {
        let lanes = V::LANES.min(n - ch);
        // SAFETY: the loads and stores cover the `lanes` channels left of each row, and the
        // caller vouches for the P rows of `n` values `matrix` floats apart from `out`.
        unsafe {
            let zero = V::zero();
            let v: [V; Q] = std::array::from_fn(|q| match d[q] {
                Some(pixel) => V::load(pixel.as_ptr().add(ch), lanes),
                None => zero,
            });
            let values: [V; P] = match Q {
                4 => resized(gradient_transform(resized(v))),
                16 => resized(f4x4::gradient(resized(v))),
                _ => unreachable!("a tiling of {Q} output pixels"),
            };
            for (ab, value) in values.into_iter().enumerate() {
                value.store(out.add(ab * matrix + ch), lanes);
            }
        }
    }
}

/// `A y` of one column of two, with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]` of F(2x2, 3x3).
struct GradientColumn;

impl<V: Vector> Transform<V, 2, 4> for GradientColumn {
    #[inline(always)]
    fn column([y0, y1]: [V; 2]) -> [V; 4] {
        [y0, y0.add(y1), y0.sub(y1), y1.neg()]
    }
}

/// `A dY Aᵀ` of one vector of a 2x2 output gradient into the 16 positions of F(2x2, 3x3).
#[inline(always)]
fn gradient_transform<V: Vector>(v: [V; 4]) -> [V; 16] {
    separable::<V, GradientColumn, 2, 4, 4, 16>(v)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{values, window_taps};
    use super::{F32Products, WeightGradientScratch, transform_output_gradient, weight_gradient};
    use crate::engine::map::{Shape, View};
    use crate::engine::vector::Isa;
    use crate::engine::winograd::{Tiling, transform_input, transform_output};

    /// The f32 transforms of both tilings (input, output, and this module's output gradient)
    /// give the same bits on AVX-512 as on AVX2: every lane computes alike on zmm and ymm
    /// vectors, the ragged last vector of channels included. The other tests check one ISA,
    /// the widest, against f64 sums.
    #[test]
    fn transforms_give_the_same_bits_on_every_isa() {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| isa.runs_here())
            .collect();
        if isas.len() < 2 {
            eprintln!("SKIPPED: this CPU runs {isas:?} of AVX-512F and AVX2, nothing to compare");
            return;
        }
        // 37 channels: two full zmm vectors and 5 lanes, four full ymm vectors and 5 lanes.
        let s = Shape {
            n: 2,
            h: 9,
            w: 7,
            c: 37,
        };
        let x = values(s.len(), 4);
        let stride = 48;
        for tiling in [Tiling::F2x2, Tiling::F4x4] {
            let (tiles, positions) = (tiling.tiles(s), tiling.positions());
            let block = tiling.side() * tiling.side() * stride;
            let products = values(positions * tiles * stride, 5);
            let results: Vec<[Vec<f32>; 3]> = isas
                .iter()
                .map(|&isa| {
                    let zeros = vec![0.0; s.c];
                    let mut inputs = vec![f32::NAN; positions * tiles * s.c];
                    let mut outputs = vec![f32::NAN; tiles * block];
                    let mut gradients = vec![f32::NAN; positions * tiles * s.c];
                    for t in 0..tiles {
                        let map = View::dense(&x, s);
                        transform_input(isa, tiling, map, &zeros, t, t, tiles, &mut inputs);
                        let out = &mut outputs[t * block..][..block];
                        transform_output(isa, tiling, &products, t, tiles, stride, out);
                        transform_output_gradient(isa, tiling, map, t, t, tiles, &mut gradients);
                    }
                    [inputs, outputs, gradients]
                })
                .collect();
            for (i, name) in ["input", "output", "output gradient"]
                .into_iter()
                .enumerate()
            {
                let [widest, avx2] = [&results[0][i], &results[1][i]];
                assert!(
                    widest.iter().all(|v| v.is_finite()),
                    "{tiling:?} {name}: unwritten"
                );
                let differ = widest
                    .iter()
                    .zip(avx2)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differ, 0,
                    "{tiling:?} {name}: values that differ between ISAs"
                );
            }
        }
    }

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
        for ((n, h, w, c, out), tiling) in [
            (1, 7, 7, 64, 40),
            (3, 17, 17, 72, 50),
            (1, 1, 1, 64, 5),
            (2, 14, 9, 97, 17),
            (2, 5, 4, 64, 0),
            (2, 22, 15, 64, 33),
        ]
        .into_iter()
        .flat_map(|shape| [Tiling::F2x2, Tiling::F4x4].map(|tiling| (shape, tiling)))
        {
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
                    tiling,
                )
            });
            if !ran {
                eprintln!(
                    "SKIPPED: this CPU has neither AVX-512F nor AVX2, the Winograd gradient never runs here"
                );
                return;
            }
            let want = direct(&x, s, &dy, out);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (&got, &exact)) in dw.iter().zip(&want).enumerate() {
                assert!(
                    (got as f64 - exact).abs() < 1e-5 * scale,
                    "{tiling:?} [{n}, {h}, {w}, {c}] -> {out}: weight {i}: {got} vs {exact}"
                );
            }
        }
    }
}
