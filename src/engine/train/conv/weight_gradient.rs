//! The weight gradient `dw = patches(x)ᵀ · dy`, summed over all pixels in a fixed number of
//! groups, each with a partial `dw` of its own, added up in a fixed order (see the parent
//! module's doc).

use rayon::prelude::*;

use super::window::{Window, gather};
use super::{GRADIENT_TILE_FLOATS, Slot, for_each_gradient_tile, tile_rows};
use crate::engine::map::grow;
use crate::engine::matmul::matmul_tn;

/// Pixels per thread from which a pointwise weight gradient shares its pixels out among partial
/// `dw`s (whose summing then costs little next to the product); below, it is one product that
/// gemm splits over blocks of `dw`.
const POINTWISE_SPLIT_PIXELS: usize = 512;

/// Chunk of `dw` that one task adds up from the per-group partials.
const SUM_CHUNK: usize = 16 * 1024;

/// `dw = patches(x)ᵀ · dy`. Each group of tiles accumulates into its own partial sum, then the
/// partials are added up, in a fixed order.
pub(super) fn weight_gradient(
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
    let count = for_each_gradient_tile(pixels, rows, slots, |slot, t, tile| {
        grow(&mut slot.dw, len);
        let (r0, m) = (tile.start, tile.len());
        let dy_tile = &dy[r0 * out_channels..][..m * out_channels];
        // A pointwise convolution's patches are its input rows.
        let patches = if window.is_pointwise() {
            &x[r0 * depth..][..m * depth]
        } else {
            grow(&mut slot.patches, m * depth);
            gather(x, window, tile, &mut slot.patches[..m * depth]);
            &slot.patches[..m * depth]
        };
        matmul_tn(
            &mut slot.dw[..len],
            out_channels,
            patches,
            depth,
            dy_tile,
            out_channels,
            [depth, m, out_channels],
            t > 0,
            false,
        );
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
