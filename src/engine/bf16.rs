//! bf16 matrix products for inference: both operands rounded to bf16 (round to nearest even),
//! the products summed in f32. The convolutions' weights are rounded once, after BatchNorm has
//! been folded into them in f32; the activations stay f32 between layers and are rounded as each
//! tile of a product reads them; bias and ReLU are applied in f32.
//!
//! Three kernels compute the same sums:
//! - AMX tiles ([`super::amx`]) where the CPU and the OS allow them, the weights packed once into
//!   the tiles' layout;
//! - AVX512-BF16's dot products ([`super::bf16_dot`]) on CPUs without AMX, over the same packing;
//! - elsewhere the f32 GEMM on the rounded values (a product of two bf16 numbers is exact in f32):
//!   bf16's numbers at f32's speed.

use std::ops::Range;
use std::sync::OnceLock;

use half::bf16;

use super::bf16_dot::{PanelStore, Store};
use super::matmul::matmul;
use super::packed::PanelOut;
use super::simd::simd_kernel;

/// Rows of every AMX tile.
pub(crate) const TILE_ROWS: usize = 16;
/// bf16 values along k in one row of a left tile (64 bytes).
pub(crate) const TILE_K: usize = 32;
/// f32 columns of a result tile (64 bytes).
pub(crate) const TILE_COLS: usize = 16;
/// bf16 values in one packed right-hand tile: 16 rows of 16 (k, k+1) pairs.
pub(crate) const B_TILE: usize = TILE_K * TILE_COLS;

/// Which kernel this process's bf16 products run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// Intel AMX tiles.
    Amx,
    /// AVX512-BF16's `VDPBF16PS` dot products (picked on AMD Zen 4 and later).
    Avx512Bf16,
    /// The f32 kernels on bf16-rounded operands.
    Portable,
}

impl Bf16Kernel {
    /// The fastest kernel this CPU and OS allow: AMX tiles, else AVX512-BF16's dot products
    /// where they outrun f32 FMAs ([`super::bf16_dot::outruns_fma`]), else the f32 kernels on
    /// operands rounded to bf16. Asked once per process: the vendor check executes CPUID, which
    /// a virtual machine's hypervisor answers slowly, and the training step asks at every
    /// convolution.
    pub fn detect() -> Self {
        static DETECTED: OnceLock<Bf16Kernel> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            if super::amx::available() {
                return Bf16Kernel::Amx;
            }
            if super::bf16_dot::outruns_fma() {
                return Bf16Kernel::Avx512Bf16;
            }
            Bf16Kernel::Portable
        })
    }

    /// Whether this CPU and OS run the kernel (for AMX, Linux has granted the tiles' state).
    pub fn runs_here(self) -> bool {
        match self {
            Bf16Kernel::Amx => Self::detect() == Bf16Kernel::Amx,
            Bf16Kernel::Avx512Bf16 => super::bf16_dot::runs_here(),
            Bf16Kernel::Portable => true,
        }
    }

    /// Its name in reports (`amx`, `avx512-bf16`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Amx => "amx",
            Bf16Kernel::Avx512Bf16 => "avx512-bf16",
            Bf16Kernel::Portable => "portable",
        }
    }
}

/// The `[k, n]` right-hand operand of a product, rounded to bf16 and laid out for its kernel.
pub(crate) struct Bf16Weights {
    k: usize,
    n: usize,
    packed: Packed,
}

enum Packed {
    /// Column blocks of 16, each `k_blocks` tiles of 16 rows of (k, k+1) pairs; zeros pad k to
    /// a multiple of 32 and n to one of 16. AMX reads them as tiles, AVX512-BF16 as panels.
    Tiles {
        values: Vec<u16>,
        k_blocks: usize,
        amx: bool,
    },
    /// Row-major `[k, n]`, each value rounded to bf16.
    Rounded(Vec<f32>),
}

/// Per-thread buffer of the portable kernel: the left operand widened to f32.
#[derive(Default)]
pub(crate) struct Bf16Scratch {
    rounded: Vec<f32>,
}

simd_kernel! {
    /// `values` widened to f32 into `out`: the bits of `half`'s `bf16::to_f32` (a NaN comes out
    /// quiet), without a branch.
    fn widen(values: &[bf16], out: &mut [f32]) {
        for (out, value) in out.iter_mut().zip(values) {
            let bits = u32::from(value.to_bits());
            let quiet = if bits & 0x7fff > 0x7f80 { bits | 0x0040 } else { bits };
            *out = f32::from_bits(quiet << 16);
        }
    }
}

