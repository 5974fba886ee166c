//! A convolution with its products in int8 ([`super::int8`]): its f32 input quantized once into
//! a u8 map, or a u8 map as the layer before wrote it; the map's tiles then gathered (im2col),
//! max-pooled (quantization is monotone, so the pool of the quantized map is the quantized pool)
//! or read where they lie (1x1), and multiplied with the bias and the ReLU in the kernel's
//! epilogue, into f32 maps or, quantized again for the layer that reads them, u8 maps.

use std::ops::Range;
use std::sync::Mutex;

use rayon::prelude::*;

use super::conv::{ConvGemm, Scratch, Source, Target, gather_patches, max_pooled_rows, panels_of};
use super::int8::{Int8Weights, QUAD};
use super::int8_dot::Int8Out;
use super::map::{View, grow};
use super::packed::PANEL;
use super::window::Window;

/// Pixels quantized per parallel task.
const QUANTIZE_PIXELS: usize = 1024;

/// A convolution's int8 weights, the buffer its quantized input lives in between calls, and the
/// inverse scales of the layers that read its output columns from u8 maps.
pub(crate) struct Int8Conv {
    weights: Int8Weights,
    map: Mutex<Vec<u8>>,
    /// Per output column, `1 / s_x` of the layer that reads it ([`Int8Target::U8`]); empty
    /// until [`Self::set_readers`].
    reader_inverse: Vec<f32>,
}

/// Where an int8 product's columns go.
pub(crate) enum Int8Target<'a> {
    /// An f32 map.
    F32(Target<'a, f32>),
    /// A u8 map, quantized for the layer that reads it.
    U8(Target<'a, u8>),
}

impl Int8Target<'_> {
    /// Pixels of its buffer.
    fn pixels(&self) -> usize {
        match self {
            Self::F32(t) => t.pixels(),
            Self::U8(t) => t.pixels(),
        }
    }
}

impl Int8Conv {
    pub fn new(weights: Int8Weights) -> Self {
        Self {
            weights,
            map: Mutex::new(Vec::new()),
            reader_inverse: Vec::new(),
        }
    }

    /// The weights, and the quantization of the input.
    pub fn weights(&self) -> &Int8Weights {
        &self.weights
    }

    /// Sets the inverse input scale of the layer that reads each output column from a u8 map.
    pub fn set_readers(&mut self, inverse: Vec<f32>) {
        self.reader_inverse = inverse;
    }
}

/// `input` quantized as `weights` quantize their input, into `map` with `stride` bytes a pixel.
pub(crate) fn quantize_map(weights: &Int8Weights, input: View<f32>, stride: usize, map: &mut [u8]) {
    map[..input.shape.pixels() * stride]
        .par_chunks_mut(QUANTIZE_PIXELS * stride)
        .enumerate()
        .for_each(|(i, out)| {
            let first = i * QUANTIZE_PIXELS;
            let a = &input.data[first * input.stride + input.offset..];
            let m = out.len() / stride;
            weights.quantize_rows(a, input.stride, [m, input.shape.c], stride, out);
        });
}

impl ConvGemm {
    /// [`ConvGemm::run`] with the products in int8, on `source` quantized first, into f32 or u8
    /// `targets`. Panics if the convolution has no int8 weights.
    pub(crate) fn run_int8(&self, source: Source<f32>, targets: &[Int8Target]) {
        let int8 = self.int8().expect("a convolution with int8 weights");
        let input = source.map();
        // A 1x1 convolution reads its rows where they lie, so each pixel's channels are padded
        // to a quad; gathered patches and pooled rows are padded as they are copied, and read a
        // dense map's kernel rows in one copy each.
        let stride = match source {
            Source::Pixels(_) => input.shape.c.next_multiple_of(QUAD),
            Source::Patches(_) | Source::MaxPooled(..) => input.shape.c,
        };
        let mut map = int8.map.lock().unwrap_or_else(|p| p.into_inner());
        grow(&mut map, input.shape.pixels() * stride);
        quantize_map(&int8.weights, input, stride, &mut map);
        let quantized = View::channels(&map, input.shape, stride, 0);
        let quantized = match source {
            Source::Pixels(_) => Source::Pixels(quantized),
            Source::Patches(_) => Source::Patches(quantized),
            Source::MaxPooled(_, pool) => Source::MaxPooled(quantized, pool),
        };
        self.run_quantized(quantized, targets);
    }

