//! f32 products against convolution weights packed once, on AVX-512 or on AVX2 with FMA: our own
//! kernel, because the `gemm` crate packs the weights again for every tile it is given.
//!
//! The weights lie in panels of 16 columns (one zmm register wide, two ymm), each panel's rows one
//! after the other, so a panel streams from memory in order. The left operand, the tile's pixel
//! rows, is read where it lies. On AVX-512 a block of 14 rows by 32 columns keeps its running sums
//! in 28 of the 32 zmm registers; on AVX2 a block of 6 rows by 16 columns keeps them in 12 of the
//! 16 ymm registers, beside the panel row's two halves and the broadcast value. Each step along k
//! broadcasts one value of each row and loads the block's panel rows. k runs in blocks that keep
//! the panels' share in L1 while the row blocks pass over them. The panels are prefetched a few
//! steps ahead, for the first row block that reads them cold.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};

use super::vector::{Isa, Vector};
#[cfg(target_arch = "x86_64")]
use super::vector::{Ymm, Zmm};

/// Columns of one panel: 16 floats, one zmm register.
pub(crate) const PANEL: usize = 16;
/// Rows of a block whose sums stay in registers, on AVX-512.
pub(crate) const BLOCK_ROWS: usize = 14;
/// Panels a block covers side by side, on AVX-512.
pub(crate) const BLOCK_PANELS: usize = 2;
/// Rows of a block on AVX2 (one panel wide).
const AVX2_BLOCK_ROWS: usize = 6;

impl Isa {
    /// Rows and panels of a block whose sums stay in registers.
    fn block(self) -> (usize, usize) {
        match self {
            Self::Avx512 => (BLOCK_ROWS, BLOCK_PANELS),
            Self::Avx2 => (AVX2_BLOCK_ROWS, 1),
        }
    }
}

/// Calls `$block.sums::<R, P>()` for a block of `$rows` rows (1 to [`BLOCK_ROWS`]) and `$panels`
/// panels (1 or 2): the register blocks a kernel compiles, each with its sizes as constants.
macro_rules! dispatch_block {
    ($block:expr, $rows:expr, $panels:expr) => {
        $crate::engine::packed::dispatch_block!(@ $block, $rows, $panels; 1 2 3 4 5 6 7 8 9 10 11 12 13 14)
    };
    (@ $block:expr, $rows:expr, $panels:expr; $($r:literal)*) => {
        match ($rows, $panels) {
            $(($r, 1) => $block.sums::<$r, 1>(), ($r, _) => $block.sums::<$r, 2>(),)*
            _ => unreachable!("at most {} rows", $crate::engine::packed::BLOCK_ROWS),
        }
    };
}
pub(crate) use dispatch_block;
/// Longest run along k between passes over the rows: 2 panels x 192 x 4 bytes = 24 KiB of L1.
const K_BLOCK: usize = 192;
/// Steps along k that a panel row is fetched ahead of its use (1 KiB a panel). At batch 1 a
/// layer's weights are cold (the network's tens of megabytes of them pass through the caches once
/// a call), and the first row block of each run along k reads them from beyond L1: with the
/// hardware's prefetchers alone it waits on memory.
const PREFETCH_AHEAD: usize = 16;

/// A `[k, n]` weight matrix in panels of [`PANEL`] columns, the last one padded with zeros.
pub(crate) struct PackedWeights {
    k: usize,
    n: usize,
    panels: Vec<f32>,
    isa: Isa,
}

impl PackedWeights {
    /// Packs row-major `[k, n]` weights, if this CPU runs the kernel (AVX-512F, or AVX2 and FMA);
    /// `None` elsewhere, where the products stay on `gemm`.
    pub fn for_this_cpu(weights: &[f32], [k, n]: [usize; 2]) -> Option<Self> {
        Isa::here().map(|isa| Self::new(weights, [k, n], isa))
    }

    fn new(weights: &[f32], [k, n]: [usize; 2], isa: Isa) -> Self {
        assert_eq!(weights.len(), k * n, "weights are not [k, n]");
        let mut packed = Self::zeros([k, n]);
        packed.isa = isa;
        for (p, row) in weights.chunks_exact(n.max(1)).enumerate() {
            packed.set_row(p, row);
        }
        packed
    }

    /// A `[k, n]` matrix of zeros, to be filled row by row.
    ///
    /// # Panics
    /// Where the kernel does not run ([`runs_here`]).
    pub fn zeros([k, n]: [usize; 2]) -> Self {
        let mut zeros = Self {
            k: 0,
            n: 0,
            panels: Vec::new(),
            isa: Isa::here().expect("the packed kernel needs AVX-512F, or AVX2 and FMA"),
        };
        zeros.reset([k, n]);
        zeros
    }