/// `value` rounded to the nearest bf16 (ties to even), as bits.
fn round(value: f32) -> u16 {
    bf16::from_f32(value).to_bits()
}

/// `value` rounded to the nearest bf16, back in f32.
fn rounded(value: f32) -> f32 {
    bf16::from_f32(value).to_f32()
}

impl Bf16Weights {
    /// `weights` (row-major `[k, n]`) for `kernel`, which must run here.
    pub fn new(weights: &[f32], [k, n]: [usize; 2], kernel: Bf16Kernel) -> Self {
        assert_eq!(weights.len(), k * n, "weights are not [k, n]");
        // Tiles are only packed where they can be multiplied: `multiply` relies on it.
        assert!(
            kernel.runs_here(),
            "the {} kernel does not run here",
            kernel.name()
        );
        let packed = match kernel {
            Bf16Kernel::Portable => Packed::Rounded(weights.iter().map(|&w| rounded(w)).collect()),
            Bf16Kernel::Amx | Bf16Kernel::Avx512Bf16 => {
                let k_blocks = k.div_ceil(TILE_K);
                let col_blocks = n.div_ceil(TILE_COLS);
                let mut values = vec![0u16; col_blocks * k_blocks * B_TILE];
                for row in 0..k {
                    for col in 0..n {
                        let tile = (col / TILE_COLS * k_blocks + row / TILE_K) * B_TILE;
                        let at = tile
                            + (row % TILE_K / 2) * 2 * TILE_COLS
                            + (col % TILE_COLS) * 2
                            + row % 2;
                        values[at] = round(weights[row * n + col]);
                    }
                }
                Packed::Tiles {
                    values,
                    k_blocks,
                    amx: kernel == Bf16Kernel::Amx,
                }
            }
        };
        Self { k, n, packed }
    }

    /// The kernel it is packed for.
    pub fn kernel(&self) -> Bf16Kernel {
        match self.packed {
            Packed::Rounded(_) => Bf16Kernel::Portable,
            Packed::Tiles { amx: true, .. } => Bf16Kernel::Amx,
            Packed::Tiles { amx: false, .. } => Bf16Kernel::Avx512Bf16,
        }
    }

    /// `weights` (`[k, n]`, its rows `stride` values apart) in place of these, for the same
    /// kernel, reusing the buffers (the training step's weights change at every call).
    pub fn reload(&mut self, weights: &[f32], [k, n]: [usize; 2], stride: usize) {
        let matrix = super::bf16_pack::Matrix::new(weights, k, n, stride);
        (self.k, self.n) = (k, n);
        match &mut self.packed {
            Packed::Rounded(values) => {
                values.clear();
                for r in 0..k {
                    values.extend(matrix.row(r).iter().map(|&w| rounded(w)));
                }
            }
            Packed::Tiles {
                values, k_blocks, ..
            } => {
                *k_blocks = k.div_ceil(TILE_K);
                super::bf16_pack::pack_right(matrix, values);
            }
        }
    }

    /// The layout of [`Self::multiply`]'s left operand for `m` rows: its number of rows (`m`,
    /// or for AMX `m` rounded up to whole tiles) and the values in each row (`k`; for AVX512-BF16
    /// `k` rounded up to a whole pair, for AMX to whole tiles). Rows and columns past `m` and `k`
    /// must be zero.
    pub fn left_layout(&self, m: usize) -> (usize, usize) {
        match &self.packed {
            Packed::Rounded(_) => (m, self.k),
            Packed::Tiles { k_blocks, amx, .. } if *amx => {
                (m.next_multiple_of(TILE_ROWS), k_blocks * TILE_K)
            }
            Packed::Tiles { .. } => (m, self.k.next_multiple_of(2)),
        }
    }

    /// Whether [`Self::multiply_bias_relu`] runs on this kernel.
    pub fn stores_activations(&self) -> bool {
        matches!(self.packed, Packed::Tiles { amx: false, .. })
    }

