//! Max pooling (PyTorch's `ceil_mode=True` rule) and adaptive average pooling on NHWC maps,
//! forward and backward, for training: the max pool remembers which input each output took.
//! The channels of a pixel are contiguous, so a window is an element-wise maximum (or sum) of
//! whole pixel vectors.

use std::ops::Range;

use rayon::prelude::*;

use super::super::map::Shape;
use super::super::simd::simd_kernel;

/// A max pool as PyTorch's `MaxPool2d(kernel, stride, padding, ceil_mode=True)`: output per side
/// `ceil((n + 2·pad − kernel) / stride) + 1`, minus one if the last window would start at or past
/// `n + pad`; padding never wins. torchvision's GoogLeNet uses 3/2/0, 3/1/1 (inside inception
/// modules) and 2/2/0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaxPoolShape {
    /// Side of the square window.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
}

impl MaxPoolShape {
    /// The output shape for `input`, or `None` where PyTorch refuses the pool: an empty input,
    /// a zero kernel or stride, padding over half the kernel, or an input smaller than a window.
    pub fn output(&self, input: Shape) -> Option<Shape> {
        Some(Shape {
            h: self.side(input.h)?,
            w: self.side(input.w)?,
            ..input
        })
    }

    /// Output positions along one side of `n` pixels (PyTorch's `pooling_output_shape`).
    fn side(&self, n: usize) -> Option<usize> {
        if n == 0 || self.kernel == 0 || self.stride == 0 || 2 * self.pad > self.kernel {
            return None;
        }
        let span = (n + 2 * self.pad).checked_sub(self.kernel)?;
        let mut out = span.div_ceil(self.stride) + 1;
        // The last window must start inside the input or its left padding.
        if (out - 1) * self.stride >= n + self.pad {
            out -= 1;
        }
        Some(out)
    }

    /// Input rows (or columns) under output position `o` on a side of `n`, clipped to the input:
    /// padding never takes part in a max. Never empty for a position [`Self::side`] allows.
    fn span(&self, o: usize, n: usize) -> Range<usize> {
        let start = (o * self.stride).saturating_sub(self.pad);
        let end = (o * self.stride + self.kernel)
            .saturating_sub(self.pad)
            .min(n);
        start..end
    }
}

/// Channels per register block in the max pool: 16 maxima and 16 indices fit in AVX2 registers.
const BLOCK: usize = 16;

simd_kernel! {
    /// Output row `row` of image `image` of the max pool: for every output pixel of the row and
    /// every channel, the maximum over its window into `y` and the index into `x` of the value
    /// taken into `at`. PyTorch's rule (`val > max || isnan(val)` in row-major window order,
    /// starting from −∞ at the window's first pixel): the first maximum wins a tie, a NaN beats
    /// every number (the last NaN if several). Per output pixel, channels go in blocks of
    /// [`BLOCK`] so that the running maxima and their pixel numbers stay in registers across the
    /// window, then the remaining channels; pixel numbers become indices into `x` at the end.
    fn max_row(
        pool: &MaxPoolShape,
        x: &[f32],
        xs: Shape,
        at_row: [usize; 2],
        y: &mut [f32],
        at: &mut [u32],
    ) {
        let [image, row] = at_row;
        let c = xs.c;
        let rows = pool.span(row, xs.h);
        let outputs = y.chunks_exact_mut(c).zip(at.chunks_exact_mut(c));
        for (col, (y, at)) in outputs.enumerate() {
            let window = [rows.clone(), pool.span(col, xs.w)];
            let first = ((image * xs.h + window[0].start) * xs.w + window[1].start) as u32;
            let blocks = c / BLOCK * BLOCK;
            for start in (0..blocks).step_by(BLOCK) {
                let mut best = [f32::NEG_INFINITY; BLOCK];
                let mut index = [first; BLOCK];
                scan(x, xs, image, &window, start, &mut best, &mut index);
                y[start..start + BLOCK].copy_from_slice(&best);
                at[start..start + BLOCK].copy_from_slice(&index);
            }
            let (best, index) = (&mut y[blocks..], &mut at[blocks..]);
            best.fill(f32::NEG_INFINITY);
            index.fill(first);
            scan(x, xs, image, &window, blocks, best, index);
            for (ch, i) in at.iter_mut().enumerate() {
                *i = *i * c as u32 + ch as u32;
            }
        }
    }
}

