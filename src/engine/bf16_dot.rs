//! bf16 products on AVX512-BF16's dot products (`VDPBF16PS`: AMD Zen 4 and later, Intel Cooper
//! Lake and Sapphire Rapids), for CPUs without AMX tiles.
//!
//! `VDPBF16PS acc, a, b` adds `a[2j] · b[2j] + a[2j+1] · b[2j+1]` to each of the 16 f32 lanes
//! `acc[j]`: with `a` one (k, k+1) pair of a left row broadcast to every lane and `b` the same pair
//! of 16 weight columns, it is two steps along k of 16 columns in one instruction, twice the work
//! of an f32 FMA.
//!
//! The weights are the AMX packing ([`super::bf16`]): column blocks of 16, each a run of (k, k+1)
//! pairs of 64 bytes, so one block is a panel streamed in order. As in the f32 kernel
//! ([`super::packed`]), a block of 14 rows by 2 panels keeps its sums in 28 zmm registers. The
//! epilogue can add the bias, apply the ReLU, round to bf16 and store straight into the feature
//! map, so the sums never go through memory.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use half::bf16;

use super::packed::{BLOCK_PANELS, BLOCK_ROWS, PANEL};

/// Whether this CPU runs the kernel (AVX512-BF16 with AVX512F, BW and VL).
pub(crate) fn runs_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `VDPBF16PS` does more multiply-adds per cycle than a 512-bit f32 FMA here. It does on
/// AMD's cores (Zen 4 runs an FMA on 512 bits at half rate, `VDPBF16PS` at full); on Intel's it
/// does half as many (`bench/RESULTS.md`: 43 against 87 GMAC/s on one core of a Xeon), so an
/// f32 product of bf16-rounded operands is the faster way to bf16's sums there.
pub(crate) fn outruns_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 0 spells the vendor in EBX, EDX, ECX.
        let leaf0 = std::arch::x86_64::__cpuid(0);
        let vendor = [leaf0.ebx, leaf0.edx, leaf0.ecx]
            .map(u32::to_le_bytes)
            .concat();
        runs_here() && vendor == b"AuthenticAMD"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The left operand: `m` rows of bf16, `row_len` (even) values apart, each read for `pairs`
/// (k, k+1) pairs (for an odd k, the last pair's second value is read too and must be finite: the
/// packed weights hold a zero there).
#[derive(Clone, Copy)]
pub(crate) struct Rows {
    pub ptr: *const bf16,
    pub row_len: usize,
    pub m: usize,
    pub pairs: usize,
}

/// Where one panel of the product goes: row `r` to `ptr + r · stride`, its first `lanes` columns.
#[derive(Clone, Copy)]
pub(crate) struct PanelStore {
    pub stride: usize,
    pub lanes: usize,
    pub to: Store,
}

/// What a panel's rows hold, and where the first one lies.
#[derive(Clone, Copy)]
pub(crate) enum Store {
    /// The f32 sums as they are, or added to those there when `accumulate`.
    Sums { ptr: *mut f32, accumulate: bool },
    /// max(sum + bias, 0) rounded to bf16 (nearest even): the epilogue of a convolution.
    BiasRelu { ptr: *mut bf16, bias: *const f32 },
}