    /// max(`left` · w + bias, 0) rounded to bf16 for the `m` rows of `left`, `row_len` (even)
    /// values apart, each holding `k` values rounded up to a pair (zeros past `k`), and the
    /// weight columns of `panels`, panel `i` being the 16 columns from `first_col + 16 i`
    /// (`first_col` a multiple of 16), stored from `panels[i]`: the whole convolution epilogue in
    /// the kernel's registers. Only where [`Self::stores_activations`].
    ///
    /// # Safety
    /// Each panel's `m` rows of `lanes` values are writable and nothing else reads or writes them
    /// during the call.
    pub unsafe fn multiply_bias_relu(
        &self,
        left: &[bf16],
        row_len: usize,
        m: usize,
        first_col: usize,
        panels: &[PanelOut<bf16>],
        bias: &[f32],
    ) {
        assert!(
            self.stores_activations(),
            "only the AVX512-BF16 kernel stores activations"
        );
        let cols = first_col..(first_col + panels.len() * TILE_COLS).min(self.n);
        assert_eq!(
            cols.len().div_ceil(TILE_COLS),
            panels.len(),
            "panels past the weights' columns"
        );
        let right = self.right_panels(&cols);
        assert!(bias.len() >= self.n);
        assert!(
            panels
                .iter()
                .enumerate()
                .all(|(i, p)| p.lanes <= (cols.len() - i * TILE_COLS).min(TILE_COLS))
        );
        let store = |i: usize| PanelStore {
            stride: panels[i].stride,
            lanes: panels[i].lanes,
            to: Store::BiasRelu {
                ptr: panels[i].ptr,
                bias: bias[first_col + i * TILE_COLS..].as_ptr(),
            },
        };
        // SAFETY: `Packed::Tiles` without AMX is only built where the kernel runs (`new`);
        // `dot_rows` bounds the left rows and `right_panels` the panels, the bias loads are
        // masked to the lanes, and the caller vouches for the stores.
        unsafe { self.dot_products(left, row_len, m, right, panels.len(), store) };
    }

    /// The floats [`Self::multiply`] writes for `m` rows of `columns` columns: its rows (as
    /// [`Self::left_layout`]) of `columns` rounded up to a multiple of 16.
    pub fn product_len(&self, m: usize, columns: usize) -> usize {
        self.left_layout(m).0 * columns.next_multiple_of(TILE_COLS)
    }

    /// `product[r, j] = Σ_p left[r, p] · w[p, cols.start + j]` for the `m` rows of `left` (laid
    /// out as [`Self::left_layout`] says) and the columns `cols` (starting at a multiple of 16),
    /// into rows of `cols.len()` rounded up to a multiple of 16, which it returns; `product`
    /// holds at least [`Self::product_len`] floats.
    pub fn multiply(
        &self,
        left: &[bf16],
        m: usize,
        cols: Range<usize>,
        scratch: &mut Bf16Scratch,
        product: &mut [f32],
    ) -> usize {
        let (rows, row_len) = self.left_layout(m);
        assert!(cols.end <= self.n && left.len() >= rows * row_len);
        assert!(
            product.len() >= self.product_len(m, cols.len()),
            "product too short"
        );
        let stride = cols.len().next_multiple_of(TILE_COLS);
        match &self.packed {
            Packed::Rounded(weights) => {
                let (k, n) = (self.k, cols.len());
                super::map::grow(&mut scratch.rounded, m * k);
                widen(&left[..m * k], &mut scratch.rounded[..m * k]);
                let b = &weights[cols.start..];
                let lhs = &scratch.rounded[..m * k];
                matmul(product, stride, lhs, k, b, self.n, [m, k, n], false);
            }
            Packed::Tiles { amx: true, .. } => {
                let right = self.right_panels(&cols);
                Self::multiply_tiles(left, rows, row_len, right, product, stride)
            }
            Packed::Tiles { amx: false, .. } => {
                let right = self.right_panels(&cols);
                let base = product.as_mut_ptr();
                let store = |i: usize| PanelStore {
                    stride,
                    lanes: TILE_COLS.min(cols.len() - i * TILE_COLS),
                    // SAFETY: panel i's first column lies inside each row of `stride` floats.
                    to: Store::Sums {
                        ptr: unsafe { base.add(i * TILE_COLS) },
                        accumulate: false,
                    },
                };
                let panels = cols.len().div_ceil(TILE_COLS);
                // SAFETY: `Packed::Tiles` without AMX is only built where the kernel runs
                // (`new`); `dot_rows` bounds the left rows, `right_panels` the panels, and the
                // assert above `product`'s `m` rows of `stride` floats.
                unsafe { self.dot_products(left, row_len, m, right, panels, store) };
            }
        }
        stride
    }

    /// The packed tiles of the column blocks that `cols` covers (`cols.start` a multiple of 16),
    /// each `k_blocks` tiles.
    fn right_panels(&self, cols: &Range<usize>) -> &[u16] {
        let Packed::Tiles {
            values, k_blocks, ..
        } = &self.packed
        else {
            panic!("the portable kernel has no tiles");
        };
        assert!(
            cols.start.is_multiple_of(TILE_COLS) && cols.end <= self.n,
            "columns {cols:?} of {}",
            self.n
        );
        let blocks = cols.len().div_ceil(TILE_COLS);
        &values[cols.start / TILE_COLS * k_blocks * B_TILE..][..blocks * k_blocks * B_TILE]
    }