/// The maxima over the input rows and columns `window` of image `image`, for channels
/// `start..start + best.len()`, into `best` and their pixel numbers into `index` (which hold
/// the starting values), with PyTorch's comparison.
#[inline(always)]
fn scan(
    x: &[f32],
    xs: Shape,
    image: usize,
    [rows, cols]: &[Range<usize>; 2],
    start: usize,
    best: &mut [f32],
    index: &mut [u32],
) {
    for r in rows.clone() {
        for q in cols.clone() {
            let pixel = (image * xs.h + r) * xs.w + q;
            let values = &x[pixel * xs.c + start..][..best.len()];
            for ((b, i), &v) in best.iter_mut().zip(index.iter_mut()).zip(values) {
                let take = v > *b || v.is_nan();
                *b = if take { v } else { *b };
                *i = if take { pixel as u32 } else { *i };
            }
        }
    }
}

/// `y` (dense, overwritten) = max over each window; `argmax[i]` (same length as y, overwritten)
/// = the index into `x` of the value taken (PyTorch's tie rule: the first maximum in row-major
/// window order; a NaN wins). Only the first `pool.output(xs).len()` elements of `y` and
/// `argmax` are written. Parallel over output rows.
pub(crate) fn max_forward(
    pool: &MaxPoolShape,
    x: &[f32],
    xs: Shape,
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let ys = pool.output(xs).expect("max pool input too small");
    assert!(x.len() >= xs.len(), "input buffer shorter than the map");
    assert!(
        u32::try_from(xs.len()).is_ok(),
        "map too large for u32 indices"
    );
    assert!(
        y.len() >= ys.len() && argmax.len() >= ys.len(),
        "output buffers shorter than the map"
    );
    if ys.len() == 0 {
        return;
    }
    let line = ys.w * ys.c;
    y[..ys.len()]
        .par_chunks_mut(line)
        .zip(argmax[..ys.len()].par_chunks_mut(line))
        .enumerate()
        .for_each(|(r, (y, at))| max_row(pool, x, xs, [r / ys.h, r % ys.h], y, at));
}

/// What [`max_backward`] does with the values `dx` already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GradientWrite {
    /// `dx` is the pool's input gradient alone: zeroed, then the gradients added.
    Overwrite,
    /// Another branch's gradient is already in `dx`: the gradients are added to it.
    Accumulate,
}

/// `dx[argmax[i]] += dy[i]`, onto zeros or onto what `dx` held (`write`). Race-free in parallel:
/// split over images (windows never cross images, so every index of an image's outputs falls in
/// that image's part of `dx`). To overwrite, each image zeroes its input rows just before the
/// first output row whose window reaches them, so the rows are still in cache when the gradients
/// land. Only the first `xs.len()` floats of `dx` are touched.
pub(crate) fn max_backward(
    pool: &MaxPoolShape,
    xs: Shape,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
    write: GradientWrite,
) {
    let ys = pool.output(xs).expect("max pool input too small");
    assert!(
        dy.len() >= ys.len() && argmax.len() >= ys.len(),
        "gradient buffers shorter than the map"
    );
    assert!(
        dx.len() >= xs.len(),
        "input gradient buffer shorter than the map"
    );
    let (image_in, image_out) = (xs.h * xs.w * xs.c, ys.h * ys.w * ys.c);
    if image_in == 0 || image_out == 0 {
        return;
    }
    let (row_in, row_out) = (xs.w * xs.c, ys.w * ys.c);
    dx[..xs.len()]
        .par_chunks_mut(image_in)
        .zip(dy[..ys.len()].par_chunks(image_out))
        .zip(argmax[..ys.len()].par_chunks(image_out))
        .enumerate()
        .for_each(|(image, ((dx, dy), argmax))| {
            let base = image * image_in;
            let mut zeroed = 0;
            let rows = dy.chunks(row_out).zip(argmax.chunks(row_out));
            for (o, (dy, argmax)) in rows.enumerate() {
                if write == GradientWrite::Overwrite {
                    // Output row o reads input rows up to its window's end, and no further.
                    let end = pool.span(o, xs.h).end;
                    if end > zeroed {
                        dx[zeroed * row_in..end * row_in].fill(0.0);
                        zeroed = end;
                    }
                }
                for (&g, &i) in dy.iter().zip(argmax) {
                    // Panics (rather than race) for an index outside this image.
                    dx[i as usize - base] += g;
                }
            }
            if write == GradientWrite::Overwrite {
                // Rows below the last window take no gradient.
                dx[zeroed * row_in..].fill(0.0);
            }
        });
}