    /// The int8 convolution on `source`, a map quantized as its weights quantize their input
    /// (a 1x1 convolution's pixels padded to a quad), into `targets`. Panics if it has no int8
    /// weights, or u8 targets and no readers ([`Int8Conv::set_readers`]).
    pub(crate) fn run_quantized(&self, source: Source<u8>, targets: &[Int8Target]) {
        let int8 = self.int8().expect("a convolution with int8 weights");
        let needs_readers = targets.iter().any(|t| matches!(t, Int8Target::U8(_)));
        assert!(
            !needs_readers || int8.reader_inverse.len() == self.out_channels,
            "u8 targets without the inverse scales of their readers"
        );
        let (window, _, rows) = self.plan(source, targets.iter().map(Int8Target::pixels));
        self.for_each_tile(rows, |rs, cs, scratch| {
            self.int8_tile(int8, source, &window, rs, cs, targets, scratch)
        });
    }

    /// The tile's rows of the quantized `source` times weight columns `cols`, into `targets`.
    #[allow(clippy::too_many_arguments)]
    fn int8_tile(
        &self,
        int8: &Int8Conv,
        source: Source<u8>,
        window: &Window,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Int8Target],
        scratch: &mut Scratch,
    ) {
        let weights = &int8.weights;
        let (m, row_len) = (rows.len(), weights.row_len());
        let left: &[u8] = match source {
            Source::Pixels(v) => {
                assert_eq!(v.stride, row_len, "1x1 rows are the quantized pixels");
                &v.data[rows.start * v.stride..][..m * row_len]
            }
            Source::Patches(v) => {
                grow(&mut scratch.int8_rows, m * row_len);
                let left = &mut scratch.int8_rows[..m * row_len];
                let border = weights.zero_point();
                gather_patches(v, window, rows.clone(), row_len, left, border);
                left
            }
            Source::MaxPooled(v, pool) => {
                grow(&mut scratch.int8_rows, m * row_len);
                let left = &mut scratch.int8_rows[..m * row_len];
                max_pooled_rows(v, &pool, rows.clone(), row_len, left);
                left
            }
        };
        let panels = &mut scratch.int8_panels;
        if panel_outs(targets, &int8.reader_inverse, &rows, &cols, panels) {
            // SAFETY: `panel_outs` checked that each panel lies inside one target, whose
            // `Target::new` checked the buffer; tiles cover disjoint (row, column) ranges.
            unsafe {
                let out = |i: usize| panels[i];
                let bias = Some(&self.bias[..]);
                weights.multiply_into(left, m, cols.start, panels.len(), out, bias);
            }
            return;
        }
        grow(&mut scratch.product, m * cols.len().next_multiple_of(PANEL));
        let stride = weights.multiply(left, m, cols.clone(), &mut scratch.product);
        let product = &scratch.product;
        let to_u8 = targets.iter().any(|t| matches!(t, Int8Target::U8(_)));
        let mut requantized = vec![0.0; if to_u8 { cols.len() } else { 0 }];
        for (r, p) in rows.enumerate() {
            let values = &product[r * stride..][..cols.len()];
            // The kernel's epilogue, a column at a time: relu(v + bias) · inverse, rounded and
            // saturated as a u8 target writes it.
            for ((q, &v), c) in requantized.iter_mut().zip(values).zip(cols.clone()) {
                *q = (v + self.bias[c]).max(0.0) * int8.reader_inverse[c];
            }
            for target in targets {
                // SAFETY: tiles cover disjoint (row, column) ranges, so no two threads write the
                // same value.
                match target {
                    Int8Target::F32(t) => unsafe {
                        t.write_bias_relu(p, cols.clone(), values, &self.bias)
                    },
                    Int8Target::U8(t) => unsafe { t.write(p, cols.clone(), &requantized) },
                }
            }
        }
    }
}

