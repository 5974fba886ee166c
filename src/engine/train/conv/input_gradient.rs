//! The input gradient `dx`: a forward convolution with the flipped, transposed kernel for
//! stride 1, or `dy · Wᵀ` added back onto the input pixels (col2im) for any stride (see the parent
//! module's doc).

use rayon::prelude::*;

use super::window::{Window, scatter};
use super::{ConvScratch, ConvShape, FORWARD_TILE_FLOATS, convolve, tile_rows};
use crate::engine::groups::groups;
use crate::engine::map::{Shape, grow};
use crate::engine::matmul::matmul;
use crate::engine::transpose::transpose;

/// Stride-1 `dx`: the forward convolution of `dy` (padding `k − 1 − pad`) with the flipped,
/// transposed kernel `W'[(ky, kx, o), c] = W[(k−1−ky, k−1−kx, c), o]`.
pub(super) fn input_gradient_by_flipped_kernel(
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
    let slots = &mut scratch.slots;
    let bf16 = scratch.bf16.then_some(&mut scratch.bf16_weights);
    convolve(
        &back,
        dy,
        flipped,
        cin,
        dx,
        slots,
        &mut scratch.winograd,
        bf16,
    );
}

/// `dx` for any stride and padding: `dpatches = dy · Wᵀ` tile by tile, each patch added back onto
/// the input pixels it was gathered from; groups of images run in parallel, as images share no
/// input pixel.
pub(super) fn input_gradient_by_col2im(
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