/// PyTorch's adaptive bin `o` of `out` on a side of `n`: `[floor(o·n/out), ceil((o+1)·n/out))`
/// (`start_index` / `end_index` in `AdaptiveAveragePooling.cpp`); neighbouring bins overlap
/// where `out` does not divide `n`.
fn bin(o: usize, n: usize, out: usize) -> Range<usize> {
    o * n / out..((o + 1) * n).div_ceil(out)
}

/// PyTorch's `adaptive_avg_pool2d` to `out_hw` (bins [floor(i·n/out), ceil((i+1)·n/out))):
/// torchvision's GoogLeNet pools 7x7→1x1 before the classifier and 14x14→4x4 in the auxiliary
/// heads (overlapping bins). `y` dense `[n, oh, ow, c]`, overwritten (its first
/// `n·oh·ow·c` floats). Each bin is summed in f32 in row-major order and divided by its size.
pub(crate) fn adaptive_avg_forward(x: &[f32], xs: Shape, out_hw: [usize; 2], y: &mut [f32]) {
    let [oh, ow] = out_hw;
    assert!(oh > 0 && ow > 0, "adaptive pool to an empty map");
    assert!(x.len() >= xs.len(), "input buffer shorter than the map");
    let ys = Shape { h: oh, w: ow, ..xs };
    assert!(y.len() >= ys.len(), "output buffer shorter than the map");
    let c = xs.c;
    if ys.len() == 0 {
        return;
    }
    y[..ys.len()]
        .par_chunks_mut(c)
        .enumerate()
        .for_each(|(p, out)| {
            let image = p / (oh * ow);
            let rows = bin(p / ow % oh, xs.h, oh);
            let cols = bin(p % ow, xs.w, ow);
            let count = (rows.len() * cols.len()) as f32;
            out.fill(0.0);
            for r in rows {
                for q in cols.clone() {
                    let pixel = &x[((image * xs.h + r) * xs.w + q) * c..][..c];
                    for (o, &v) in out.iter_mut().zip(pixel) {
                        *o += v;
                    }
                }
            }
            out.iter_mut().for_each(|o| *o /= count);
        });
}

/// ACCUMULATES ∂L/∂x of [`adaptive_avg_forward`] into `dx` (dense `xs`, its first `xs.len()`
/// floats): every input of a bin gets the bin's gradient divided by the bin's size, summed over
/// the (overlapping) bins it lies in. Split over images, race-free.
pub(crate) fn adaptive_avg_backward(xs: Shape, out_hw: [usize; 2], dy: &[f32], dx: &mut [f32]) {
    let [oh, ow] = out_hw;
    assert!(oh > 0 && ow > 0, "adaptive pool to an empty map");
    let c = xs.c;
    let (image_in, image_out) = (xs.h * xs.w * c, oh * ow * c);
    assert!(
        dy.len() >= xs.n * image_out,
        "gradient buffer shorter than the map"
    );
    assert!(
        dx.len() >= xs.len(),
        "input gradient buffer shorter than the map"
    );
    if image_in == 0 {
        return;
    }
    dx[..xs.len()]
        .par_chunks_mut(image_in)
        .zip(dy[..xs.n * image_out].par_chunks(image_out))
        .for_each(|(dx, dy)| {
            for (p, g) in dy.chunks_exact(c).enumerate() {
                let rows = bin(p / ow, xs.h, oh);
                let cols = bin(p % ow, xs.w, ow);
                let count = (rows.len() * cols.len()) as f32;
                for r in rows {
                    for q in cols.clone() {
                        let pixel = &mut dx[(r * xs.w + q) * c..][..c];
                        for (d, &g) in pixel.iter_mut().zip(g) {
                            *d += g / count;
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests;
