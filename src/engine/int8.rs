//! int8 products for inference after calibration: the convolutions' inputs quantized to u8 and
//! their (BatchNorm-folded) weights to i8, summed exactly in i32, then scaled back to f32 before
//! the bias and the ReLU (and quantized again where a u8 map holds the result).
//!
//! - Weights: symmetric, one scale per output channel, `w ≈ s_w[o] · q` with `q` in −127..=127
//!   and `s_w[o] = max |w[·, o]| / 127`.
//! - Inputs: one scale per convolution from the range seen on calibration images
//!   ([`super::calibrator`]), `x ≈ s_x · (u − z)` with `u` in 0..=255. Where no input was negative,
//!   `z = 0` and `s_x = max x / 255`: every convolution but the first, which read a ReLU's output
//!   (or a max pool or LRN of one). Where one was, `z = 128` and `s_x = max |x| / 127`: the first,
//!   which reads the normalised image.
//! - Product: `y[r, o] = s_x · s_w[o] · (Σ u[r, p] · q[p, o] − z · Σ_p q[p, o])`, the second sum
//!   computed once per filter, on AVX512-VNNI's `VPDPBUSD` (`int8_dot.rs`) where the CPU has it,
//!   else in plain Rust with the same integer sums.
//!
//! The weights lie in panels of 16 columns, each a run of k quads (4 consecutive k of 16
//! columns, 64 bytes), the layout `VPDPBUSD` reads: one register of a panel holds one quad of
//! each of its columns.

use std::ops::Range;
use std::slice;

use super::calibrator::InputRange;
use super::int8_dot::Int8Out;
use super::packed::{PANEL, product_panels};
use super::simd::simd_kernel;

/// Consecutive k that one `VPDPBUSD` lane sums.
pub(crate) const QUAD: usize = 4;

/// Which code multiplies the int8 operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Int8Kernel {
    /// AVX512-VNNI's `VPDPBUSD` (Intel since Cascade Lake, AMD since Zen 4).
    Avx512Vnni,
    /// Plain Rust: the same sums, many times slower.
    Portable,
}

impl Int8Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        match super::int8_dot::runs_here() {
            true => Self::Avx512Vnni,
            false => Self::Portable,
        }
    }

    /// The name reports use (`avx512-vnni`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "avx512-vnni",
            Self::Portable => "portable",
        }
    }
}

/// A `[k, n]` weight matrix quantized to i8 per column, with the input scale of its convolution.
pub(crate) struct Int8Weights {
    k: usize,
    n: usize,
    /// Panels of [`PANEL`] columns, each `k.div_ceil(QUAD)` quads of 64 bytes; zeros past k and n.
    packed: Vec<i8>,
    /// Per column, `s_x · s_w[o]`: what an integer sum is multiplied by.
    scales: Vec<f32>,
    /// Per column, `z · Σ_p q[p, o]`: what the integer sum is off by.
    offsets: Vec<i32>,
    /// `1 / s_x`.
    input_inverse: f32,
    /// The input's zero point `z`, as a float.
    zero_point: f32,
    kernel: Int8Kernel,
}

impl Int8Weights {
    /// Quantizes row-major `[k, n]` weights for inputs in `range` (the calibration's; a map
    /// that was zero everywhere gets a step of 1/255).
    pub fn new(weights: &[f32], [k, n]: [usize; 2], range: InputRange, kernel: Int8Kernel) -> Self {
        assert_eq!(weights.len(), k * n, "weights are not [k, n]");
        let (zero_point, steps, bound) = match range.most_negative > 0.0 {
            true => (128, 127.0, range.largest.max(range.most_negative)),
            false => (0, 255.0, range.largest),
        };
        let input_scale = match bound.is_finite() && bound > 0.0 {
            true => bound / steps,
            false => 1.0 / 255.0,
        };
        let mut weight_scales = vec![0.0f32; n];
        for row in weights.chunks_exact(n.max(1)) {
            for (s, &w) in weight_scales.iter_mut().zip(row) {
                *s = s.max(w.abs());
            }
        }
        for s in &mut weight_scales {
            *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
        }
        let quads = k.div_ceil(QUAD);
        let mut packed = vec![0i8; n.div_ceil(PANEL) * quads * PANEL * QUAD];
        let mut offsets = vec![0i32; n];
        for (p, row) in weights.chunks_exact(n.max(1)).enumerate() {
            for (o, &w) in row.iter().enumerate() {
                let q = (w / weight_scales[o])
                    .round_ties_even()
                    .clamp(-127.0, 127.0) as i8;
                packed[Self::at(quads, p, o)] = q;
                offsets[o] += zero_point * q as i32;
            }
        }
        Self {
            k,
            n,
            packed,
            scales: weight_scales.iter().map(|s| s * input_scale).collect(),
            offsets,
            input_inverse: 1.0 / input_scale,
            zero_point: zero_point as f32,
            kernel,
        }
    }

