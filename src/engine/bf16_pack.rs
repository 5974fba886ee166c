//! f32 matrices rounded to bf16 (nearest even) into the layouts that AMX's tiles load
//! ([`super::amx`]), for products whose operands both change at every call (the training step's):
//! a left operand as whole tiles of rows, a right operand as tiles of (k, k+1) pairs, the same
//! layout as the packed weights of [`super::bf16::Bf16Weights`].
//!
//! Where the CPU has AVX512-BF16, 16 or 32 values at a time are rounded with `VCVTNE2PS2BF16`;
//! elsewhere one at a time with `half`, to the same bits.

use half::bf16;

use super::bf16::{B_TILE, TILE_COLS, TILE_K, TILE_ROWS};
use super::map::grow;

/// A row-major f32 matrix: `rows` rows of `cols` values, `stride` values apart.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    stride: usize,
}

impl<'a> Matrix<'a> {
    /// The matrix at the start of `data`, which must hold all its rows.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, stride: usize) -> Self {
        assert!(stride >= cols, "rows overlap");
        if rows > 0 {
            assert!(data.len() >= (rows - 1) * stride + cols, "matrix too short");
        }
        Self {
            data,
            rows,
            cols,
            stride,
        }
    }

    fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.stride..][..self.cols]
    }
}

/// Rows and row length of a left operand of `m` rows of `k` values: whole tiles of 16 rows, rows
/// of whole 32-value tile rows.
pub(crate) fn left_layout(m: usize, k: usize) -> (usize, usize) {
    (m.next_multiple_of(TILE_ROWS), k.next_multiple_of(TILE_K))
}

/// Values of a right operand of `k` rows of `n` values: column blocks of 16, each `k / 32`
/// tiles (both rounded up).
pub(crate) fn right_len(k: usize, n: usize) -> usize {
    n.div_ceil(TILE_COLS) * k.div_ceil(TILE_K) * B_TILE
}

/// `a` as a left operand ([`left_layout`]) in `out`, zeros past its rows and columns.
pub(crate) fn pack_left(a: Matrix, out: &mut Vec<u16>) {
    let (rows, row_len) = left_layout(a.rows, a.cols);
    grow(out, rows * row_len);
    let out = &mut out[..rows * row_len];
    for (r, line) in out.chunks_exact_mut(row_len).enumerate() {
        if r >= a.rows {
            line.fill(0);
            continue;
        }
        let row = a.row(r);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            // SAFETY: the CPU has the instructions; `line` holds `row` rounded up to 32.
            unsafe { x86::round_row(row, line) };
            continue;
        }
        round_into(row, &mut line[..row.len()]);
        line[row.len()..].fill(0);
    }
}

/// `aᵀ` (`a` being `[k, m]`) as a left operand of `m` rows of `k` values ([`left_layout`]) in
/// `out`, zeros past its rows and columns.
pub(crate) fn pack_left_transposed(a: Matrix, out: &mut Vec<u16>) {
    let (k, m) = (a.rows, a.cols);
    let (rows, row_len) = left_layout(m, k);
    grow(out, rows * row_len);
    let out = &mut out[..rows * row_len];
    out.fill(0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has the instructions; `out` holds `rows` rows of `row_len` values,
        // rows >= m and row_len >= k rounded up to an even number.
        unsafe { x86::round_transposed(a, row_len, out) };
        return;
    }
    for p in 0..k {
        for (i, &v) in a.row(p).iter().enumerate() {
            out[i * row_len + p] = bf16::from_f32(v).to_bits();
        }
    }
}

