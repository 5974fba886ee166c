//! Convolutions of the training engine, forward and backward, as matrix products over pixels.
//!
//! Activations are NHWC, so the pixels of a map are the rows of a matrix and a convolution with
//! weights `W`, a row-major `[kernel² · in, out]` matrix whose rows run over (kernel row, kernel
//! column, input channel), is `y[P, out] = patches(x)[P, kernel² · in] · W`, where row `p` of
//! `patches(x)` is output pixel `p`'s receptive field (im2col). A 1x1 convolution with stride 1 and
//! no padding multiplies the input itself, in one product spread over the threads; larger kernels
//! gather the patches one tile of output pixels at a time, so that a tile stays in cache, and
//! spread the tiles over the threads.
//!
//! Backward, with `dy = ∂L/∂y`:
//! - `dw = patches(x)ᵀ · dy` sums over all pixels. The pixels are cut into a fixed number of
//!   groups (two per thread); each group re-gathers the patches of its tiles and accumulates
//!   `patchesᵀ · dy_tile` into a partial `dw` of its own, and the partials are added at the end
//!   in a fixed order: no two threads ever write the same float, and the sum does not depend on
//!   which thread ran what (the same pool size gives the same bits). A 1x1 convolution on a map
//!   too small to share out that way is one product that gemm splits over blocks of `dw`.
//! - `dx` for stride 1 is itself a convolution: input pixel `i` receives
//!   `Σ W[(ky, kx, c), o] · dy[i + pad − (ky, kx), o]`, which is a forward convolution of `dy` with
//!   the flipped, transposed kernel `W'[(ky, kx, o), c] = W[(k−1−ky, k−1−kx, c), o]` and padding
//!   `k − 1 − pad`. It runs as the same tiled im2col product as the forward pass, race-free, with
//!   no scatter (`dx = dy · Wᵀ` for a 1x1 kernel). Strided convolutions (and pads of a whole
//!   kernel or more) take the textbook path instead: `dpatches = dy · Wᵀ` tile by tile, added back
//!   onto the input pixels they came from (col2im), groups of whole images in parallel.
//!
//! Buffers (patch tiles, partial `dw`s, the rearranged weights) live in a [`ConvScratch`] that the
//! caller keeps between calls.

use std::ops::Range;

use rayon::prelude::*;

use super::super::map::{Shape, grow};
use super::super::matmul::{matmul, matmul_tn};

/// About how many floats of patches one forward tile gathers, so that the tile stays in the
/// core's L2 cache while gemm reads it.
const FORWARD_TILE_FLOATS: usize = 48 * 1024;

/// The same for the weight gradient, whose tiles are the reduction dimension of their product:
/// longer tiles mean fewer passes over the partial `dw`.
const GRADIENT_TILE_FLOATS: usize = 96 * 1024;

/// Pixels per thread from which a pointwise weight gradient shares its pixels out among partial
/// `dw`s (whose summing then costs little next to the product); below, it is one product that
/// gemm splits over blocks of `dw`.
const POINTWISE_SPLIT_PIXELS: usize = 512;

/// Chunk of `dw` that one task adds up from the per-group partials.
const SUM_CHUNK: usize = 16 * 1024;

/// A square convolution without bias (BatchNorm follows every convolution of torchvision's
/// GoogLeNet). Weights are a row-major `[kernel²·in, out]` matrix whose rows run over (kernel row,
/// kernel column, input channel) — the same layout as the inference `ConvGemm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvShape {
    /// Side of the square kernel.
    pub kernel: usize,
    /// Step between output positions.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Channels read.
    pub in_channels: usize,
    /// Channels written (filters).
    pub out_channels: usize,
}

impl ConvShape {
    /// Output map for `input` (`(h + 2·pad − kernel) / stride + 1` per side, `out_channels`
    /// channels); None if too small or input.c != in_channels.
    pub fn output(&self, input: Shape) -> Option<Shape> {
        if input.c != self.in_channels || self.kernel == 0 || self.stride == 0 {
            return None;
        }
        let side = |n: usize| Some((n + 2 * self.pad).checked_sub(self.kernel)? / self.stride + 1);
        Some(Shape {
            n: input.n,
            h: side(input.h)?,
            w: side(input.w)?,
            c: self.out_channels,
        })
    }

