//! Convolutions of the training engine, forward and backward, as matrix products over pixels.
//!
//! Activations are NHWC, so the pixels of a map are the rows of a matrix and a convolution with
//! weights `W`, a row-major `[kernel² · in, out]` matrix whose rows run over (kernel row, kernel
//! column, input channel), is `y[P, out] = patches(x)[P, kernel² · in] · W`, where row `p` of
//! `patches(x)` is output pixel `p`'s receptive field (im2col). A 1x1 convolution with stride 1 and
//! no padding multiplies the input itself, in one product spread over the threads; larger kernels
//! gather the patches one tile of output pixels at a time, so that a tile stays in cache, and
//! spread the tiles over the threads. Where the CPU has AVX-512 or AVX2, 3x3 convolutions with stride 1
//! and padding 1 run as Winograd's minimal filtering instead (`engine/winograd`), their weights
//! transformed at every call: F(4x4, 3x3) in f32 on maps of 14 pixels or more (4x fewer
//! multiplications), F(2x2, 3x3) on smaller maps and in bf16 (2.25x fewer).
//!
//! Backward, with `dy = ∂L/∂y`:
//! - `dw = patches(x)ᵀ · dy` sums over all pixels (for a 3x3/1 convolution with padding 1, where
//!   the CPU has AVX-512 or AVX2, through the same tiling as the forward pass instead:
//!   `engine/winograd/weight_gradient.rs`, its products in bf16 where a bf16 step runs on
//!   AVX512-BF16's dot products). The pixels are cut into a fixed number of
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

mod bf16;
mod input_gradient;
mod rounded;
mod weight_gradient;
mod window;

use std::ops::Range;

use rayon::prelude::*;

use super::super::Bf16Kernel;
use super::super::conv::Target;
use super::super::groups::groups;
use super::super::map::{Shape, View, grow};
use super::super::matmul::matmul;
use super::super::winograd::{self, Tiling, WeightGradientScratch, Winograd};
use input_gradient::{input_gradient_by_col2im, input_gradient_by_flipped_kernel};
use rounded::RoundedOperands;
use weight_gradient::weight_gradient;
use window::{Window, gather};

/// About how many floats of patches one forward tile gathers, so that the tile stays in the
/// core's L2 cache while gemm reads it.
const FORWARD_TILE_FLOATS: usize = 48 * 1024;

/// The same for the weight gradient, whose tiles are the reduction dimension of their product:
/// longer tiles mean fewer passes over the partial `dw`.
const GRADIENT_TILE_FLOATS: usize = 96 * 1024;

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

/// The buffers of one group of tiles: the current tile's patches and the group's partial `dw`
/// (`dwᵀ` in bf16), and in bf16 the tile's operands rounded for AMX and its product.
#[derive(Default)]
struct Slot {
    patches: Vec<f32>,
    dw: Vec<f32>,
    left: Vec<u16>,
    right: Vec<u16>,
    product: Vec<f32>,
}

/// Reusable buffers (im2col tiles, per-group weight-gradient partial sums, rearranged weights),
/// grown on demand, kept between calls.
#[derive(Default)]
pub(crate) struct ConvScratch {
    /// One slot per group of tiles (a few per thread).
    slots: Vec<Slot>,
    /// The kernel flipped and transposed (stride-1 `dx`) or transposed (col2im `dx`).
    weights: Vec<f32>,
    /// The weights of the current 3x3/1 convolution transformed for Winograd's tiling.
    winograd: Option<Winograd>,
    /// Buffers of the 3x3/1 weight gradients through Winograd's tiling.
    winograd_gradient: WeightGradientScratch,
    /// Whether the products run on bf16 kernels (`bf16.rs`) rather than f32.
    bf16: bool,
    /// Where a bf16 step's products run on the f32 kernels: its operands rounded to bf16.
    rounded: Option<Box<RoundedOperands>>,
    /// The current convolution's weights rounded to bf16 in pair tiles.
    bf16_weights: Vec<u16>,
}