    /// `left · right` on AVX512-BF16's dot products for the `m` rows of `left`, `row_len` (even)
    /// values apart, each holding `k` values rounded up to a pair, and the `panels` column
    /// blocks of `right` ([`Self::right_panels`]), panel `i` stored by `store(i)`.
    ///
    /// # Safety
    /// The kernel runs here, and `store` covers what [`super::bf16_dot::multiply`] asks of it.
    unsafe fn dot_products(
        &self,
        left: &[bf16],
        row_len: usize,
        m: usize,
        right: &[u16],
        panels: usize,
        store: impl Fn(usize) -> PanelStore,
    ) {
        let pairs = self.k.div_ceil(2);
        let panel_pairs = self.k.div_ceil(TILE_K) * TILE_K / 2;
        assert!(
            row_len.is_multiple_of(2) && row_len >= 2 * pairs,
            "rows of {row_len}"
        );
        assert!(m == 0 || left.len() >= (m - 1) * row_len + 2 * pairs);
        assert!(right.len() >= panels * panel_pairs * 2 * TILE_COLS);
        let rows = super::bf16_dot::Rows {
            ptr: left.as_ptr(),
            row_len,
            m,
            pairs,
        };
        // SAFETY: the asserts bound the left rows and the panels; the caller the rest.
        unsafe { super::bf16_dot::multiply(rows, right.as_ptr(), panel_pairs, panels, store) };
    }

