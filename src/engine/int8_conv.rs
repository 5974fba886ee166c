//! A convolution with its products in int8 ([`super::int8`]): its f32 input quantized once into
//! a u8 map, whose tiles are then gathered (im2col), max-pooled (quantization is monotone, so
//! the pool of the quantized map is the quantized pool) or read where they lie (1x1), and
//! multiplied with the bias and the ReLU in the kernel's epilogue, into the f32 targets.

use std::ops::Range;
use std::sync::Mutex;

use rayon::prelude::*;

use super::conv::{ConvGemm, Scratch, Source, Target, gather_patches, max_pooled_rows, panel_outs};
use super::int8::{Int8Weights, QUAD};
use super::map::{View, grow};
use super::packed::PANEL;
use super::window::Window;

/// Pixels quantized per parallel task.
const QUANTIZE_PIXELS: usize = 1024;

/// A convolution's int8 weights and the buffer its quantized input lives in between calls.
pub(crate) struct Int8Conv {
    weights: Int8Weights,
    map: Mutex<Vec<u8>>,
}

impl Int8Conv {
    pub fn new(weights: Int8Weights) -> Self {
        Self {
            weights,
            map: Mutex::new(Vec::new()),
        }
    }
}

impl ConvGemm {
    /// [`ConvGemm::run`] with the products in int8.
    pub(super) fn run_int8(&self, int8: &Int8Conv, source: Source<f32>, targets: &[Target<f32>]) {
        let (window, _, rows) = self.plan(source, targets);
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
        let weights = &int8.weights;
        map[..input.shape.pixels() * stride]
            .par_chunks_mut(QUANTIZE_PIXELS * stride)
            .enumerate()
            .for_each(|(i, out)| {
                let first = i * QUANTIZE_PIXELS;
                let a = &input.data[first * input.stride + input.offset..];
                let m = out.len() / stride;
                weights.quantize_rows(a, input.stride, [m, input.shape.c], stride, out);
            });
        let quantized = View::channels(&map, input.shape, stride, 0);
        let quantized = match source {
            Source::Pixels(_) => Source::Pixels(quantized),
            Source::Patches(_) => Source::Patches(quantized),
            Source::MaxPooled(_, pool) => Source::MaxPooled(quantized, pool),
        };
        self.for_each_tile(rows, |rs, cs, scratch| {
            self.int8_tile(weights, quantized, &window, rs, cs, targets, scratch)
        });
    }

    /// The tile's rows of the quantized `source` times weight columns `cols`, into `targets`.
    #[allow(clippy::too_many_arguments)]
    fn int8_tile(
        &self,
        weights: &Int8Weights,
        source: Source<u8>,
        window: &Window,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Target<f32>],
        scratch: &mut Scratch,
    ) {
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
        let panels = &mut scratch.panels;
        if panel_outs(targets, &rows, &cols, panels) {
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
        self.write_product(&scratch.product, stride, rows, cols, targets);
    }
}
