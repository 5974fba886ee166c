//! f32 matrices rounded to bf16 (nearest even) into the layouts that AMX's tiles load
//! ([`super::amx`]) and AVX512-BF16's dot products read ([`super::bf16_dot`]), for products
//! whose operands both change at every call (the training step's): a left operand as whole tiles
//! of rows (AMX) or as plain rows, a right operand as tiles of (k, k+1) pairs, the same layout as
//! the packed weights of [`super::bf16::Bf16Weights`].
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

    /// Row `r`'s `cols` values.
    pub(super) fn row(&self, r: usize) -> &'a [f32] {
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

/// `a` as a left operand ([`left_layout`]) in `out`, laid out as whole tiles ([`tiled_at`]) when
/// `tiled`, else as plain rows; zeros past its rows and columns.
pub(crate) fn pack_left(a: Matrix, tiled: bool, out: &mut Vec<u16>) {
    let (rows, row_len) = left_layout(a.rows, a.cols);
    grow(out, rows * row_len);
    let out = &mut out[..rows * row_len];
    for r in 0..rows {
        let row = if r < a.rows { a.row(r) } else { &[] };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            // SAFETY: the CPU has the instructions; `out` holds `rows` x `row_len` values.
            unsafe { x86::round_row_into(row, r, row_len, tiled, out) };
            continue;
        }
        let mut line = [0u16; TILE_K];
        for at in (0..row_len).step_by(TILE_K) {
            let part = &row[at.min(row.len())..(at + TILE_K).min(row.len())];
            line.fill(0);
            round_into(part, &mut line[..part.len()]);
            out[left_at(r, at, row_len, tiled)..][..TILE_K].copy_from_slice(&line);
        }
    }
}

/// `aᵀ` (`a` being `[k, m]`) as a left operand of `m` rows of `k` values in `out`, laid out as
/// whole tiles ([`tiled_at`]) when `tiled` (each tile's 16 rows of 32 values lie together, so
/// that AMX loads 1 KiB at a time), else as plain rows. Zeros past its rows and columns;
/// [`left_layout`] gives the padded sizes.
pub(crate) fn pack_left_transposed(a: Matrix, tiled: bool, out: &mut Vec<u16>) {
    let (k, m) = (a.rows, a.cols);
    let (rows, row_len) = left_layout(m, k);
    grow(out, rows * row_len);
    let out = &mut out[..rows * row_len];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has the instructions; `out` holds `rows` x `row_len` values.
        unsafe { x86::round_transposed(a, row_len, tiled, out) };
        return;
    }
    out.fill(0);
    for p in 0..k {
        for (i, &v) in a.row(p).iter().enumerate() {
            out[left_at(i, p, row_len, tiled)] = bf16::from_f32(v).to_bits();
        }
    }
}

/// Where value `(row, col)` of a left operand with rows of `row_len` lies: as whole tiles when
/// `tiled` ([`tiled_at`]), else in plain rows.
pub(crate) fn left_at(row: usize, col: usize, row_len: usize, tiled: bool) -> usize {
    if tiled {
        tiled_at(row, col, row_len)
    } else {
        row * row_len + col
    }
}

/// Where value `(row, col)` of a left operand with rows of `row_len` lies when laid out as whole
/// tiles: tile (row / 16, col / 32) after tile, row block after row block.
pub(crate) fn tiled_at(row: usize, col: usize, row_len: usize) -> usize {
    let k_blocks = row_len / TILE_K;
    let tile = row / TILE_ROWS * k_blocks + col / TILE_K;
    tile * TILE_ROWS * TILE_K + row % TILE_ROWS * TILE_K + col % TILE_K
}

/// `b` (`[k, n]`) as a right operand in `out`: column block after column block, each `k / 32`
/// tiles of 16 rows of (k, k+1) pairs for 16 columns, zeros past its rows and columns.
pub(crate) fn pack_right(b: Matrix, out: &mut Vec<u16>) {
    let len = right_len(b.rows, b.cols);
    grow(out, len);
    pack_right_blocks(b, b.rows.div_ceil(TILE_K), 0, &mut out[..len]);
}