    /// Where weight `(p, o)` lies in the packing.
    fn at(quads: usize, p: usize, o: usize) -> usize {
        ((o / PANEL * quads + p / QUAD) * PANEL + o % PANEL) * QUAD + p % QUAD
    }

    /// Bytes of one quantized input row: k rounded up to a quad.
    pub fn row_len(&self) -> usize {
        self.k.next_multiple_of(QUAD)
    }

    /// `1 / s_x`: what an input value is multiplied by before rounding.
    pub fn input_inverse(&self) -> f32 {
        self.input_inverse
    }

    /// The input's zero point: the step of 0.
    pub fn zero_point(&self) -> u8 {
        self.zero_point as u8
    }

    /// The `m` rows of `a` (`k` floats each, `a_stride` apart) quantized into `out`, rows of
    /// `row_len` bytes (at least k), zeros past k.
    pub fn quantize_rows(
        &self,
        a: &[f32],
        a_stride: usize,
        [m, k]: [usize; 2],
        row_len: usize,
        out: &mut [u8],
    ) {
        if a_stride == k && row_len == k {
            // Dense rows in and out: one run, whatever the width of a row.
            self.quantize_run(&a[..m * k], &mut out[..m * k]);
            return;
        }
        for (r, row) in out[..m * row_len].chunks_exact_mut(row_len).enumerate() {
            let (values, padding) = row.split_at_mut(k);
            self.quantize_run(&a[r * a_stride..][..k], values);
            padding.fill(0);
        }
    }

    /// `values` quantized into `out` (as long).
    fn quantize_run(&self, values: &[f32], out: &mut [u8]) {
        match self.kernel {
            // SAFETY: `Avx512Vnni` is only chosen where `detect` found AVX-512F with VNNI.
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx512Vnni => unsafe {
                let [inverse, zero] = [self.input_inverse, self.zero_point];
                super::int8_dot::quantize(values, inverse, zero, out)
            },
            _ => quantize_row(values, self.input_inverse, self.zero_point, out),
        }
    }

    /// `product[r, c] = scale[cols.start + c] · Σ_p left[r, p] · q[p, cols.start + c]` for the
    /// `m` rows of `left` (as [`Self::quantize_rows`] wrote them), into rows of `product` the
    /// returned number of floats apart (`cols.len()` rounded up to a panel). `cols` starts at a
    /// panel's first column.
    pub fn multiply(
        &self,
        left: &[u8],
        m: usize,
        cols: Range<usize>,
        product: &mut [f32],
    ) -> usize {
        let (stride, panel) = product_panels(product, m, cols.len());
        let panels = cols.len().div_ceil(PANEL);
        // SAFETY: `product` holds `m` rows of `stride` floats, which the panels split between
        // them, and is borrowed mutably here.
        unsafe {
            self.multiply_into(
                left,
                m,
                cols.start,
                panels,
                |i| Int8Out::F32(panel(i)),
                None,
            )
        };
        stride
    }

