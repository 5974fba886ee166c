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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::separable;

    /// `Bᵀ d` of one column of six.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn input_column([d0, d1, d2, d3, d4, d5]: [__m512; 6]) -> [__m512; 6] {
        let (four, five) = (_mm512_set1_ps(4.0), _mm512_set1_ps(5.0));
        let t0 = _mm512_fnmadd_ps(four, d2, d4);
        let t1 = _mm512_fnmadd_ps(four, d1, d3);
        let t2 = _mm512_sub_ps(d4, d2);
        let t3 = _mm512_add_ps(_mm512_sub_ps(d3, d1), _mm512_sub_ps(d3, d1));
        [
            _mm512_fmadd_ps(four, d0, _mm512_fnmadd_ps(five, d2, d4)),
            _mm512_add_ps(t0, t1),
            _mm512_sub_ps(t0, t1),
            _mm512_add_ps(t2, t3),
            _mm512_sub_ps(t2, t3),
            _mm512_fmadd_ps(four, d1, _mm512_fnmadd_ps(five, d3, d5)),
        ]
    }

    /// `Bᵀ d B` of 16 lanes of a 6x6 block.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn input(v: [__m512; 36]) -> [__m512; 36] {
        separable(v, |d| input_column(d))
    }

    /// `Aᵀ m` of one column of six.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn output_column([m0, m1, m2, m3, m4, m5]: [__m512; 6]) -> [__m512; 4] {
        let (s12, d12) = (_mm512_add_ps(m1, m2), _mm512_sub_ps(m1, m2));
        let (s34, d34) = (_mm512_add_ps(m3, m4), _mm512_sub_ps(m3, m4));
        [
            _mm512_add_ps(_mm512_add_ps(m0, s12), s34),
            _mm512_fmadd_ps(_mm512_set1_ps(2.0), d34, d12),
            _mm512_fmadd_ps(_mm512_set1_ps(4.0), s34, s12),
            _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), d34, d12), m5),
        ]
    }

    /// `Aᵀ m A` of 16 lanes of the 36 products into a 4x4 block.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn output(m: [__m512; 36]) -> [__m512; 16] {
        separable(m, |m| output_column(m))
    }

    /// `A y` of one column of four.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gradient_column([y0, y1, y2, y3]: [__m512; 4]) -> [__m512; 6] {
        let (even, odd) = (_mm512_add_ps(y0, y2), _mm512_add_ps(y1, y3));
        let wide_even = _mm512_fmadd_ps(_mm512_set1_ps(4.0), y2, y0);
        let wide_odd = _mm512_fmadd_ps(_mm512_set1_ps(8.0), y3, _mm512_add_ps(y1, y1));
        [
            y0,
            _mm512_add_ps(even, odd),
            _mm512_sub_ps(even, odd),
            _mm512_add_ps(wide_even, wide_odd),
            _mm512_sub_ps(wide_even, wide_odd),
            y3,
        ]
    }

    /// `A dY Aᵀ` of 16 lanes of a 4x4 output gradient into the 36 positions.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn gradient(dy: [__m512; 16]) -> [__m512; 36] {
        separable(dy, |y| gradient_column(y))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use avx512::{gradient, input, output};