/// Rows `32 · first_block ..` of a right operand with `k_blocks` tiles per column block, whose
/// values `b` holds (at most up to the last block): writes the tiles of the k blocks that `b`
/// covers, zeros past its rows and columns.
pub(crate) fn pack_right_blocks(b: Matrix, k_blocks: usize, first_block: usize, out: &mut [u16]) {
    let blocks = b.rows.div_ceil(TILE_K);
    assert!(
        first_block + blocks <= k_blocks,
        "rows past the last k block"
    );
    assert!(out.len() >= b.cols.div_ceil(TILE_COLS) * k_blocks * B_TILE);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has the instructions; `out` holds the column blocks' tiles.
        unsafe { x86::round_pairs(b, k_blocks, first_block, out) };
        return;
    }
    for cb in 0..b.cols.div_ceil(TILE_COLS) {
        let start = (cb * k_blocks + first_block) * B_TILE;
        out[start..][..blocks * B_TILE].fill(0);
    }
    for row in 0..b.rows {
        for (col, &v) in b.row(row).iter().enumerate() {
            let block = first_block + row / TILE_K;
            let tile = (col / TILE_COLS * k_blocks + block) * B_TILE;
            let at = tile + (row % TILE_K / 2) * 2 * TILE_COLS + (col % TILE_COLS) * 2 + row % 2;
            out[at] = bf16::from_f32(v).to_bits();
        }
    }
}