    /// Makes this a `[k, n]` matrix of zeros, keeping its memory (a training step repacks
    /// matrices of many shapes into the same buffers).
    pub fn reset(&mut self, [k, n]: [usize; 2]) {
        self.k = k;
        self.n = n;
        self.panels.clear();
        self.panels.resize(n.div_ceil(PANEL) * k * PANEL, 0.0);
    }

    /// Row `p` of the matrix (its `n` values).
    pub fn set_row(&mut self, p: usize, row: &[f32]) {
        assert!(
            p < self.k && row.len() == self.n,
            "row {p} of [{}, {}]",
            self.k,
            self.n
        );
        for (panel, values) in row.chunks(PANEL).enumerate() {
            self.panels[(panel * self.k + p) * PANEL..][..values.len()].copy_from_slice(values);
        }
    }

    /// `product[r, c] = Σ_p a[r · a_stride + p] · W[p, cols.start + c]` for the `m` rows of `a`,
    /// into rows of `product` the returned number of floats apart (`cols.len()` rounded up to a
    /// panel). `cols` starts at a panel's first column.
    pub fn multiply(
        &self,
        a: &[f32],
        a_stride: usize,
        m: usize,
        cols: Range<usize>,
        product: &mut [f32],
    ) -> usize {
        let (stride, panel) = product_panels(product, m, cols.len());
        // SAFETY: `product` holds `m` rows of `stride` floats, which the panels split between
        // them, and is borrowed mutably here.
        unsafe {
            let panels = cols.len().div_ceil(PANEL);
            self.multiply_into(a, a_stride, m, cols.start, panels, panel, None)
        };
        stride
    }

    /// The product of the `m` rows of `a` and `panels` panels of weight columns from `first_col`
    /// (a panel's first column), panel `i` of them written to `out(i)`: as they are, or with
    /// `bias_relu`'s bias (indexed by weight column) added and the ReLU applied.
    ///
    /// # Safety
    /// Each panel's `m` rows of `lanes` floats are writable and nothing else reads or writes them
    /// during the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn multiply_into(
        &self,
        a: &[f32],
        a_stride: usize,
        m: usize,
        first_col: usize,
        panels: usize,
        out: impl Fn(usize) -> PanelOut,
        bias_relu: Option<&[f32]>,
    ) {
        let k = self.k;
        let first = first_col / PANEL;
        assert!(
            first_col.is_multiple_of(PANEL) && first + panels <= self.n.div_ceil(PANEL),
            "{panels} panels from column {first_col} of {}",
            self.n
        );
        assert!(
            bias_relu.is_none_or(|b| b.len() >= self.n),
            "bias too short"
        );
        assert!(a_stride >= k, "lhs rows overlap");
        assert!(m == 0 || a.len() >= (m - 1) * a_stride + k, "lhs too short");
        if m == 0 {
            return;
        }
        let (block_rows, block_panels) = self.isa.block();
        let steps = k.div_ceil(K_BLOCK).max(1);
        let k_block = k.div_ceil(steps).max(1);
        for k0 in (0..k.max(1)).step_by(k_block) {
            let kc = k_block.min(k - k0);
            let last = k0 + kc >= k;
            for pair in (0..panels).step_by(block_panels) {
                let count = block_panels.min(panels - pair);
                let local = |i: usize| pair + i.min(count - 1);
                let outs = [0, 1].map(|i| out(local(i)));
                assert!(outs.iter().all(|p| p.lanes <= PANEL && p.stride >= p.lanes));
                let index = |i: usize| first + local(i);
                let b = [0, 1].map(|i| self.panels[(index(i) * k + k0) * PANEL..].as_ptr());
                let bias = bias_relu
                    .filter(|_| last)
                    .map(|bias| [0, 1].map(|i| bias[index(i) * PANEL..].as_ptr()));
                for r0 in (0..m).step_by(block_rows) {
                    let block = Block {
                        a: a[r0 * a_stride + k0..].as_ptr(),
                        a_stride,
                        b,
                        kc,
                        // SAFETY: row r0 of each panel is inside its rows (caller's contract).
                        c: outs.map(|p| unsafe { p.at_row(r0).ptr }),
                        c_stride: outs.map(|p| p.stride),
                        lanes: outs.map(|p| p.lanes),
                        accumulate: k0 > 0,
                        bias,
                    };
                    // SAFETY: packed weights are only built where their `isa` runs; the asserts
                    // above and the loop bounds keep the block's rows of `a` (kc values from k0)
                    // and the panels' kc rows from k0 inside their slices, the bias reads are
                    // masked to the lanes, and the caller vouches for the outputs.
                    unsafe { block.run(self.isa, block_rows.min(m - r0), count) };
                }
            }
        }
    }
}

