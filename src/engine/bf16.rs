//! bf16 matrix products for inference: both operands rounded to bf16 (round to nearest even),
//! the products summed in f32. The convolutions' weights are rounded once, after BatchNorm has
//! been folded into them in f32; the activations stay f32 between layers and are rounded as each
//! tile of a product reads them; bias and ReLU are applied in f32.
//!
//! Two kernels compute the same sums:
//! - AMX tiles ([`super::amx`]) where the CPU and the OS allow them, the weights packed once into
//!   the tiles' layout;
//! - elsewhere the f32 GEMM on the rounded values (a product of two bf16 numbers is exact in f32):
//!   bf16's numbers at f32's speed.

use std::ops::Range;

use half::bf16;

use super::matmul::matmul;

/// Which kernel this process's bf16 products run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// Intel AMX tiles.
    Amx,
    /// The f32 GEMM on bf16-rounded operands.
    Portable,
}

impl Bf16Kernel {
    /// The fastest kernel this CPU and OS allow.
    pub fn detect() -> Self {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if super::amx::available() {
            return Bf16Kernel::Amx;
        }
        Bf16Kernel::Portable
    }

    /// Its name in reports (`amx`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Amx => "amx",
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
    /// a multiple of 32 and n to one of 16.
    Tiles { values: Vec<u16>, k_blocks: usize },
    /// Row-major `[k, n]`, each value rounded to bf16.
    Rounded(Vec<f32>),
}

/// Per-thread buffers of the bf16 kernels.
#[derive(Default)]
pub(crate) struct Bf16Scratch {
    left: Vec<u16>,
    rounded: Vec<f32>,
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
    /// `weights` (row-major `[k, n]`) for `kernel`.
    pub fn new(weights: &[f32], [k, n]: [usize; 2], kernel: Bf16Kernel) -> Self {
        assert_eq!(weights.len(), k * n, "weights are not [k, n]");
        let packed = match kernel {
            Bf16Kernel::Portable => Packed::Rounded(weights.iter().map(|&w| rounded(w)).collect()),
            Bf16Kernel::Amx => {
                use super::amx::{B_TILE, TILE_COLS, TILE_K};
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
                Packed::Tiles { values, k_blocks }
            }
        };
        Self { k, n, packed }
    }