    /// [`Self::multiply`] on AMX tiles: `rows` (a multiple of 16) rows of `row_len` (of 32) and
    /// the column blocks of `right`, into rows of `stride` floats.
    fn multiply_tiles(
        left: &[bf16],
        rows: usize,
        row_len: usize,
        right: &[u16],
        product: &mut [f32],
        stride: usize,
    ) {
        let (k_blocks, col_blocks) = (row_len / TILE_K, stride / TILE_COLS);
        assert!(product.len() >= rows * stride);
        assert!(right.len() >= col_blocks * k_blocks * B_TILE);
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: `new` packs tiles only where `Bf16Kernel::Amx.runs_here()`, that is after
        // `amx::available()` returned true; `left` holds rows / 16 blocks of 16 rows of
        // `row_len` values, `right` col_blocks x k_blocks tiles, and `product` `rows` rows of
        // `stride` floats, as `multiply` reads them.
        unsafe {
            super::amx::multiply(
                super::amx::Left {
                    ptr: left.as_ptr() as *const u16,
                    row_bytes: row_len * 2,
                    row_blocks: rows / TILE_ROWS,
                    k_blocks,
                    tiled: false,
                },
                right.as_ptr(),
                super::amx::Product {
                    ptr: product.as_mut_ptr(),
                    row_bytes: stride * 4,
                    col_blocks,
                    accumulate: false,
                },
            )
        };
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        unreachable!("AMX tiles packed on a platform without AMX ({rows}, {row_len})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_gives_the_bits_of_half_for_every_bf16() {
        let values: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
        let mut out = vec![0.0; values.len()];
        widen(&values, &mut out);
        for (value, got) in values.iter().zip(&out) {
            assert_eq!(
                got.to_bits(),
                value.to_f32().to_bits(),
                "{:#06x}",
                value.to_bits()
            );
        }
    }

    /// The bf16 sums in f64, the reference the kernels approach.
    fn reference(a: &[f32], w: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| rounded(a[i * k + p]) as f64 * rounded(w[p * n + j]) as f64)
                    .sum();
            }
        }
        out
    }

    fn check(kernel: Bf16Kernel, [m, k, n]: [usize; 3], cols: Range<usize>) {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 23.0)
            .collect();
        let weights = Bf16Weights::new(&w, [k, n], kernel);
        let (rows, row_len) = weights.left_layout(m);
        let mut left = vec![bf16::ZERO; rows * row_len];
        for i in 0..m {
            for p in 0..k {
                left[i * row_len + p] = bf16::from_f32(a[i * k + p]);
            }
        }
        let mut scratch = Bf16Scratch::default();
        let mut product = vec![f32::NAN; weights.product_len(m, cols.len())];
        let stride = weights.multiply(&left, m, cols.clone(), &mut scratch, &mut product);
        assert_eq!(stride, cols.len().next_multiple_of(16));
        let want = reference(&a, &w, [m, k, n]);
        for i in 0..m {
            for (j, col) in cols.clone().enumerate() {
                let got = product[i * stride + j] as f64;
                let bound: f64 = (0..k)
                    .map(|p| (a[i * k + p] * w[p * n + col]).abs() as f64)
                    .sum::<f64>()
                    * 1e-6;
                let want = want[i * n + col];
                assert!(
                    (got - want).abs() <= bound,
                    "{kernel:?} ({i}, {col}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even neighbour is 1.
        assert_eq!(round(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(round(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(rounded(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
    }

    #[test]
    fn portable_products_are_the_bf16_sums() {
        check(Bf16Kernel::Portable, [5, 7, 3], 0..3);
        check(Bf16Kernel::Portable, [37, 147, 70], 16..70);
    }

    /// On CPUs with AVX512-BF16, its dot products against the same sums: ragged rows and
    /// panels, k that is not a multiple of 32, column ranges that start past panel 0.
    #[test]
    fn avx512_bf16_products_are_the_bf16_sums() {
        if !Bf16Kernel::Avx512Bf16.runs_here() {
            eprintln!("SKIPPED: this CPU has no AVX512-BF16, its kernel never runs here");
            return;
        }
        check(Bf16Kernel::Avx512Bf16, [5, 7, 3], 0..3);
        check(Bf16Kernel::Avx512Bf16, [37, 147, 70], 16..70);
        check(Bf16Kernel::Avx512Bf16, [64, 528, 96], 0..96);
        check(Bf16Kernel::Avx512Bf16, [29, 40, 24], 0..24);
        check(Bf16Kernel::Avx512Bf16, [15, 64, 48], 32..48);
    }

    /// The fused epilogue: max(sum + bias, 0) rounded to nearest even, written only to each
    /// panel's lanes of rows `stride` apart.
    #[test]
    fn avx512_bf16_epilogue_stores_rounded_activations() {
        if !Bf16Kernel::Avx512Bf16.runs_here() {
            eprintln!("SKIPPED: this CPU has no AVX512-BF16, its kernel never runs here");
            return;
        }
        let [m, k, n] = [31, 70, 40];
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 23.0)
            .collect();
        let bias: Vec<f32> = (0..n).map(|j| (j as f32 - 20.0) * 0.7).collect();
        let weights = Bf16Weights::new(&w, [k, n], Bf16Kernel::Avx512Bf16);
        assert!(weights.stores_activations());
        let (rows, row_len) = weights.left_layout(m);
        assert_eq!((rows, row_len), (m, 70));
        let mut left = vec![bf16::ZERO; rows * row_len];
        for i in 0..m {
            for p in 0..k {
                left[i * row_len + p] = bf16::from_f32(a[i * k + p]);
            }
        }
        // Columns 16..40 (two panels, the second of 8 lanes) into pixels of 30 values, from 3.
        let stride = 30;
        let sentinel = bf16::from_f32(-7.0);
        let mut out = vec![sentinel; m * stride];
        let panels: Vec<PanelOut<bf16>> = (0..2)
            .map(|i| PanelOut {
                ptr: out[3 + 16 * i..].as_mut_ptr(),
                stride,
                lanes: [16, 8][i],
            })
            .collect();
        // SAFETY: the panels' 31 rows of 16 and 8 values lie inside `out`, apart.
        unsafe { weights.multiply_bias_relu(&left, row_len, m, 16, &panels, &bias) };
        let want = reference(&a, &w, [m, k, n]);
        for i in 0..m {
            for j in 0..stride {
                let got = out[i * stride + j];
                if !(3..27).contains(&j) {
                    assert_eq!(got, sentinel, "({i}, {j}) written");
                    continue;
                }
                let col = 16 + j - 3;
                let exact = (want[i * n + col] + bias[col] as f64).max(0.0);
                assert!(
                    (got.to_f64() - exact).abs() <= exact.abs() / 256.0 + 1e-3,
                    "({i}, {col}): {got} vs {exact}"
                );
            }
        }
    }

    /// On CPUs with AMX, its tiles against the same sums: ragged rows, k that is not a multiple
    /// of 32, odd and even numbers of column blocks, column ranges that start past block 0.
    #[test]
    fn amx_products_are_the_bf16_sums() {
        if Bf16Kernel::detect() != Bf16Kernel::Amx {
            eprintln!("SKIPPED: this CPU or OS has no AMX, its tiles never run here");
            return;
        }
        check(Bf16Kernel::Amx, [5, 7, 3], 0..3);
        check(Bf16Kernel::Amx, [37, 147, 70], 16..70);
        check(Bf16Kernel::Amx, [64, 528, 96], 0..96);
        check(Bf16Kernel::Amx, [17, 40, 24], 0..24);
        check(Bf16Kernel::Amx, [49, 64, 48], 32..48);
    }
}