/// Where one panel of a product goes: its row `r` to `ptr + r · stride`, the first `lanes` of its
/// 16 columns (f32 sums, or bf16 activations from the bf16 kernels).
#[derive(Clone, Copy)]
pub(crate) struct PanelOut<T = f32> {
    pub ptr: *mut T,
    pub stride: usize,
    pub lanes: usize,
}

impl<T> PanelOut<T> {
    /// The same panel from its row `r` on.
    ///
    /// # Safety
    /// Row `r` lies inside the panel's buffer.
    pub unsafe fn at_row(self, r: usize) -> Self {
        Self {
            // SAFETY: the caller's guarantee.
            ptr: unsafe { self.ptr.add(r * self.stride) },
            ..self
        }
    }
}

/// The panels of a product buffer of `m` rows of `columns` floats, rounded up to a panel:
/// the rows' stride, and panel `i` (columns `16 i..`).
pub(crate) fn product_panels(
    product: &mut [f32],
    m: usize,
    columns: usize,
) -> (usize, impl Fn(usize) -> PanelOut) {
    let stride = columns.next_multiple_of(PANEL);
    assert!(product.len() >= m * stride, "product too short");
    let base = product.as_mut_ptr();
    let panel = move |i: usize| PanelOut {
        // SAFETY: panel i's first column lies inside each row of `stride` floats.
        ptr: unsafe { base.add(i * PANEL) },
        stride,
        lanes: PANEL.min(columns - i * PANEL),
    };
    (stride, panel)
}

/// One block of rows by one or two panels, `kc` steps along k.
struct Block {
    a: *const f32,
    a_stride: usize,
    b: [*const f32; BLOCK_PANELS],
    kc: usize,
    c: [*mut f32; BLOCK_PANELS],
    c_stride: [usize; BLOCK_PANELS],
    lanes: [usize; BLOCK_PANELS],
    /// Add to the sums in `c` (a later block of k) instead of overwriting them.
    accumulate: bool,
    /// The bias to add before the ReLU (the last block of k of a fused epilogue).
    bias: Option<[*const f32; BLOCK_PANELS]>,
}

impl Block {
    /// # Safety
    /// `isa` runs here, `rows` and `panels` are within its block, and `rows` rows of `a`, `kc`
    /// rows of the first `panels` panels and `rows` rows of `lanes` floats of each output are
    /// readable (and the outputs writable).
    unsafe fn run(&self, isa: Isa, rows: usize, panels: usize) {
        // SAFETY: the caller's guarantees are `sums`' and `sums_avx2`'s requirements.
        unsafe {
            match isa {
                Isa::Avx512 => dispatch_block!(self, rows, panels),
                Isa::Avx2 => match rows {
                    1 => self.sums_avx2::<1>(),
                    2 => self.sums_avx2::<2>(),
                    3 => self.sums_avx2::<3>(),
                    4 => self.sums_avx2::<4>(),
                    5 => self.sums_avx2::<5>(),
                    _ => self.sums_avx2::<AVX2_BLOCK_ROWS>(),
                },
            }
        }
    }