    /// `product[r, j] = Σ_p a[r, p] · w[p, cols.start + j]` for the `m` rows of `a` (`a_stride`
    /// floats apart) and the columns `cols` (starting at a multiple of 16). Returns the
    /// distance between the product's rows; `product` grows to fit.
    pub fn multiply(
        &self,
        a: &[f32],
        a_stride: usize,
        m: usize,
        cols: Range<usize>,
        scratch: &mut Bf16Scratch,
        product: &mut Vec<f32>,
    ) -> usize {
        assert!(cols.end <= self.n && a_stride >= self.k);
        assert!(
            m == 0 || a.len() >= (m - 1) * a_stride + self.k,
            "lhs too short"
        );
        let k = self.k;
        match &self.packed {
            Packed::Rounded(weights) => {
                let n = cols.len();
                super::map::grow(&mut scratch.rounded, m * k);
                for (row, out) in a.chunks(a_stride).zip(scratch.rounded.chunks_exact_mut(k)) {
                    out.iter_mut()
                        .zip(&row[..k])
                        .for_each(|(o, &v)| *o = rounded(v));
                }
                super::map::grow(product, m * n);
                let b = &weights[cols.start..];
                let lhs = &scratch.rounded[..m * k];
                matmul(product, n, lhs, k, b, self.n, [m, k, n], false);
                n
            }
            Packed::Tiles { values, k_blocks } => {
                #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                {
                    self.multiply_amx(a, a_stride, m, cols, *k_blocks, values, scratch, product)
                }
                #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
                unreachable!(
                    "AMX weights are only packed where AMX exists ({k_blocks}, {})",
                    values.len()
                )
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[allow(clippy::too_many_arguments)]
    fn multiply_amx(
        &self,
        a: &[f32],
        a_stride: usize,
        m: usize,
        cols: Range<usize>,
        k_blocks: usize,
        values: &[u16],
        scratch: &mut Bf16Scratch,
        product: &mut Vec<f32>,
    ) -> usize {
        use super::amx::{self, B_TILE, TILE_COLS, TILE_K, TILE_ROWS};
        assert!(cols.start % TILE_COLS == 0, "columns start inside a tile");
        let row_blocks = m.div_ceil(TILE_ROWS);
        let col_blocks = cols.len().div_ceil(TILE_COLS);
        let k_pad = k_blocks * TILE_K;
        let left = &mut scratch.left;
        if left.len() < row_blocks * TILE_ROWS * k_pad {
            left.resize(row_blocks * TILE_ROWS * k_pad, 0);
        }
        let left = &mut left[..row_blocks * TILE_ROWS * k_pad];
        for (r, out) in left.chunks_exact_mut(k_pad).enumerate() {
            if r < m {
                to_bf16(&a[r * a_stride..][..self.k], &mut out[..self.k]);
                out[self.k..].fill(0);
            } else {
                out.fill(0);
            }
        }
        let stride = col_blocks * TILE_COLS;
        super::map::grow(product, row_blocks * TILE_ROWS * stride);
        let right = &values[cols.start / TILE_COLS * k_blocks * B_TILE..];
        assert!(right.len() >= col_blocks * k_blocks * B_TILE);
        // SAFETY: the kernel is only packed for when `amx::available()` returned true; `left`
        // holds row_blocks x 16 rows of k_pad values, `right` col_blocks x k_blocks tiles, and
        // `product` row_blocks x 16 rows of `stride` floats, all as `multiply` reads them.
        unsafe {
            amx::multiply(
                amx::Left {
                    ptr: left.as_ptr(),
                    row_bytes: k_pad * 2,
                    row_blocks,
                    k_blocks,
                },
                right.as_ptr(),
                amx::Product {
                    ptr: product.as_mut_ptr(),
                    row_bytes: stride * 4,
                    col_blocks,
                },
            )
        };
        stride
    }
}

/// `out[i]` = `values[i]` rounded to bf16.
fn to_bf16(values: &[f32], out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has AVX512-BF16 (and so AVX512F), what the function needs.
        unsafe { to_bf16_avx512(values, out) };
        return;
    }
    out.iter_mut().zip(values).for_each(|(o, &v)| *o = round(v));
}

/// [`to_bf16`] with `VCVTNEPS2BF16`, 16 values per instruction (round to nearest even, as
/// [`round`]; it flushes subnormal inputs to zero).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16_avx512(values: &[f32], out: &mut [u16]) {
    use std::arch::x86_64::*;
    let n = values.len().min(out.len());
    let whole = n / 16 * 16;
    for i in (0..whole).step_by(16) {
        // SAFETY: i + 16 <= n, inside both slices.
        unsafe {
            let v = _mm512_loadu_ps(values.as_ptr().add(i));
            let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, b);
        }
    }
    for i in whole..n {
        out[i] = round(values[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bf16 sums in f64, the reference both kernels approach.
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
        let mut scratch = Bf16Scratch::default();
        let mut product = Vec::new();
        let stride = weights.multiply(&a, k, m, cols.clone(), &mut scratch, &mut product);
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
        let values: Vec<f32> = (0..40).map(|i| 1.0 + i as f32 / 512.0 - 0.3).collect();
        let mut out = vec![0; 40];
        to_bf16(&values, &mut out);
        let want: Vec<u16> = values.iter().map(|&v| round(v)).collect();
        assert_eq!(out, want, "the vector conversion rounds as the scalar one");
    }

    #[test]
    fn portable_products_are_the_bf16_sums() {
        check(Bf16Kernel::Portable, [5, 7, 3], 0..3);
        check(Bf16Kernel::Portable, [37, 147, 70], 16..70);
    }

    /// On CPUs with AMX, its tiles against the same sums: ragged rows, k that is not a multiple
    /// of 32, odd and even numbers of column blocks, column ranges that start past block 0.
    #[test]
    fn amx_products_are_the_bf16_sums() {
        if Bf16Kernel::detect() != Bf16Kernel::Amx {
            eprintln!("this CPU or OS has no AMX: only the portable kernel is checked");
            return;
        }
        check(Bf16Kernel::Amx, [5, 7, 3], 0..3);
        check(Bf16Kernel::Amx, [37, 147, 70], 16..70);
        check(Bf16Kernel::Amx, [64, 528, 96], 0..96);
        check(Bf16Kernel::Amx, [17, 40, 24], 0..24);
        check(Bf16Kernel::Amx, [49, 64, 48], 32..48);
    }
}