    /// Number of weights, kernel²·in·out.
    pub fn weight_len(&self) -> usize {
        self.depth() * self.out_channels
    }

    /// Rows of the weight matrix, the length of one patch: kernel²·in.
    fn depth(&self) -> usize {
        self.kernel * self.kernel * self.in_channels
    }

    /// Where the window lies on `input`, panicking if the caller planned an impossible shape.
    fn window(&self, input: Shape) -> Window {
        let out = self
            .output(input)
            .expect("input map does not fit the convolution");
        Window {
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            input,
            out: [out.h, out.w],
        }
    }
}

/// A square window sliding over a dense NHWC map: what im2col and col2im need to place a patch.
#[derive(Clone, Copy, Debug)]
struct Window {
    kernel: usize,
    stride: usize,
    pad: usize,
    input: Shape,
    /// Output rows and columns.
    out: [usize; 2],
}

impl Window {
    /// Output pixels (rows of the product).
    fn pixels(&self) -> usize {
        self.input.n * self.out[0] * self.out[1]
    }

    /// Length of one patch: kernel² · input channels.
    fn depth(&self) -> usize {
        self.kernel * self.kernel * self.input.c
    }

    /// Whether the patches are the input pixels themselves (1x1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == 0
    }

    /// Where output pixel `p`'s window lies: its image, its first input row (negative in the
    /// padding), the input columns it covers, and the window column of the first of them.
    fn place(&self, p: usize) -> (usize, isize, Range<usize>, usize) {
        let [oh, ow] = self.out;
        let image = p / (oh * ow);
        let y0 = (p / ow % oh * self.stride) as isize - self.pad as isize;
        let x0 = (p % ow * self.stride) as isize - self.pad as isize;
        let end = (x0 + self.kernel as isize).clamp(0, self.input.w as isize) as usize;
        let start = (x0.max(0) as usize).min(end);
        let first = (start as isize - x0) as usize;
        (image, y0, start..end, first)
    }
}

/// The buffers of one group of tiles: the current tile's patches and the group's partial `dw`.
#[derive(Default)]
struct Slot {
    patches: Vec<f32>,
    dw: Vec<f32>,
}

/// Reusable buffers (im2col tiles, per-group weight-gradient partial sums, rearranged weights),
/// grown on demand, kept between calls.
#[derive(Default)]
pub(crate) struct ConvScratch {
    /// One slot per group of tiles (a few per thread).
    slots: Vec<Slot>,
    /// The kernel flipped and transposed (stride-1 `dx`) or transposed (col2im `dx`).
    weights: Vec<f32>,
}

/// Output pixels per tile for patches of `depth` floats: about `floats` floats of patches, at
/// least eight tiles per thread when the map allows, a multiple of 8.
fn tile_rows(pixels: usize, depth: usize, floats: usize) -> usize {
    let threads = rayon::current_num_threads();
    let by_cache = floats / depth.max(1);
    let by_balance = pixels.div_ceil(8 * threads);
    by_cache.min(by_balance).next_multiple_of(8).max(16)
}

/// Splits `items` into contiguous groups, `per_thread` per thread of the pool (fewer if there are
/// fewer items): returns (items per group, groups). Groups are fixed by the item count and the
/// pool size, never by timing, so that sums over them come out the same from run to run.
fn groups(items: usize, per_thread: usize) -> (usize, usize) {
    let wanted = (per_thread * rayon::current_num_threads()).clamp(1, items.max(1));
    let size = items.div_ceil(wanted).max(1);
    (size, items.div_ceil(size))
}

/// `y` (dense `[n, oh, ow, out]`, overwritten) = conv(`x`, `w`); `x` dense NHWC of shape `xs`.
pub(crate) fn forward(
    conv: &ConvShape,
    x: &[f32],
    xs: Shape,
    w: &[f32],
    y: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let window = conv.window(xs);
    assert_eq!(x.len(), xs.len(), "input length");
    assert_eq!(w.len(), conv.weight_len(), "weight length");
    assert_eq!(
        y.len(),
        window.pixels() * conv.out_channels,
        "output length"
    );
    convolve(&window, x, w, conv.out_channels, y, &mut scratch.slots);
}