    /// The `R` x `P` panels' sums on AVX-512F, one zmm register a panel.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn sums<const R: usize, const P: usize>(&self) {
        // SAFETY: AVX-512F runs here; `run`'s contract.
        unsafe { self.vector_sums::<Zmm, R, P>() }
    }

    /// The `R` rows of one panel's sums on AVX2 and FMA, two ymm registers a panel.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sums_avx2<const R: usize>(&self) {
        // SAFETY: AVX2 and FMA run here; `run`'s contract.
        unsafe { self.vector_sums::<Ymm, R, 1>() }
    }

    /// The `R` x `P` panels' sums in registers, each panel `PANEL / V::LANES` (1 or 2) vectors
    /// wide.
    ///
    /// # Safety
    /// `V`'s instructions run here, and `run`'s contract.
    #[inline(always)]
    unsafe fn vector_sums<V: Vector, const R: usize, const P: usize>(&self) {
        let halves = PANEL / V::LANES;
        assert!(halves <= 2, "a panel is one or two vectors");
        // The lanes of each vector of each panel: a ragged panel's loads and stores are masked
        // to its columns (the lanes past them are not accessed).
        let lanes: [[usize; 2]; P] = std::array::from_fn(|p| {
            [0, 1].map(|h| self.lanes[p].saturating_sub(h * V::LANES).min(V::LANES))
        });
        // SAFETY (whole body): `run`'s contract bounds every pointer read and written.
        unsafe {
            let c = |r: usize, p: usize, h: usize| {
                self.c[p]
                    .add(r * self.c_stride[p])
                    .wrapping_add(h * V::LANES)
            };
            let mut acc = [[[V::zero(); 2]; P]; R];
            if self.accumulate {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (p, panel) in row.iter_mut().enumerate() {
                        for (h, sum) in panel.iter_mut().enumerate().take(halves) {
                            *sum = V::load(c(r, p, h), lanes[p][h]);
                        }
                    }
                }
            }
            for q in 0..self.kc {
                let mut b = [[V::zero(); 2]; P];
                for (p, panel) in b.iter_mut().enumerate() {
                    for (h, half) in panel.iter_mut().enumerate().take(halves) {
                        *half = V::load(self.b[p].add(q * PANEL + h * V::LANES), V::LANES);
                    }
                    let ahead = self.b[p].wrapping_add((q + PREFETCH_AHEAD) * PANEL);
                    prefetch(ahead);
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = V::broadcast(self.a.add(r * self.a_stride + q));
                    for (panel, b) in row.iter_mut().zip(&b) {
                        for (sum, &b) in panel.iter_mut().zip(b).take(halves) {
                            *sum = x.mul_add_lanes(b, *sum);
                        }
                    }
                }
            }
            if let Some(bias) = self.bias {
                for p in 0..P {
                    for h in 0..halves {
                        let bias = V::load(bias[p].wrapping_add(h * V::LANES), lanes[p][h]);
                        for row in acc.iter_mut() {
                            row[p][h] = row[p][h].add(bias).relu();
                        }
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (p, panel) in row.iter().enumerate() {
                    for (h, sum) in panel.iter().enumerate().take(halves) {
                        sum.store(c(r, p, h), lanes[p][h]);
                    }
                }
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn sums<const R: usize, const P: usize>(&self) {
        unreachable!("packed weights are only built where AVX-512F or AVX2 runs")
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn sums_avx2<const R: usize>(&self) {
        unreachable!("packed weights are only built where AVX-512F or AVX2 runs")
    }
}

/// Fetches the cache line at `at` into L1 ahead of its use; an address past the weights is
/// harmless (a prefetch never faults).
#[inline(always)]
fn prefetch(at: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, which every x86-64 CPU has; a prefetch reads nothing and never faults.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(at.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::{Isa, PANEL, PackedWeights};

    /// f64 sums of the same products.
    fn reference(a: &[f32], a_stride: usize, w: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k)
                    .map(|p| a[r * a_stride + p] as f64 * w[p * n + c] as f64)
                    .sum();
            }
        }
        out
    }

    #[test]
    fn products_match_f64_sums_on_ragged_shapes() {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| isa.runs_here())
            .collect();
        if isas.is_empty() {
            eprintln!(
                "SKIPPED: this CPU has neither AVX-512F nor AVX2, the kernel never runs here"
            );
            return;
        }
        for isa in isas {
            products_match_f64_sums(isa);
        }
    }

    fn products_match_f64_sums(isa: Isa) {
        // Rows not a multiple of either block, k over several k blocks and not a multiple of
        // them, columns ending inside a panel (in either half of it), an odd number of panels, a
        // range past panel 0.
        for (m, k, n, cols) in [
            (1, 1, 1, 0..1),
            (29, 3, 40, 0..40),
            (14, 192, 32, 0..32),
            (31, 577, 83, 16..83),
            (45, 1000, 176, 32..176),
            (3, 64, 16, 0..16),
            (13, 20, 21, 16..21),
        ] {
            let a_stride = k + 5;
            let a: Vec<f32> = (0..m * a_stride)
                .map(|i| ((i * 7919) % 211) as f32 / 105.0 - 1.0)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104729) % 197) as f32 / 98.0 - 1.0)
                .collect();
            let packed = PackedWeights::new(&w, [k, n], isa);
            let stride = cols.len().next_multiple_of(PANEL);
            let mut product = vec![f32::NAN; m * stride];
            assert_eq!(
                packed.multiply(&a, a_stride, m, cols.clone(), &mut product),
                stride
            );
            let want = reference(&a, a_stride, &w, [m, k, n]);
            for r in 0..m {
                for c in cols.clone() {
                    let got = product[r * stride + c - cols.start] as f64;
                    let exact = want[r * n + c];
                    let tolerance = 1e-5 * (k as f64).sqrt() * (1.0 + exact.abs());
                    assert!(
                        (got - exact).abs() < tolerance,
                        "{isa:?} [{m}, {k}, {n}] ({r}, {c}): {got} vs {exact}"
                    );
                }
            }
        }
    }
}