impl ConvScratch {
    /// Buffers for products in bf16 (the default runs them in f32) on `kernel`, which must run
    /// here: AMX's tiles or AVX512-BF16's dot products, or the f32 kernels on rounded operands.
    pub fn in_bf16(kernel: Bf16Kernel) -> Self {
        assert!(kernel.runs_here(), "{} does not run here", kernel.name());
        match kernel {
            Bf16Kernel::Amx | Bf16Kernel::Avx512Bf16 => Self {
                bf16: true,
                ..Self::default()
            },
            Bf16Kernel::Portable => Self {
                rounded: Some(Box::default()),
                ..Self::default()
            },
        }
    }

    /// Whether the products run in bf16.
    pub fn bf16(&self) -> bool {
        self.bf16 || self.rounded.is_some()
    }
}

/// Output pixels per tile for patches of `depth` floats: about `floats` floats of patches, at
/// least eight tiles per thread when the map allows, a multiple of 8.
fn tile_rows(pixels: usize, depth: usize, floats: usize) -> usize {
    let threads = rayon::current_num_threads();
    let by_cache = floats / depth.max(1);
    let by_balance = pixels.div_ceil(8 * threads);
    by_cache.min(by_balance).next_multiple_of(8).max(16)
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
    if let Some(mut rounded) = scratch.rounded.take() {
        let (x, w) = rounded.forward(x, w);
        forward(conv, x, xs, w, y, scratch);
        scratch.rounded = Some(rounded);
        return;
    }
    let window = conv.window(xs);
    assert_eq!(x.len(), xs.len(), "input length");
    assert_eq!(w.len(), conv.weight_len(), "weight length");
    assert_eq!(
        y.len(),
        window.pixels() * conv.out_channels,
        "output length"
    );
    let bf16 = scratch.bf16.then_some(&mut scratch.bf16_weights);
    let slots = &mut scratch.slots;
    convolve(
        &window,
        x,
        w,
        conv.out_channels,
        y,
        slots,
        &mut scratch.winograd,
        bf16,
    );
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
    if let Some(mut rounded) = scratch.rounded.take() {
        let (x, w, dy) = rounded.backward(x, w, dy);
        backward(conv, x, xs, w, dy, dw, dx, scratch);
        scratch.rounded = Some(rounded);
        return;
    }
    let window = conv.window(xs);
    assert_eq!(x.len(), xs.len(), "input length");
    assert_eq!(w.len(), conv.weight_len(), "weight length");
    assert_eq!(dw.len(), conv.weight_len(), "weight gradient length");
    assert_eq!(
        dy.len(),
        window.pixels() * conv.out_channels,
        "output gradient length"
    );
    let (input, out) = (View::dense(x, xs), conv.out_channels);
    let winograd_gradient = (conv.kernel, conv.stride, conv.pad) == (3, 1, 1) && {
        let buffers = &mut scratch.winograd_gradient;
        match scratch.bf16 {
            false => {
                let (products, tiling) = (&winograd::F32Products, Tiling::for_f32_map(xs));
                winograd::weight_gradient(input, dy, out, dw, buffers, products, tiling)
            }
            true => {
                let products = &bf16::WinogradProducts;
                bf16_winograd_runs_here()
                    && winograd::weight_gradient(
                        input,
                        dy,
                        out,
                        dw,
                        buffers,
                        products,
                        Tiling::F2x2,
                    )
            }
        }
    };
    if !winograd_gradient {
        match scratch.bf16 {
            false => weight_gradient(&window, x, dy, out, dw, &mut scratch.slots),
            true => bf16::weight_gradient(&window, x, dy, out, dw, &mut scratch.slots),
        }
    }
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
/// `[window depth, out_channels]`: in bf16 when `bf16` holds the buffer for the rounded weights,
/// else in f32. A 3x3 window with stride 1 and padding 1 runs as Winograd's minimal filtering,
/// its transformed weights in `winograd`: in f32 where the CPU has AVX-512 or AVX2, F(4x4, 3x3) or
/// F(2x2, 3x3) by the map's size ([`Tiling::for_f32_map`]); F(2x2, 3x3) in bf16 where its
/// products run on AVX512-BF16's dot products (AMX tiles multiply it directly, as in inference).
#[allow(clippy::too_many_arguments)]
fn convolve(
    window: &Window,
    x: &[f32],
    w: &[f32],
    out_channels: usize,
    y: &mut [f32],
    slots: &mut Vec<Slot>,
    winograd: &mut Option<Winograd>,
    bf16: Option<&mut Vec<u16>>,
) {
    let pixels = window.pixels();
    let depth = window.depth();
    if depth == 0 {
        y.fill(0.0);
        return;
    }
    let c = window.input.c;
    let transformed = match bf16 {
        _ if (window.kernel, window.stride, window.pad) != (3, 1, 1) => None,
        None => {
            let tiling = Tiling::for_f32_map(window.input);
            Winograd::reload(winograd, w, c, out_channels, tiling)
        }
        Some(_) if bf16_winograd_runs_here() => {
            Winograd::reload_bf16(winograd, w, c, out_channels, Bf16Kernel::Avx512Bf16)
        }
        Some(_) => None,
    };
    if let Some(winograd) = transformed {
        let output = window.input.with_channels(out_channels);
        let targets = [Target::dense(y, output)];
        winograd.run(View::dense(x, window.input), None, &targets);
        return;
    }
    if let Some(packed) = bf16 {
        bf16::convolve(window, x, w, out_channels, y, slots, packed);
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
    let rows = tile_rows(pixels, depth, FORWARD_TILE_FLOATS);
    for_each_output_tile(y, out_channels, rows, slots, |slot, r0, y_tile| {
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
    });
}

/// Whether a bf16 step on bf16 kernels takes its 3x3/1 convolutions through Winograd's
/// F(2x2, 3x3): where their products run on AVX512-BF16's dot products (AMX tiles multiply them
/// directly, as in inference).
fn bf16_winograd_runs_here() -> bool {
    !Bf16Kernel::Amx.runs_here()
}

/// Cuts the output `y` (`out_channels` values per pixel) into tiles of `rows` pixels, shared out
/// in a fixed number of groups (four per thread) that each have a slot of their own, and calls
/// `tile(slot, first pixel, tile of y)` for every tile, the groups in parallel.
fn for_each_output_tile(
    y: &mut [f32],
    out_channels: usize,
    rows: usize,
    slots: &mut Vec<Slot>,
    tile: impl Fn(&mut Slot, usize, &mut [f32]) + Send + Sync,
) {
    if y.is_empty() {
        return;
    }
    let pixels = y.len() / out_channels;
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
                tile(slot, g * group_rows + t * rows, y_tile);
            }
        });
}

/// Cuts `pixels` into tiles of `rows` pixels, shared out in a fixed number of groups (two per
/// thread) that each sum into a slot of their own, and calls `tile(slot, index of the tile in
/// its group, its pixels)` for every tile, the groups in parallel. Returns the number of groups:
/// the first that many slots hold the partial sums, to be added in order.
fn for_each_gradient_tile(
    pixels: usize,
    rows: usize,
    slots: &mut Vec<Slot>,
    tile: impl Fn(&mut Slot, usize, Range<usize>) + Send + Sync,
) -> usize {
    let (tiles_per_group, count) = groups(pixels.div_ceil(rows), 2);
    if slots.len() < count {
        slots.resize_with(count, Default::default);
    }
    let group_pixels = tiles_per_group * rows;
    slots[..count]
        .par_iter_mut()
        .enumerate()
        .for_each(|(g, slot)| {
            let group = g * group_pixels..((g + 1) * group_pixels).min(pixels);
            for (t, r0) in group.clone().step_by(rows).enumerate() {
                tile(slot, t, r0..(r0 + rows).min(group.end));
            }
        });
    count
}

#[cfg(test)]
mod tests;
