//! Row-major matrix transposition, in 16x16 blocks that pass through AVX-512 registers where the
//! CPU has them (a block is 16 loads, four rounds of shuffles and 16 stores instead of 256 scalar
//! moves to 16 different cache lines).

use rayon::prelude::*;

/// Side of a block: 16 floats fill one 512-bit register.
const BLOCK: usize = 16;

/// `dst[cols, rows] = srcᵀ` for a row-major `src[rows, cols]`, one band of 16 destination rows
/// (16 source columns) at a time so that the band stays in cache while it is written, bands
/// spread over the threads.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert_eq!(src.len(), rows * cols, "transpose source");
    assert_eq!(dst.len(), rows * cols, "transpose destination");
    if dst.is_empty() {
        return;
    }
    let blocks = super::vector::Isa::Avx512.runs_here();
    dst.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(b, band)| {
            let c0 = b * BLOCK;
            let width = band.len() / rows;
            let mut r0 = 0;
            if blocks && width == BLOCK {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX-512F (`Isa::Avx512.runs_here`).
                unsafe {
                    r0 = x86::full_blocks(src, rows, cols, c0, band);
                }
            }
            for r in r0..rows {
                let line = &src[r * cols + c0..][..width];
                for (j, &v) in line.iter().enumerate() {
                    band[j * rows + r] = v;
                }
            }
        });
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// Writes the band of destination rows `c0..c0 + 16` (`band`, `16·rows` floats) for source
    /// rows `0..16·⌊rows/16⌋`, one 16x16 block at a time, and returns how many rows it did.
    #[target_feature(enable = "avx512f")]
    pub(super) fn full_blocks(
        src: &[f32],
        rows: usize,
        cols: usize,
        c0: usize,
        band: &mut [f32],
    ) -> usize {
        assert!(c0 + BLOCK <= cols && band.len() == BLOCK * rows);
        let done = rows / BLOCK * BLOCK;
        for r0 in (0..done).step_by(BLOCK) {
            let mut lanes: [__m512i; BLOCK] = std::array::from_fn(|i| {
                let line: &[f32; BLOCK] = src[(r0 + i) * cols + c0..][..BLOCK].try_into().unwrap();
                // SAFETY: `line` holds the 16 floats read.
                unsafe { _mm512_castps_si512(_mm512_loadu_ps(line.as_ptr())) }
            });
            transpose16(&mut lanes);
            for (j, lane) in lanes.iter().enumerate() {
                let out: &mut [f32; BLOCK] =
                    (&mut band[j * rows + r0..][..BLOCK]).try_into().unwrap();
                // SAFETY: `out` holds the 16 floats written.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), _mm512_castsi512_ps(*lane)) };
            }
        }
        done
    }

    /// Transposes the 16x16 matrix of 32-bit lanes whose row `i` is `r[i]`: pairs of rows
    /// interleaved by 32 and 64 bits within each 128-bit lane, then 128-bit lanes exchanged
    /// between rows 4 and 8 apart.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn transpose16(r: &mut [__m512i; 16]) {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..4 {
            r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        for i in 0..2 {
            for j in 0..4 {
                let (a, b) = (r[8 * i + j], r[8 * i + 4 + j]);
                t[8 * i + j] = _mm512_shuffle_i32x4::<0x88>(a, b);
                t[8 * i + 4 + j] = _mm512_shuffle_i32x4::<0xdd>(a, b);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[8 + j]);
            r[8 + j] = _mm512_shuffle_i32x4::<0xdd>(t[j], t[8 + j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn every_value_lands_at_its_mirrored_place() {
        // Whole blocks, ragged rows and columns, a single row and a single column.
        for [rows, cols] in [[32, 48], [37, 21], [16, 16], [1, 40], [40, 1], [5, 3]] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 7.0).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "[{rows}, {cols}] at ({r}, {c})"
                    );
                }
            }
        }
    }
}