/// `left · right` for `panels` panels of `right` (each `panel_pairs` pairs of 64 bytes, panel
/// after panel, as [`super::bf16`] packs them, of which the first `rows.pairs` are read), panel
/// `i` stored by `store(i)`.
///
/// # Safety
/// [`runs_here`] returned true; `rows.m` rows of `2 · rows.pairs` values are readable at
/// `rows.ptr`, `rows.row_len` apart; `right` holds `panels · panel_pairs · 32` values and
/// `rows.pairs <= panel_pairs`; each store covers `rows.m` rows of its lanes (at most 16),
/// writable and written by no one else during the call, and a bias store's bias holds 16 floats.
pub(crate) unsafe fn multiply(
    rows: Rows,
    right: *const u16,
    panel_pairs: usize,
    panels: usize,
    store: impl Fn(usize) -> PanelStore,
) {
    assert!(rows.row_len >= 2 * rows.pairs && rows.pairs <= panel_pairs);
    for pair in (0..panels).step_by(BLOCK_PANELS) {
        let count = BLOCK_PANELS.min(panels - pair);
        let local = |i: usize| pair + i.min(count - 1);
        // SAFETY: panels `pair` and `pair + 1` (or `pair` twice) lie inside `right`.
        let b = [0, 1].map(|i| unsafe { right.add(local(i) * panel_pairs * 2 * PANEL) });
        let stores = [0, 1].map(|i| store(local(i)));
        assert!(stores.iter().all(|s| s.lanes <= PANEL));
        for r0 in (0..rows.m).step_by(BLOCK_ROWS) {
            let block = Block {
                // SAFETY: row r0 lies inside the left operand.
                a: unsafe { rows.ptr.add(r0 * rows.row_len) } as *const u32,
                a_stride: rows.row_len / 2,
                b,
                pairs: rows.pairs,
                stores,
                first_row: r0,
            };
            // SAFETY: the caller's guarantees bound every address the block touches.
            unsafe { block.run(BLOCK_ROWS.min(rows.m - r0), count) };
        }
    }
}

/// One block of up to 14 rows by one or two panels.
struct Block {
    /// The block's first row, as (k, k+1) pairs.
    a: *const u32,
    /// Pairs between rows.
    a_stride: usize,
    b: [*const u16; BLOCK_PANELS],
    pairs: usize,
    stores: [PanelStore; BLOCK_PANELS],
    /// The row of the stores the block's first row goes to.
    first_row: usize,
}

impl Block {
    /// # Safety
    /// As [`multiply`], for `rows` rows and `panels` panels of this block.
    unsafe fn run(&self, rows: usize, panels: usize) {
        // SAFETY: the caller's guarantees are `sums`' requirements.
        unsafe { super::packed::dispatch_block!(self, rows, panels) }
    }

    /// The `R` x `P` panels' sums in registers, then stored.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn sums<const R: usize, const P: usize>(&self) {
        // SAFETY (whole body): `run`'s contract bounds every pointer read and written; the masks
        // keep the stores and the bias loads to each panel's lanes.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            let mask = |p: usize| ((1u32 << self.stores[p].lanes) - 1) as __mmask16;
            // Where row `r` of the block lies in panel `p`'s store, from its first row.
            let row = |p: usize, r: usize| (self.first_row + r) * self.stores[p].stride;
            for p in 0..P {
                if let Store::Sums {
                    ptr,
                    accumulate: true,
                } = self.stores[p].to
                {
                    for (r, sums) in acc.iter_mut().enumerate() {
                        sums[p] = _mm512_maskz_loadu_ps(mask(p), ptr.add(row(p, r)));
                    }
                }
            }
            for q in 0..self.pairs {
                let b: [__m512bh; P] = std::array::from_fn(|p| {
                    std::mem::transmute(_mm512_loadu_si512(
                        self.b[p].add(q * 2 * PANEL) as *const __m512i
                    ))
                });
                for (r, row) in acc.iter_mut().enumerate() {
                    let pair = self.a.add(r * self.a_stride + q).read_unaligned();
                    let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair as i32));
                    for (sum, &panel) in row.iter_mut().zip(&b) {
                        *sum = _mm512_dpbf16_ps(*sum, x, panel);
                    }
                }
            }
            for p in 0..P {
                match self.stores[p].to {
                    Store::Sums { ptr, .. } => {
                        for (r, sums) in acc.iter().enumerate() {
                            _mm512_mask_storeu_ps(ptr.add(row(p, r)), mask(p), sums[p]);
                        }
                    }
                    Store::BiasRelu { ptr, bias } => {
                        let bias = _mm512_maskz_loadu_ps(mask(p), bias);
                        let zero = _mm512_setzero_ps();
                        for (r, sums) in acc.iter().enumerate() {
                            let v = _mm512_max_ps(_mm512_add_ps(sums[p], bias), zero);
                            let v: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                            let at = ptr.add(row(p, r)) as *mut i16;
                            _mm256_mask_storeu_epi16(at, mask(p), v);
                        }
                    }
                }
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn sums<const R: usize, const P: usize>(&self) {
        unreachable!("the AVX512-BF16 kernel only runs on x86_64")
    }
}