/// Given `dy` = ∂L/∂y (dense `[n, oh, ow, out]`): `dw` = ∂L/∂w (overwritten, `[kernel²·in, out]`)
/// and, when `dx` is `Some`, ∂L/∂x (dense NHWC `xs`, overwritten).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    conv: &ConvShape,
    x: &[f32],
    xs: Shape,
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dx: Option<&mut [f32]>,
    scratch: &mut ConvScratch,
) {
    let window = conv.window(xs);
    assert_eq!(x.len(), xs.len(), "input length");
    assert_eq!(w.len(), conv.weight_len(), "weight length");
    assert_eq!(dw.len(), conv.weight_len(), "weight gradient length");
    assert_eq!(
        dy.len(),
        window.pixels() * conv.out_channels,
        "output gradient length"
    );
    weight_gradient(&window, x, dy, conv.out_channels, dw, &mut scratch.slots);
    if let Some(dx) = dx {
        assert_eq!(dx.len(), xs.len(), "input gradient length");
        if conv.stride == 1 && conv.pad < conv.kernel {
            input_gradient_by_flipped_kernel(conv, &window, w, dy, dx, scratch);
        } else {
            input_gradient_by_col2im(conv, &window, w, dy, dx, scratch);
        }
    }
}

/// `y = patches(x) · w` for the window (the shared forward product), `w` being
/// `[window depth, out_channels]`.
fn convolve(
    window: &Window,
    x: &[f32],
    w: &[f32],
    out_channels: usize,
    y: &mut [f32],
    slots: &mut Vec<Slot>,
) {
    let pixels = window.pixels();
    let depth = window.depth();
    if depth == 0 {
        y.fill(0.0);
        return;
    }
    if window.is_pointwise() {
        matmul(
            y,
            out_channels,
            x,
            depth,
            w,
            out_channels,
            [pixels, depth, out_channels],
            true,
        );
        return;
    }
    if y.is_empty() {
        return;
    }
    let rows = tile_rows(pixels, depth, FORWARD_TILE_FLOATS);
    let (tiles_per_group, count) = groups(pixels.div_ceil(rows), 4);
    if slots.len() < count {
        slots.resize_with(count, Default::default);
    }
    let group_rows = tiles_per_group * rows;
    y.par_chunks_mut(group_rows * out_channels)
        .zip(slots.par_iter_mut())
        .enumerate()
        .for_each(|(g, (y_group, slot))| {
            for (t, y_tile) in y_group.chunks_mut(rows * out_channels).enumerate() {
                let r0 = g * group_rows + t * rows;
                let m = y_tile.len() / out_channels;
                grow(&mut slot.patches, m * depth);
                let patches = &mut slot.patches[..m * depth];
                gather(x, window, r0..r0 + m, patches);
                let shape = [m, depth, out_channels];
                matmul(
                    y_tile,
                    out_channels,
                    patches,
                    depth,
                    w,
                    out_channels,
                    shape,
                    false,
                );
            }
        });
}