/// The panels of columns `cols` from row `rows.start` on, if each lies inside one target; u8
/// panels with their readers' inverse scales.
fn panel_outs(
    targets: &[Int8Target],
    reader_inverse: &[f32],
    rows: &Range<usize>,
    cols: &Range<usize>,
    out: &mut Vec<Int8Out>,
) -> bool {
    panels_of(cols, out, |c, lanes| {
        targets.iter().find_map(|t| match t {
            Int8Target::F32(t) => t.panel(rows.start, c, lanes).map(Int8Out::F32),
            Int8Target::U8(t) => t
                .panel(rows.start, c, lanes)
                .map(|p| Int8Out::U8(p, reader_inverse[c..].as_ptr())),
        })
    })
}

#[cfg(test)]
mod tests {
    use burn::prelude::Device;

    use super::*;
    use crate::engine::int8::Int8Kernel;
    use crate::engine::map::Shape;
    use crate::model::conv_unit::ConvUnit;
    use crate::model::{GoogLeNetConfig, Variant};

    /// The outputs of `unit` (inception 3a's first 1x1 convolution, 192 -> 64) in int8 on
    /// `kernel`: quantized into u8 targets whose columns split at `splits`, then reassembled
    /// into one row of 64 a pixel; and in f32.
    fn outputs(unit: &ConvUnit, kernel: Int8Kernel, splits: &[usize]) -> (Vec<u8>, Vec<f32>) {
        let mut conv = ConvGemm::from_unit(unit).unwrap().in_int8(kernel);
        // A bias of both signs, which initialised BatchNorm does not give.
        conv.bias = (0..64).map(|c| (c as f32 - 32.0) * 0.02).collect();
        let readers = (0..64).map(|c| 40.0 + c as f32).collect();
        conv.int8_mut().unwrap().set_readers(readers);
        let shape = Shape {
            n: 1,
            h: 5,
            w: 7,
            c: 192,
        };
        let map: Vec<u8> = (0..shape.len()).map(|i| (i * 7919 % 251) as u8).collect();
        let source = Source::Pixels(View::dense(&map, shape));
        let m = shape.pixels();
        let bounds: Vec<usize> = [0].iter().chain(splits).chain(&[64]).copied().collect();
        // Each target a map of its own, its columns side by side, pixel after pixel.
        let mut maps: Vec<Vec<u8>> = bounds
            .windows(2)
            .map(|b| vec![0; m * (b[1] - b[0])])
            .collect();
        let targets: Vec<Int8Target> = maps
            .iter_mut()
            .zip(bounds.windows(2))
            .map(|(map, b)| Int8Target::U8(Target::new(b[0]..b[1], map, m, b[1] - b[0], 0)))
            .collect();
        conv.run_quantized(source, &targets);
        drop(targets);
        let mut rows = vec![0u8; m * 64];
        for (map, b) in maps.iter().zip(bounds.windows(2)) {
            let width = b[1] - b[0];
            for p in 0..m {
                rows[p * 64 + b[0]..][..width].copy_from_slice(&map[p * width..][..width]);
            }
        }
        let mut floats = vec![0.0f32; m * 64];
        let f32_target = Int8Target::F32(Target::new(0..64, &mut floats, m, 64, 0));
        conv.run_quantized(source, &[f32_target]);
        (rows, floats)
    }

    #[test]
    fn u8_targets_hold_the_quantized_f32_outputs_through_the_kernel_or_the_product_buffer() {
        let model = GoogLeNetConfig::new(Variant::Torchvision)
            .with_input_size(96)
            .init(&Device::flex())
            .unwrap();
        let unit = &model.inceptions()[0].1.branch1;
        for kernel in [Int8Kernel::Portable, Int8Kernel::detect()] {
            // Whole panels go through the kernel's epilogue; targets that split a panel
            // through the product buffer.
            let (whole, floats) = outputs(unit, kernel, &[]);
            let (split, _) = outputs(unit, kernel, &[8, 40]);
            assert_eq!(whole, split, "{kernel:?}");
            let want: Vec<u8> = floats
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let inverse = 40.0 + (i % 64) as f32;
                    (v * inverse).round_ties_even().clamp(0.0, 255.0) as u8
                })
                .collect();
            assert_eq!(whole, want, "{kernel:?}");
            assert!(
                want.iter().any(|&q| q > 0 && q < 255),
                "values inside the range"
            );
        }
    }
}
