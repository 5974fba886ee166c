//! int8 products on AVX512-VNNI's `VPDPBUSD` (Intel since Cascade Lake, AMD since Zen 4).
//!
//! `VPDPBUSD acc, a, b` adds `Σ_{i<4} a[4j+i] · b[4j+i]` (u8 times i8, summed exactly) to each
//! of the 16 i32 lanes `acc[j]`: with `a` one quad of a left row broadcast to every lane and `b`
//! the same quad of 16 weight columns ([`super::int8`]'s packing), it is four steps along k of 16
//! columns in one instruction, four times the work of an f32 FMA. As in the f32 and bf16 kernels,
//! a block of 14 rows by 2 panels keeps its sums in 28 zmm registers; the epilogue converts them
//! to f32, multiplies each column by its scale, can add the bias and apply the ReLU, and stores
//! straight into the feature map: in f32, or quantized again to u8 for the layer that reads it.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::int8::QUAD;
use super::packed::{BLOCK_PANELS, BLOCK_ROWS, PANEL, PanelOut};

/// Whether this CPU runs the kernel (AVX512-VNNI with AVX512F and BW).
pub(crate) fn runs_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i] = round(values[i] · inverse) + zero` clamped to 0..=255 (ties to even; a NaN becomes
/// 0), as [`super::int8`]'s portable quantization; `zero` is 0 or 128.
///
/// # Safety
/// [`runs_here`] returned true, and `out` holds at least `values.len()` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn quantize(values: &[f32], inverse: f32, zero: f32, out: &mut [u8]) {
    assert!(out.len() >= values.len());
    let (scale, top) = (_mm512_set1_ps(inverse), _mm512_set1_ps(255.0 - zero));
    let offset = _mm512_set1_epi32(zero as i32);
    for (i, chunk) in values.chunks(PANEL).enumerate() {
        let mask = ((1u32 << chunk.len()) - 1) as __mmask16;
        // SAFETY: the mask keeps the load to the chunk and the store to its bytes of `out`.
        unsafe {
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, chunk.as_ptr()), scale);
            // min(255 − z, v) keeps a NaN, which converts to i32::MIN and then clamps to 0.
            let rounded = _mm512_cvtps_epi32(_mm512_min_ps(top, v));
            let shifted = _mm512_add_epi32(rounded, offset);
            let clamped = _mm512_max_epi32(shifted, _mm512_setzero_si512());
            let at = out.as_mut_ptr().add(i * PANEL) as *mut i8;
            _mm512_mask_cvtusepi32_storeu_epi8(at, mask, clamped);
        }
    }
}

/// Where one panel of a product goes.
#[derive(Clone, Copy)]
pub(crate) enum Int8Out {
    /// The f32 values.
    F32(PanelOut),
    /// The values quantized for the layer that reads them, `round(v · inverse[c])` saturated to
    /// 0..=255 (its zero point is 0: it reads a ReLU's output), as [`quantize`] would; `inverse`
    /// holds one value per column of the panel.
    U8(PanelOut<u8>, *const f32),
}

impl Int8Out {
    /// Columns of the panel written.
    pub fn lanes(&self) -> usize {
        match self {
            Self::F32(out) => out.lanes,
            Self::U8(out, _) => out.lanes,
        }
    }

    /// The same panel from its row `r` on.
    ///
    /// # Safety
    /// Row `r` lies inside the panel's buffer.
    unsafe fn at_row(self, r: usize) -> Self {
        // SAFETY: the caller's guarantee.
        unsafe {
            match self {
                Self::F32(o) => Self::F32(o.at_row(r)),
                Self::U8(o, inverse) => Self::U8(o.at_row(r), inverse),
            }
        }
    }
}

/// The operands of one product.
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    /// `m` rows of u8, `row_len` (a multiple of [`QUAD`]) apart.
    pub left: *const u8,
    pub row_len: usize,
    pub m: usize,
    /// Panels of `quads` quads of 64 bytes, one per 16 columns.
    pub weights: *const i8,
    pub quads: usize,
    /// One scale per column of the panels.
    pub scales: *const f32,
    /// One offset per column, subtracted from its integer sums.
    pub offsets: *const i32,
}

/// `scales[c] · (Σ left[r, ·] · weights[·, c] − offsets[c])` for `panels` panels of columns, panel `i` written
/// to `out(i)`: as it is, or with `bias_relu`'s bias (one per column of the panels) added and
/// the ReLU applied.
///
/// # Safety
/// [`runs_here`] returned true; `left` holds `m` rows of `quads · 4` bytes `row_len` apart, the
/// weights `panels` panels, the scales, offsets (and a bias) 16 values per panel but the last,
/// which holds its lanes, as does a u8 panel's `inverse`; each panel's `m` rows of `lanes` values
/// are writable and nothing else reads or writes them during the call.
pub(crate) unsafe fn multiply(
    op: Operands,
    panels: usize,
    out: impl Fn(usize) -> Int8Out,
    bias_relu: Option<*const f32>,
) {
    assert!(op.row_len >= op.quads * QUAD);
    for pair in (0..panels).step_by(BLOCK_PANELS) {
        let count = BLOCK_PANELS.min(panels - pair);
        let local = |i: usize| pair + i.min(count - 1);
        let panel_bytes = op.quads * QUAD * PANEL;
        let outs = [0, 1].map(|i| out(local(i)));
        assert!(outs.iter().all(|o| o.lanes() <= PANEL));
        // SAFETY: panels `pair` and `pair + 1` (or `pair` twice) lie inside the weights, and
        // their columns inside the scales and the bias.
        let b = [0, 1].map(|i| unsafe { op.weights.add(local(i) * panel_bytes) });
        let scales = [0, 1].map(|i| unsafe { op.scales.add(local(i) * PANEL) });
        let offsets = [0, 1].map(|i| unsafe { op.offsets.add(local(i) * PANEL) });
        let bias = bias_relu.map(|bias| [0, 1].map(|i| unsafe { bias.add(local(i) * PANEL) }));
        for r0 in (0..op.m).step_by(BLOCK_ROWS) {
            let block = Block {
                // SAFETY: row r0 lies inside the left operand and each panel's rows.
                a: unsafe { op.left.add(r0 * op.row_len) },
                a_stride: op.row_len,
                b,
                quads: op.quads,
                scales,
                offsets,
                bias,
                out: outs.map(|o| unsafe { o.at_row(r0) }),
            };
            // SAFETY: the caller's guarantees bound every address the block touches.
            unsafe { block.run(BLOCK_ROWS.min(op.m - r0), count) };
        }
    }
}

/// One block of up to 14 rows by one or two panels.
struct Block {
    /// The block's first row.
    a: *const u8,
    /// Bytes between rows.
    a_stride: usize,
    b: [*const i8; BLOCK_PANELS],
    quads: usize,
    scales: [*const f32; BLOCK_PANELS],
    offsets: [*const i32; BLOCK_PANELS],
    bias: Option<[*const f32; BLOCK_PANELS]>,
    /// Where each panel's rows go, from the block's first.
    out: [Int8Out; BLOCK_PANELS],
}

impl Block {
    /// # Safety
    /// As [`multiply`], for `rows` rows and `panels` panels of this block.
    unsafe fn run(&self, rows: usize, panels: usize) {
        // SAFETY: the caller's guarantees are `sums`' requirements.
        unsafe { super::packed::dispatch_block!(self, rows, panels) }
    }

    /// The `R` x `P` panels' sums in registers, then scaled (biased and rectified) and stored.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn sums<const R: usize, const P: usize>(&self) {
        // SAFETY (whole body): `run`'s contract bounds every pointer read and written; the masks
        // keep the scale and bias loads and the stores to each panel's lanes.
        unsafe {
            let masks: [__mmask16; P] =
                std::array::from_fn(|p| ((1u32 << self.out[p].lanes()) - 1) as __mmask16);
            // The sums start at minus the offsets.
            let start: [__m512i; P] = std::array::from_fn(|p| {
                let offsets = _mm512_maskz_loadu_epi32(masks[p], self.offsets[p]);
                _mm512_sub_epi32(_mm512_setzero_si512(), offsets)
            });
            let mut acc = [start; R];
            for q in 0..self.quads {
                let b: [__m512i; P] = std::array::from_fn(|p| {
                    _mm512_loadu_si512(self.b[p].add(q * QUAD * PANEL) as *const __m512i)
                });
                for (r, row) in acc.iter_mut().enumerate() {
                    let quad =
                        (self.a.add(r * self.a_stride + q * QUAD) as *const i32).read_unaligned();
                    let x = _mm512_set1_epi32(quad);
                    for (sum, &panel) in row.iter_mut().zip(&b) {
                        *sum = _mm512_dpbusd_epi32(*sum, x, panel);
                    }
                }
            }
            // The sums leave their registers here and no sooner: the epilogue below indexes
            // them by row, which would otherwise keep a copy in memory throughout the loop.
            let acc = std::hint::black_box(acc);
            // A u8 panel's f32 values wait in `staged` (16 floats a row), then are quantized.
            let mut staged = [[0.0f32; PANEL]; BLOCK_ROWS];
            for p in 0..P {
                let mask = masks[p];
                let (ptr, stride) = match self.out[p] {
                    Int8Out::F32(out) => (out.ptr, out.stride),
                    Int8Out::U8(..) => (staged.as_mut_ptr() as *mut f32, PANEL),
                };
                let scale = _mm512_maskz_loadu_ps(mask, self.scales[p]);
                let bias = self.bias.map(|b| _mm512_maskz_loadu_ps(mask, b[p]));
                for (r, sums) in acc.iter().enumerate() {
                    let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(sums[p]), scale);
                    if let Some(bias) = bias {
                        v = _mm512_max_ps(_mm512_add_ps(v, bias), _mm512_setzero_ps());
                    }
                    _mm512_mask_storeu_ps(ptr.add(r * stride), mask, v);
                }
                if let Int8Out::U8(out, inverse) = self.out[p] {
                    // `quantize`'s steps with a zero point of 0.
                    let inverse = _mm512_maskz_loadu_ps(mask, inverse);
                    let top = _mm512_set1_ps(255.0);
                    for (r, row) in staged.iter().enumerate().take(R) {
                        let v = _mm512_mul_ps(_mm512_loadu_ps(row.as_ptr()), inverse);
                        let rounded = _mm512_cvtps_epi32(_mm512_min_ps(top, v));
                        let clamped = _mm512_max_epi32(rounded, _mm512_setzero_si512());
                        let at = out.ptr.add(r * out.stride) as *mut i8;
                        _mm512_mask_cvtusepi32_storeu_epi8(at, mask, clamped);
                    }
                }
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn sums<const R: usize, const P: usize>(&self) {
        unreachable!("the AVX512-VNNI kernel only runs on x86_64")
    }
}