/// `dw = patches(x)ᵀ · dy`. Each group of tiles accumulates into its own partial sum, then the
/// partials are added up, in a fixed order.
fn weight_gradient(
    window: &Window,
    x: &[f32],
    dy: &[f32],
    out_channels: usize,
    dw: &mut [f32],
    slots: &mut Vec<Slot>,
) {
    let pixels = window.pixels();
    let depth = window.depth();
    let len = dw.len();
    if len == 0 {
        return;
    }
    if window.is_pointwise() && pixels < POINTWISE_SPLIT_PIXELS * rayon::current_num_threads() {
        // Too few pixels to share out: gemm splits the product over blocks of `dw` instead.
        let shape = [depth, pixels, out_channels];
        matmul_tn(
            dw,
            out_channels,
            x,
            depth,
            dy,
            out_channels,
            shape,
            false,
            true,
        );
        return;
    }
    // The reduction runs over a tile's rows, so tiles are longer than in the forward pass; a
    // pointwise convolution reads its rows straight from `x` and needs no gathering at all.
    let rows = if window.is_pointwise() {
        pixels.div_ceil(2 * rayon::current_num_threads()).max(1)
    } else {
        tile_rows(pixels, depth, GRADIENT_TILE_FLOATS)
    };
    let (tiles_per_group, count) = groups(pixels.div_ceil(rows), 2);
    if slots.len() < count {
        slots.resize_with(count, Default::default);
    }
    let group_rows = tiles_per_group * rows;
    slots[..count]
        .par_iter_mut()
        .enumerate()
        .for_each(|(g, slot)| {
            grow(&mut slot.dw, len);
            let group = g * group_rows..((g + 1) * group_rows).min(pixels);
            for (t, r0) in group.clone().step_by(rows).enumerate() {
                let m = rows.min(group.end - r0);
                let dy_tile = &dy[r0 * out_channels..][..m * out_channels];
                let dst = &mut slot.dw[..len];
                let shape = [depth, m, out_channels];
                let accumulate = t > 0;
                if window.is_pointwise() {
                    let x_tile = &x[r0 * depth..][..m * depth];
                    matmul_tn(
                        dst,
                        out_channels,
                        x_tile,
                        depth,
                        dy_tile,
                        out_channels,
                        shape,
                        accumulate,
                        false,
                    );
                } else {
                    grow(&mut slot.patches, m * depth);
                    let patches = &mut slot.patches[..m * depth];
                    gather(x, window, r0..r0 + m, patches);
                    matmul_tn(
                        dst,
                        out_channels,
                        patches,
                        depth,
                        dy_tile,
                        out_channels,
                        shape,
                        accumulate,
                        false,
                    );
                }
            }
        });
    let partials = &slots[..count];
    if pixels == 0 {
        dw.fill(0.0);
        return;
    }
    dw.par_chunks_mut(SUM_CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            let at = i * SUM_CHUNK;
            chunk.copy_from_slice(&partials[0].dw[at..][..chunk.len()]);
            for partial in &partials[1..] {
                chunk
                    .iter_mut()
                    .zip(&partial.dw[at..])
                    .for_each(|(d, &p)| *d += p);
            }
        });
}

/// Stride-1 `dx`: the forward convolution of `dy` (padding `k − 1 − pad`) with the flipped,
/// transposed kernel `W'[(ky, kx, o), c] = W[(k−1−ky, k−1−kx, c), o]`.
fn input_gradient_by_flipped_kernel(
    conv: &ConvShape,
    window: &Window,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let (k, cin, cout) = (conv.kernel, conv.in_channels, conv.out_channels);
    grow(&mut scratch.weights, conv.weight_len());
    let flipped = &mut scratch.weights[..conv.weight_len()];
    // Tap t of W' is tap k² − 1 − t of W, its `[in, out]` block transposed.
    let block = (cin * cout).max(1);
    for (dst, src) in flipped.chunks_mut(block).zip(w.chunks(block).rev()) {
        transpose(src, cin, cout, dst);
    }
    let input = window.input;
    let back = Window {
        kernel: k,
        stride: 1,
        pad: k - 1 - conv.pad,
        input: Shape {
            h: window.out[0],
            w: window.out[1],
            ..input.with_channels(cout)
        },
        out: [input.h, input.w],
    };
    let flipped = &scratch.weights[..conv.weight_len()];
    convolve(&back, dy, flipped, cin, dx, &mut scratch.slots);
}

