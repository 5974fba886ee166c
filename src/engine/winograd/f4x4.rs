//! The transforms of F(4x4, 3x3) (Lavin and Gray, section 4.2): each 4x4 block of output pixels
//! from a 6x6 block of input pixels with 36 multiplications per pair of channels instead of 144,
//! 4x fewer, with
//!
//! ```text
//! Bᵀ = [[4, 0, −5, 0, 1, 0],      G = [[ 1/4,     0,    0],      Aᵀ = [[1, 1,  1, 1,  1, 0],
//!       [0, −4, −4, 1, 1, 0],           [−1/6, −1/6, −1/6],            [0, 1, −1, 2, −2, 0],
//!       [0, 4, −4, −1, 1, 0],           [−1/6,  1/6, −1/6],            [0, 1,  1, 4,  4, 0],
//!       [0, −2, −1, 2, 1, 0],           [1/24, 1/12,  1/6],            [0, 1, −1, 8, −8, 1]]
//!       [0, 2, −1, −2, 1, 0],           [1/24, −1/12, 1/6],
//!       [0, 4, 0, −5, 0, 1]]            [   0,     0,    1]]
//! ```
//!
//! Each two-dimensional transform is its one-dimensional one along the columns, then along the
//! rows. Positions are numbered ξ = 6i + j in a 6x6 tile.

use super::super::simd::simd_kernel;
use super::{WEIGHT_LANES, transform_weight_lanes};
use crate::engine::vector::{Transform, Vector, separable};

/// The columns of G: entry ξ of column k is `G[ξ, k]`.
pub(super) const G_COLUMNS: [[f32; 6]; 3] = [
    [0.25, -1.0 / 6.0, -1.0 / 6.0, 1.0 / 24.0, 1.0 / 24.0, 0.0],
    [0.0, -1.0 / 6.0, 1.0 / 6.0, 1.0 / 12.0, -1.0 / 12.0, 0.0],
    [0.0, -1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0],
];

simd_kernel! {
    /// `G g Gᵀ` of one input channel's 3x3 taps (each a row of `out` filters' weights) into the
    /// 36 rows of `out`.
    pub(super) fn transform_weights(taps: [&[f32]; 9], out: &mut [f32]) {
        transform_weight_lanes(taps, out, weight_column)
    }
}

/// `G g` of one column of three taps, [`WEIGHT_LANES`] filters each.
#[inline(always)]
fn weight_column([g0, g1, g2]: [[f32; WEIGHT_LANES]; 3]) -> [[f32; WEIGHT_LANES]; 6] {
    let mut u = [[0.0f32; WEIGHT_LANES]; 6];
    for o in 0..WEIGHT_LANES {
        let (a, b, c) = (g0[o], g1[o], g2[o]);
        u[0][o] = 0.25 * a;
        u[1][o] = -(a + b + c) / 6.0;
        u[2][o] = -(a - b + c) / 6.0;
        u[3][o] = a / 24.0 + b / 12.0 + c / 6.0;
        u[4][o] = a / 24.0 - b / 12.0 + c / 6.0;
        u[5][o] = c;
    }
    u
}

/// `Bᵀ d` of one column of six.
struct InputColumn;

impl<V: Vector> Transform<V, 6, 6> for InputColumn {
    #[inline(always)]
    fn column([d0, d1, d2, d3, d4, d5]: [V; 6]) -> [V; 6] {
        let t0 = d2.neg_mul_add(4.0, d4);
        let t1 = d1.neg_mul_add(4.0, d3);
        let t2 = d4.sub(d2);
        let t3 = d3.sub(d1).add(d3.sub(d1));
        [
            d0.mul_add(4.0, d2.neg_mul_add(5.0, d4)),
            t0.add(t1),
            t0.sub(t1),
            t2.add(t3),
            t2.sub(t3),
            d1.mul_add(4.0, d3.neg_mul_add(5.0, d5)),
        ]
    }
}

/// `Bᵀ d B` of one vector of a 6x6 block.
#[inline(always)]
pub(super) fn input<V: Vector>(v: [V; 36]) -> [V; 36] {
    separable::<V, InputColumn, 6, 6, 36, 36>(v)
}

/// `Aᵀ m` of one column of six.
struct OutputColumn;

impl<V: Vector> Transform<V, 6, 4> for OutputColumn {
    #[inline(always)]
    fn column([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        let (s12, d12) = (m1.add(m2), m1.sub(m2));
        let (s34, d34) = (m3.add(m4), m3.sub(m4));
        [
            m0.add(s12).add(s34),
            d34.mul_add(2.0, d12),
            s34.mul_add(4.0, s12),
            d34.mul_add(8.0, d12).add(m5),
        ]
    }
}

/// `Aᵀ m A` of one vector of the 36 products into a 4x4 block.
#[inline(always)]
pub(super) fn output<V: Vector>(m: [V; 36]) -> [V; 16] {
    separable::<V, OutputColumn, 6, 4, 36, 16>(m)
}

/// `A y` of one column of four.
struct GradientColumn;

impl<V: Vector> Transform<V, 4, 6> for GradientColumn {
    #[inline(always)]
    fn column([y0, y1, y2, y3]: [V; 4]) -> [V; 6] {
        let (even, odd) = (y0.add(y2), y1.add(y3));
        let wide_even = y2.mul_add(4.0, y0);
        let wide_odd = y3.mul_add(8.0, y1.add(y1));
        [
            y0,
            even.add(odd),
            even.sub(odd),
            wide_even.add(wide_odd),
            wide_even.sub(wide_odd),
            y3,
        ]
    }
}

/// `A dY Aᵀ` of one vector of a 4x4 output gradient into the 36 positions.
#[inline(always)]
pub(super) fn gradient<V: Vector>(dy: [V; 16]) -> [V; 36] {
    separable::<V, GradientColumn, 4, 6, 16, 36>(dy)
}