/// `b` (`[k, n]`) as a right operand in `out`: column block after column block, each `k / 32`
/// tiles of 16 rows of (k, k+1) pairs for 16 columns, zeros past its rows and columns.
pub(crate) fn pack_right(b: Matrix, out: &mut Vec<u16>) {
    let (k, n) = (b.rows, b.cols);
    let k_blocks = k.div_ceil(TILE_K);
    let len = right_len(k, n);
    grow(out, len);
    let out = &mut out[..len];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has the instructions; `out` holds `right_len(k, n)` values.
        unsafe { x86::round_pairs(b, k_blocks, out) };
        return;
    }
    out.fill(0);
    for row in 0..k {
        for (col, &v) in b.row(row).iter().enumerate() {
            let tile = (col / TILE_COLS * k_blocks + row / TILE_K) * B_TILE;
            let at = tile + (row % TILE_K / 2) * 2 * TILE_COLS + (col % TILE_COLS) * 2 + row % 2;
            out[at] = bf16::from_f32(v).to_bits();
        }
    }
}

fn round_into(values: &[f32], out: &mut [u16]) {
    out.iter_mut()
        .zip(values)
        .for_each(|(o, &v)| *o = bf16::from_f32(v).to_bits());
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{B_TILE, Matrix, TILE_COLS, TILE_K, TILE_ROWS};

    /// Up to 16 values from `values[at..]`, zeros past its end.
    #[inline(always)]
    unsafe fn load16(values: &[f32], at: usize) -> __m512 {
        let left = values.len().saturating_sub(at).min(16);
        let mask: __mmask16 = ((1u32 << left) - 1) as __mmask16;
        // SAFETY: the mask reads only values[at..at + left].
        unsafe { _mm512_maskz_loadu_ps(mask, values.as_ptr().wrapping_add(at)) }
    }

    /// The 16 values of `lo` and of `hi` rounded to bf16 and interleaved: lo₀, hi₀, lo₁, hi₁, …
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    fn pairs(lo: __m512, hi: __m512) -> __m512i {
        // SAFETY: both are 512-bit vectors.
        let both: __m512i = unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo)) };
        let order = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        _mm512_permutexvar_epi16(order, both)
    }

    /// `row` rounded into `line`, zeros after it; `line` is at least `row` rounded up to 32.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn round_row(row: &[f32], line: &mut [u16]) {
        assert!(line.len() >= row.len().next_multiple_of(32));
        for at in (0..line.len()).step_by(32) {
            // SAFETY: `at + 32 <= line.len()`; loads past `row` read zeros.
            unsafe {
                let (lo, hi) = (load16(row, at), load16(row, at + 16));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(line.as_mut_ptr().add(at) as *mut __m512i, v);
            }
        }
    }

    /// `aᵀ` rounded into the zeroed `out` (rows of `row_len`): two rows of `a` at a time become
    /// (k, k+1) pairs scattered down 16 rows of `out`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn round_transposed(a: Matrix, row_len: usize, out: &mut [u16]) {
        let (k, m) = (a.rows, a.cols);
        assert!(row_len.is_multiple_of(2) && row_len >= k && out.len() >= m * row_len);
        let down = _mm512_mullo_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32((row_len / 2) as i32),
        );
        let zero = _mm512_setzero_ps();
        for p in (0..k).step_by(2) {
            let (lo_row, hi_row) = (a.row(p), (p + 1 < k).then(|| a.row(p + 1)));
            for i0 in (0..m).step_by(16) {
                let columns = (m - i0).min(16);
                let mask: __mmask16 = ((1u32 << columns) - 1) as __mmask16;
                // SAFETY: rows i0..i0 + columns of `out` exist (m rows), and pair p / 2 of each
                // lies inside its row (row_len >= k rounded up to even).
                unsafe {
                    let lo = load16(lo_row, i0);
                    let hi = hi_row.map_or(zero, |row| load16(row, i0));
                    let base = out.as_mut_ptr().add(i0 * row_len + p) as *mut i32;
                    _mm512_mask_i32scatter_epi32::<4>(base, mask, down, pairs(lo, hi));
                }
            }
        }
    }

    /// `b` rounded into `out` as tiles of (k, k+1) pairs ([`super::pack_right`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn round_pairs(b: Matrix, k_blocks: usize, out: &mut [u16]) {
        let (k, n) = (b.rows, b.cols);
        let col_blocks = n.div_ceil(TILE_COLS);
        assert!(out.len() >= col_blocks * k_blocks * B_TILE);
        let zero = _mm512_setzero_ps();
        let empty: &[f32] = &[];
        for pair in 0..k_blocks * TILE_K / 2 {
            let row = |r: usize| if r < k { b.row(r) } else { empty };
            let (lo_row, hi_row) = (row(2 * pair), row(2 * pair + 1));
            let tile_row = (pair / TILE_ROWS * B_TILE) + pair % TILE_ROWS * 2 * TILE_COLS;
            for cb in 0..col_blocks {
                let at = cb * TILE_COLS;
                // SAFETY: the destination is one row of 32 values of tile (cb, pair / 16),
                // inside `out`.
                unsafe {
                    let lo = if lo_row.is_empty() {
                        zero
                    } else {
                        load16(lo_row, at)
                    };
                    let hi = if hi_row.is_empty() {
                        zero
                    } else {
                        load16(hi_row, at)
                    };
                    let dst = out.as_mut_ptr().add(cb * k_blocks * B_TILE + tile_row);
                    _mm512_storeu_si512(dst as *mut __m512i, pairs(lo, hi));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0 + 1e-3 * (i % 13) as f32)
            .collect()
    }

    fn bits(v: f32) -> u16 {
        bf16::from_f32(v).to_bits()
    }

    /// Shapes with ragged rows and columns, and strides wider than the rows.
    const SHAPES: [[usize; 3]; 5] = [
        [1, 1, 1],
        [5, 7, 9],
        [17, 33, 40],
        [32, 16, 16],
        [40, 70, 75],
    ];

    #[test]
    fn left_rows_hold_the_rounded_rows_then_zeros() {
        for [rows, cols, stride] in SHAPES {
            let data = values(rows * stride);
            let mut out = vec![7u16; 3];
            pack_left(Matrix::new(&data, rows, cols, stride), &mut out);
            let (padded, row_len) = left_layout(rows, cols);
            for r in 0..padded {
                for c in 0..row_len {
                    let want = if r < rows && c < cols {
                        bits(data[r * stride + c])
                    } else {
                        0
                    };
                    assert_eq!(out[r * row_len + c], want, "{rows}x{cols}: ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn transposed_left_rows_hold_the_rounded_columns_then_zeros() {
        for [rows, cols, stride] in SHAPES {
            let data = values(rows * stride);
            let mut out = vec![7u16; 3];
            pack_left_transposed(Matrix::new(&data, rows, cols, stride), &mut out);
            let (padded, row_len) = left_layout(cols, rows);
            for i in 0..padded {
                for p in 0..row_len {
                    let want = if i < cols && p < rows {
                        bits(data[p * stride + i])
                    } else {
                        0
                    };
                    assert_eq!(out[i * row_len + p], want, "{rows}x{cols}: ({i}, {p})");
                }
            }
        }
    }

    #[test]
    fn right_tiles_hold_the_rounded_pairs_then_zeros() {
        for [rows, cols, stride] in SHAPES {
            let data = values(rows * stride);
            let mut out = vec![7u16; 3];
            pack_right(Matrix::new(&data, rows, cols, stride), &mut out);
            let k_blocks = rows.div_ceil(TILE_K);
            assert!(out.len() >= right_len(rows, cols));
            for cb in 0..cols.div_ceil(TILE_COLS) {
                for row in 0..k_blocks * TILE_K {
                    for j in 0..TILE_COLS {
                        let col = cb * TILE_COLS + j;
                        let tile = (cb * k_blocks + row / TILE_K) * B_TILE;
                        let at = tile + (row % TILE_K / 2) * 2 * TILE_COLS + j * 2 + row % 2;
                        let want = if row < rows && col < cols {
                            bits(data[row * stride + col])
                        } else {
                            0
                        };
                        assert_eq!(out[at], want, "{rows}x{cols}: ({row}, {col})");
                    }
                }
            }
        }
    }
}