/// `values` rounded into `out`, which has their length.
pub(crate) fn round_slice(values: &[f32], out: &mut [u16]) {
    assert_eq!(
        values.len(),
        out.len(),
        "rounding into a slice of another length"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has the instructions; the lengths match.
        unsafe { x86::round_run(values, out) };
        return;
    }
    round_into(values, out);
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
    use crate::engine::transpose::x86::transpose16;

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

    /// `values` rounded into `out` (the same length), 16 at a time.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn round_run(values: &[f32], out: &mut [u16]) {
        let n = values.len().min(out.len());
        for at in (0..n).step_by(16) {
            let left = (n - at).min(16);
            let mask: __mmask16 = ((1u32 << left) - 1) as __mmask16;
            // SAFETY: the masks touch only values[at..at + left] and out[at..at + left].
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, values.as_ptr().add(at));
                let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_mask_storeu_epi16(out.as_mut_ptr().add(at) as *mut i16, mask, b);
            }
        }
    }

    /// Row `r` of a left operand (`row`, at most `row_len` values) rounded into its place in
    /// `out` ([`super::left_at`]), zeros after it.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn round_row_into(
        row: &[f32],
        r: usize,
        row_len: usize,
        tiled: bool,
        out: &mut [u16],
    ) {
        assert!(row.len() <= row_len && out.len() >= (r / TILE_ROWS + 1) * TILE_ROWS * row_len);
        for at in (0..row_len).step_by(TILE_K) {
            // SAFETY: loads past `row` read zeros; the destination is one tile row of 32 values
            // inside `out` (checked above).
            unsafe {
                let (lo, hi) = (load16(row, at), load16(row, at + 16));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let dst = out.as_mut_ptr().add(super::left_at(r, at, row_len, tiled));
                _mm512_storeu_si512(dst as *mut __m512i, v);
            }
        }
    }

    /// `aᵀ` rounded into `out` ([`super::left_at`]), `a`'s `m` columns becoming rows of
    /// `row_len` (`k` rounded up to 32): for each block of 16 columns and 32 rows, the 16
    /// (k, k+1) pairs of each row pair are one vector of 16 32-bit lanes, and a 16x16 transpose
    /// of those lanes gives 32 values of 16 rows (zeros past `m`).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn round_transposed(a: Matrix, row_len: usize, tiled: bool, out: &mut [u16]) {
        let (k, m) = (a.rows, a.cols);
        assert!(row_len == k.next_multiple_of(TILE_K));
        assert!(out.len() >= m.next_multiple_of(TILE_ROWS) * row_len);
        let zero = _mm512_setzero_ps();
        for i0 in (0..m).step_by(TILE_ROWS) {
            for kb in 0..row_len / TILE_K {
                let mut lanes = [_mm512_setzero_si512(); 16];
                for (q, lane) in lanes.iter_mut().enumerate() {
                    let p = kb * TILE_K + 2 * q;
                    // SAFETY: rows past `k` are not read; loads past `m` read zeros.
                    let lo = if p < k {
                        unsafe { load16(a.row(p), i0) }
                    } else {
                        zero
                    };
                    let hi = if p + 1 < k {
                        unsafe { load16(a.row(p + 1), i0) }
                    } else {
                        zero
                    };
                    *lane = pairs(lo, hi);
                }
                transpose16(&mut lanes);
                for (j, lane) in lanes.iter().enumerate() {
                    let at = super::left_at(i0 + j, kb * TILE_K, row_len, tiled);
                    // SAFETY: 32 values of row i0 + j, inside `out` (whole blocks of 16 rows).
                    unsafe {
                        let dst = out.as_mut_ptr().add(at);
                        _mm512_storeu_si512(dst as *mut __m512i, *lane);
                    }
                }
            }
        }
    }

    /// Rows of `b` rounded into the tiles of k blocks `first_block ..` as (k, k+1) pairs
    /// ([`super::pack_right_blocks`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn round_pairs(
        b: Matrix,
        k_blocks: usize,
        first_block: usize,
        out: &mut [u16],
    ) {
        let (k, n) = (b.rows, b.cols);
        let col_blocks = n.div_ceil(TILE_COLS);
        assert!(out.len() >= col_blocks * k_blocks * B_TILE);
        let zero = _mm512_setzero_ps();
        let empty: &[f32] = &[];
        for pair in 0..k.div_ceil(TILE_K) * TILE_K / 2 {
            let row = |r: usize| if r < k { b.row(r) } else { empty };
            let (lo_row, hi_row) = (row(2 * pair), row(2 * pair + 1));
            let block = first_block + pair / TILE_ROWS;
            let tile_row = block * B_TILE + pair % TILE_ROWS * 2 * TILE_COLS;
            for cb in 0..col_blocks {
                let at = cb * TILE_COLS;
                // SAFETY: the destination is one row of 32 values of tile (cb, block), inside
                // `out`.
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

    /// Packs every one of [`SHAPES`] with `pack` and checks each value of the padded operand:
    /// `place(rows, cols)` lists every position of the packed operand with the row and column
    /// of the matrix it holds, which must be that value rounded, or zero outside the matrix.
    fn check_packing(
        pack: impl Fn(Matrix, &mut Vec<u16>),
        place: impl Fn(usize, usize) -> Vec<(usize, usize, usize)>,
    ) {
        for [rows, cols, stride] in SHAPES {
            let data = values(rows * stride);
            let mut out = vec![7u16; 3];
            pack(Matrix::new(&data, rows, cols, stride), &mut out);
            let places = place(rows, cols);
            assert!(
                out.len() >= places.len(),
                "{rows}x{cols}: operand too short"
            );
            for (at, row, col) in places {
                let want = if row < rows && col < cols {
                    bits(data[row * stride + col])
                } else {
                    0
                };
                assert_eq!(out[at], want, "{rows}x{cols}: ({row}, {col})");
            }
        }
    }

    #[test]
    fn left_operands_hold_the_rounded_rows_then_zeros() {
        for tiled in [true, false] {
            check_packing(
                |a, out| pack_left(a, tiled, out),
                |rows, cols| {
                    let (padded, row_len) = left_layout(rows, cols);
                    let cells = (0..padded).flat_map(|r| (0..row_len).map(move |c| (r, c)));
                    cells
                        .map(|(r, c)| (left_at(r, c, row_len, tiled), r, c))
                        .collect()
                },
            );
        }
    }

    #[test]
    fn transposed_left_operands_hold_the_rounded_columns_then_zeros() {
        for tiled in [true, false] {
            check_packing(
                |a, out| pack_left_transposed(a, tiled, out),
                |rows, cols| {
                    let (padded, row_len) = left_layout(cols, rows);
                    let cells = (0..padded).flat_map(|i| (0..row_len).map(move |p| (i, p)));
                    cells
                        .map(|(i, p)| (left_at(i, p, row_len, tiled), p, i))
                        .collect()
                },
            );
        }
    }

    #[test]
    fn tiles_lie_one_after_another() {
        // Row 17, column 40 of rows of 64: tile (1, 1) of 2 per row block, its row 1, column 8.
        assert_eq!(tiled_at(17, 40, 64), 3 * 512 + 32 + 8);
        assert_eq!(left_at(17, 40, 64, false), 17 * 64 + 40);
    }

    #[test]
    fn right_tiles_hold_the_rounded_pairs_then_zeros() {
        check_packing(pack_right, |rows, cols| {
            let k_blocks = rows.div_ceil(TILE_K);
            let mut places = Vec::new();
            for cb in 0..cols.div_ceil(TILE_COLS) {
                for row in 0..k_blocks * TILE_K {
                    for j in 0..TILE_COLS {
                        let tile = (cb * k_blocks + row / TILE_K) * B_TILE;
                        let at = tile + (row % TILE_K / 2) * 2 * TILE_COLS + j * 2 + row % 2;
                        places.push((at, row, cb * TILE_COLS + j));
                    }
                }
            }
            assert_eq!(places.len(), right_len(rows, cols));
            places
        });
    }
}