/// `dx` for any stride and padding: `dpatches = dy · Wᵀ` tile by tile, each patch added back onto
/// the input pixels it was gathered from; groups of images run in parallel, as images share no
/// input pixel.
fn input_gradient_by_col2im(
    conv: &ConvShape,
    window: &Window,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let depth = conv.depth();
    let cout = conv.out_channels;
    grow(&mut scratch.weights, conv.weight_len());
    transpose(w, depth, cout, &mut scratch.weights[..conv.weight_len()]);
    let transposed = &scratch.weights[..conv.weight_len()];
    dx.fill(0.0);
    if dx.is_empty() || cout == 0 {
        return;
    }
    let image = Window {
        input: Shape {
            n: 1,
            ..window.input
        },
        ..*window
    };
    let pixels = image.pixels();
    let rows = tile_rows(pixels, depth, FORWARD_TILE_FLOATS);
    let (images_per_group, count) = groups(window.input.n, 2);
    if scratch.slots.len() < count {
        scratch.slots.resize_with(count, Default::default);
    }
    dx.par_chunks_mut(images_per_group * image.input.len())
        .zip(dy.par_chunks(images_per_group * pixels * cout))
        .zip(scratch.slots.par_iter_mut())
        .for_each(|((dx_group, dy_group), slot)| {
            let dx_images = dx_group.chunks_mut(image.input.len());
            for (dx_image, dy_image) in dx_images.zip(dy_group.chunks(pixels * cout)) {
                for r0 in (0..pixels).step_by(rows) {
                    let m = rows.min(pixels - r0);
                    grow(&mut slot.patches, m * depth);
                    let patches = &mut slot.patches[..m * depth];
                    let dy_tile = &dy_image[r0 * cout..][..m * cout];
                    let shape = [m, cout, depth];
                    matmul(
                        patches, depth, dy_tile, cout, transposed, depth, shape, false,
                    );
                    scatter(dx_image, &image, r0..r0 + m, patches);
                }
            }
        });
}

/// `dst[cols, rows] = srcᵀ` for a row-major `src[rows, cols]`, one band of 16 destination rows
/// (16 source columns) at a time so that the band stays in cache while it is written, bands
/// spread over the threads.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const BLOCK: usize = 16;
    assert_eq!(src.len(), rows * cols, "transpose source");
    assert_eq!(dst.len(), rows * cols, "transpose destination");
    if dst.is_empty() {
        return;
    }
    dst.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(b, band)| {
            let c0 = b * BLOCK;
            let width = band.len() / rows;
            for r in 0..rows {
                let line = &src[r * cols + c0..][..width];
                for (j, &v) in line.iter().enumerate() {
                    band[j * rows + r] = v;
                }
            }
        });
}

/// Fills one row per output pixel in `rows` with its receptive field in (kernel row, kernel
/// column, channel) order, zeros where the window hangs over the border.
fn gather(x: &[f32], window: &Window, rows: Range<usize>, out: &mut [f32]) {
    let Shape { h, w, c, .. } = window.input;
    let k = window.kernel;
    for (p, patch) in rows.zip(out.chunks_exact_mut(window.depth())) {
        let (image, y0, columns, first) = window.place(p);
        for ky in 0..k {
            let y = y0 + ky as isize;
            let line = &mut patch[ky * k * c..][..k * c];
            if y < 0 || y >= h as isize || columns.is_empty() {
                line.fill(0.0);
                continue;
            }
            // The window's columns inside the input lie side by side in NHWC: one copy.
            let start = ((image * h + y as usize) * w + columns.start) * c;
            let (before, rest) = line.split_at_mut(first * c);
            let (inside, after) = rest.split_at_mut(columns.len() * c);
            before.fill(0.0);
            inside.copy_from_slice(&x[start..][..columns.len() * c]);
            after.fill(0.0);
        }
    }
}

/// The inverse of [`gather`]: adds each patch in `patches` (one per output pixel in `rows`) onto
/// the input pixels under its window, dropping what falls in the padding.
fn scatter(dx: &mut [f32], window: &Window, rows: Range<usize>, patches: &[f32]) {
    let Shape { h, w, c, .. } = window.input;
    let k = window.kernel;
    for (p, patch) in rows.zip(patches.chunks_exact(window.depth())) {
        let (image, y0, columns, first) = window.place(p);
        for ky in 0..k {
            let y = y0 + ky as isize;
            if y < 0 || y >= h as isize || columns.is_empty() {
                continue;
            }
            let start = ((image * h + y as usize) * w + columns.start) * c;
            let line = &patch[(ky * k + first) * c..][..columns.len() * c];
            dx[start..][..line.len()]
                .iter_mut()
                .zip(line)
                .for_each(|(d, &v)| *d += v);
        }
    }
}

#[cfg(test)]
mod tests;