    /// The product of the `m` rows of `left` (as [`Self::quantize_rows`] wrote them) and
    /// `panels` panels of columns from `first_col` (a panel's first column), panel `i` written to
    /// `out(i)`: as it is, or with `bias_relu`'s bias (indexed by column) added and the ReLU
    /// applied; in f32, or quantized again for the layer that reads it ([`Int8Out::U8`]).
    ///
    /// # Safety
    /// Each panel's `m` rows of `lanes` values are writable and nothing else reads or writes them
    /// during the call; a u8 panel's inverse scales hold its lanes.
    pub unsafe fn multiply_into(
        &self,
        left: &[u8],
        m: usize,
        first_col: usize,
        panels: usize,
        out: impl Fn(usize) -> Int8Out,
        bias_relu: Option<&[f32]>,
    ) {
        let row_len = self.row_len();
        let quads = row_len / QUAD;
        let last = (0..panels)
            .map(|i| first_col + i * PANEL + out(i).lanes())
            .max();
        assert!(first_col.is_multiple_of(PANEL) && last.unwrap_or(0) <= self.n);
        assert!(left.len() >= m * row_len);
        assert!(bias_relu.is_none_or(|b| b.len() >= self.n));
        match self.kernel {
            Int8Kernel::Avx512Vnni => {
                let weights = &self.packed[first_col / PANEL * quads * PANEL * QUAD..];
                assert!(weights.len() >= panels * quads * PANEL * QUAD);
                let operands = super::int8_dot::Operands {
                    left: left.as_ptr(),
                    row_len,
                    m,
                    weights: weights.as_ptr(),
                    quads,
                    scales: self.scales[first_col..].as_ptr(),
                    offsets: self.offsets[first_col..].as_ptr(),
                };
                let bias = bias_relu.map(|b| b[first_col..].as_ptr());
                // SAFETY: `Int8Weights` holds `Avx512Vnni` only where `detect` found it; the
                // asserts bound the rows and panels read, and the scales and bias hold every
                // column of the panels (the masked loads leave the lanes past `n` alone); the
                // caller's guarantee covers the stores.
                unsafe { super::int8_dot::multiply(operands, panels, out, bias) }
            }
            Int8Kernel::Portable => {
                for i in 0..panels {
                    let panel = out(i);
                    for r in 0..m {
                        let row = &left[r * row_len..][..row_len];
                        for j in 0..panel.lanes() {
                            let o = first_col + i * PANEL + j;
                            let sum: i32 = (0..row_len)
                                .map(|p| row[p] as i32 * self.packed[Self::at(quads, p, o)] as i32)
                                .sum();
                            let mut value = (sum - self.offsets[o]) as f32 * self.scales[o];
                            if let Some(bias) = bias_relu {
                                value = (value + bias[o]).max(0.0);
                            }
                            // SAFETY: the caller's guarantee.
                            unsafe {
                                match panel {
                                    Int8Out::F32(out) => *out.ptr.add(r * out.stride + j) = value,
                                    Int8Out::U8(out, inverse) => {
                                        let byte = &mut *out.ptr.add(r * out.stride + j);
                                        let inverse = *inverse.add(j);
                                        quantize_row(&[value], inverse, 0.0, slice::from_mut(byte));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

simd_kernel! {
    /// `round(x / s_x) + z` of each value, clamped to 0..=255 (ties to even; a NaN becomes 0).
    fn quantize_row(values: &[f32], inverse: f32, zero: f32, out: &mut [u8]) {
        for (o, &v) in out.iter_mut().zip(values) {
            *o = ((v * inverse).round_ties_even() + zero).clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in −1..1.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(2_654_435_761).rotate_left(13);
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn unsigned(largest: f32) -> InputRange {
        InputRange {
            largest,
            most_negative: 0.0,
        }
    }

    /// The integer sums in i64 from the quantized operands, scaled as the kernel scales them.
    fn reference(w: &Int8Weights, left: &[u8], m: usize) -> Vec<f32> {
        let quads = w.row_len() / QUAD;
        let mut out = vec![0.0; m * w.n];
        for r in 0..m {
            for o in 0..w.n {
                let sum: i64 = (0..w.k)
                    .map(|p| {
                        let q = w.packed[Int8Weights::at(quads, p, o)] as i64;
                        left[r * w.row_len() + p] as i64 * q
                    })
                    .sum();
                out[r * w.n + o] = (sum - w.offsets[o] as i64) as f32 * w.scales[o];
            }
        }
        out
    }

    #[test]
    fn both_kernels_give_the_exact_integer_sums_on_ragged_shapes() {
        let shapes = [
            (1, 1, 1),
            (13, 7, 17),
            (30, 96, 48),
            (29, 1155, 33),
            (14, 4, 16),
        ];
        let ranges = [
            unsigned(6.0),
            InputRange {
                largest: 6.0,
                most_negative: 6.0,
            },
        ];
        for ((m, k, n), range) in shapes.into_iter().flat_map(|s| ranges.map(|r| (s, r))) {
            let weights = values(k * n, 7);
            let signed = range.most_negative > 0.0;
            let input: Vec<f32> = values(m * k, 3)
                .iter()
                .map(|v| if signed { v * 6.0 } else { v.abs() * 6.0 })
                .collect();
            for kernel in [Int8Kernel::Portable, Int8Kernel::detect()] {
                let w = Int8Weights::new(&weights, [k, n], range, kernel);
                let mut left = vec![0u8; m * w.row_len()];
                w.quantize_rows(&input, k, [m, k], w.row_len(), &mut left);
                let want = reference(&w, &left, m);
                // Every panel-aligned column range, as tiles split them.
                for cols in [0..n, 0..n.min(PANEL), (n / PANEL * PANEL).min(PANEL)..n] {
                    if cols.is_empty() {
                        continue;
                    }
                    let mut product = vec![f32::NAN; m * cols.len().next_multiple_of(PANEL)];
                    let stride = w.multiply(&left, m, cols.clone(), &mut product);
                    for r in 0..m {
                        let got = &product[r * stride..][..cols.len()];
                        assert_eq!(got, &want[r * n + cols.start..][..cols.len()], "{kernel:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn both_kernels_quantize_alike() {
        let mut input: Vec<f32> = values(1000, 1).iter().map(|v| v * 300.0).collect();
        input.extend([0.5, 1.5, 2.5, 254.5, 255.4, 255.6, 1e30, -1e30]);
        input.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0]);
        let quantized = |kernel, range| {
            // Rows of one quad: no padding between them.
            let w = Int8Weights::new(&[1.0; 4], [4, 1], range, kernel);
            let mut out = vec![7u8; input.len()];
            w.quantize_rows(&input, 4, [input.len() / 4, 4], 4, &mut out);
            out
        };
        let portable = quantized(Int8Kernel::Portable, unsigned(255.0));
        assert_eq!(
            portable[1000..],
            [0, 2, 2, 254, 255, 255, 255, 0, 0, 255, 0, 0]
        );
        assert_eq!(quantized(Int8Kernel::detect(), unsigned(255.0)), portable);
        // Zero point 128 and steps of 1 (the larger bound over 127): the same values shifted.
        let signed = InputRange {
            largest: 127.0,
            most_negative: 100.0,
        };
        let portable = quantized(Int8Kernel::Portable, signed);
        assert_eq!(
            portable[1000..],
            [128, 130, 130, 255, 255, 255, 255, 0, 0, 255, 0, 128]
        );
        assert_eq!(quantized(Int8Kernel::detect(), signed), portable);
    }

    #[test]
    fn strided_rows_quantize_as_a_dense_run_with_zero_padding() {
        // 3 values a row, 5 floats apart, into rows of a quad: as the dense run of those values.
        let input = values(5 * 40, 3);
        let dense: Vec<f32> = input.chunks(5).flat_map(|row| row[..3].to_vec()).collect();
        for kernel in [Int8Kernel::Portable, Int8Kernel::detect()] {
            let w = Int8Weights::new(&[1.0; 3], [3, 1], unsigned(1.0), kernel);
            let mut run = vec![7u8; dense.len()];
            w.quantize_rows(&dense, 3, [40, 3], 3, &mut run);
            let mut rows = vec![7u8; 40 * 4];
            w.quantize_rows(&input, 5, [40, 3], 4, &mut rows);
            for (row, values) in rows.chunks(4).zip(run.chunks(3)) {
                assert_eq!(row[..3], *values);
                assert_eq!(row[3], 0);
            }
            assert!(run.iter().any(|&q| q > 100), "values spread over the range");
        }
    }

    #[test]
    fn quantization_rounds_to_the_nearest_step_within_range() {
        let w = Int8Weights::new(
            &[0.5, -1.0, 0.25],
            [3, 1],
            unsigned(255.0),
            Int8Kernel::Portable,
        );
        let mut out = [9u8; 8];
        w.quantize_rows(&[2.5, 3.5, -4.0, 300.0, 0.4, 0.6], 3, [2, 3], 4, &mut out);
        // Ties to even, negatives to 0, past the calibrated maximum to 255; zeros after k.
        assert_eq!(out, [2, 4, 0, 0, 255, 0, 1, 0]);
        // Column scale: the largest |w| over 127, times the input step (1).
        assert_eq!(w.scales, [1.0 / 127.0]);
        assert_eq!(w.packed[..4], [64, -127, 32, 0]);
    }

    #[test]
    fn the_product_approximates_the_f32_product() {
        let (m, k, n) = (20, 300, 40);
        let weights = values(k * n, 11);
        let input: Vec<f32> = values(m * k, 5).iter().map(|v| v.abs()).collect();
        let w = Int8Weights::new(&weights, [k, n], unsigned(1.0), Int8Kernel::detect());
        let mut left = vec![0u8; m * w.row_len()];
        w.quantize_rows(&input, k, [m, k], w.row_len(), &mut left);
        let mut product = vec![0.0; m * n.next_multiple_of(PANEL)];
        let stride = w.multiply(&left, m, 0..n, &mut product);
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for r in 0..m {
            for o in 0..n {
                let exact: f64 = (0..k)
                    .map(|p| input[r * k + p] as f64 * weights[p * n + o] as f64)
                    .sum();
                err += (product[r * stride + o] as f64 - exact).powi(2);
                norm += exact.powi(2);
            }
        }
        // 8-bit steps on both operands: about 0.5% of the products' spread.
        let relative = (err / norm).sqrt();
        assert!(relative < 0.02, "relative error {relative}");
        assert!(
            relative > 0.0,
            "the product should carry quantization error"
        );
    }
}
