//! The convolutions' products in bf16 on AMX tiles, or on AVX512-BF16's dot products where there
//! are none, for a training step in bf16: both operands rounded to bf16 (nearest even) as each
//! tile reads them, the sums kept in f32, as PyTorch's CPU autocast does for its convolutions
//! (f32 master weights, f32 BatchNorm). Everything around the products (BatchNorm, ReLU,
//! pooling, the classifier and the loss) stays f32.
//!
//! - Forward and the stride-1 input gradient: `y = patches(x) · W`, the weights packed once per
//!   call into pair tiles, each tile of pixels rounded as it is gathered (for AMX into whole tiles
//!   where the pixels are the input itself, a 1x1 convolution).
//! - Weight gradient: `dwᵀ = Σ dyᵀ · patches(x)` over tiles of pixels, so that both operands are
//!   packed along the pixels they share (`dy`'s few channels transposed into whole tiles, the
//!   patches as pairs of pixels), each group of tiles summing into a partial `dwᵀ` of its own held by the tiles'
//!   accumulators; the partials are added in a fixed order and transposed into `dw`.
//! - On AVX512-BF16's dot products, 3x3/1 convolutions run all three through Winograd's
//!   F(2x2, 3x3): the forward and input-gradient products through `Winograd::reload_bf16`, the
//!   weight gradient's 16 products per block of tiles through [`WinogradProducts`].

use std::ops::Range;

use rayon::prelude::*;

use super::window::{Window, gather, gather_with};
use super::{FORWARD_TILE_FLOATS, Slot, for_each_gradient_tile, for_each_output_tile, tile_rows};
use crate::engine::Bf16Kernel;
use crate::engine::bf16::{TILE_COLS, TILE_K, TILE_ROWS};
use crate::engine::bf16_pack::{
    Matrix, left_layout, pack_left, pack_left_transposed, pack_right, pack_right_blocks, right_len,
    round_slice,
};
use crate::engine::map::grow;
use crate::engine::winograd::{Products, add_scaled};

/// Pixels per weight-gradient tile: the tile's product adds into the whole partial `dwᵀ`, so
/// tiles are long enough that reading and writing it back costs little next to the product.
const GRADIENT_TILE_PIXELS: usize = 512;

/// `y = patches(x) · w` for the window, `w` being `[window depth, out_channels]`; `packed` holds
/// the rounded weights between calls.
pub(super) fn convolve(
    window: &Window,
    x: &[f32],
    w: &[f32],
    out_channels: usize,
    y: &mut [f32],
    slots: &mut Vec<Slot>,
    packed: &mut Vec<u16>,
) {
    let pixels = window.pixels();
    let depth = window.depth();
    if depth == 0 || out_channels == 0 {
        y.fill(0.0);
        return;
    }
    pack_right(Matrix::new(w, depth, out_channels, out_channels), packed);
    let packed = &packed[..];
    let amx = Bf16Kernel::Amx.runs_here();
    let rows = tile_rows(pixels, depth, FORWARD_TILE_FLOATS).next_multiple_of(2 * TILE_ROWS);
    for_each_output_tile(y, out_channels, rows, slots, |slot, r0, y_tile| {
        let m = y_tile.len() / out_channels;
        let (padded, row_len) = left_layout(m, depth);
        if window.is_pointwise() {
            pack_left(
                Matrix::new(&x[r0 * depth..], m, depth, depth),
                amx,
                &mut slot.left,
            );
        } else {
            // Rounded as they are gathered (the patches are never stored in f32), into plain
            // rows: whole tiles would need a second copy, which costs more than the tiles save.
            grow(&mut slot.left, padded * row_len);
            let (patches, pad) = slot.left[..padded * row_len].split_at_mut(m * row_len);
            gather_with(x, window, r0..r0 + m, row_len, patches, round_slice);
            pad.fill(0);
        }
        let col_blocks = out_channels.div_ceil(TILE_COLS);
        let direct = padded == m && out_channels == col_blocks * TILE_COLS;
        let stride = col_blocks * TILE_COLS;
        if !direct {
            grow(&mut slot.product, padded * stride);
        }
        let product = if direct {
            &mut y_tile[..]
        } else {
            &mut slot.product[..padded * stride]
        };
        // SAFETY: `slot.left` holds `padded` rows of `row_len` values, `packed` the weights'
        // `col_blocks` x `row_len / 32` tiles, `product` `padded` rows of `stride` floats.
        unsafe {
            multiply(
                &slot.left,
                [padded, row_len],
                amx && window.is_pointwise(),
                packed,
                product,
                stride,
                false,
            )
        };
        if !direct {
            for (dst, src) in y_tile
                .chunks_exact_mut(out_channels)
                .zip(slot.product.chunks_exact(stride))
            {
                dst.copy_from_slice(&src[..out_channels]);
            }
        }
    });
}

/// `dw = patches(x)ᵀ · dy` (`dw` row-major `[depth, out_channels]`, overwritten), each group of
/// pixel tiles summing `dyᵀ · patches` into its slot's partial, the partials then added in a
/// fixed order.
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
    if dw.is_empty() {
        return;
    }
    if pixels == 0 {
        dw.fill(0.0);
        return;
    }
    let rows = out_channels.next_multiple_of(TILE_ROWS);
    let columns = depth.next_multiple_of(TILE_COLS);
    let partial_len = rows * columns;
    let amx = Bf16Kernel::Amx.runs_here();
    let count = for_each_gradient_tile(pixels, GRADIENT_TILE_PIXELS, slots, |slot, t, tile| {
        grow(&mut slot.dw, partial_len);
        let (r0, m) = (tile.start, tile.len());
        let dy_tile = Matrix::new(&dy[r0 * out_channels..], m, out_channels, out_channels);
        pack_left_transposed(dy_tile, amx, &mut slot.left);
        let row_len = m.next_multiple_of(TILE_K);
        let k_blocks = row_len / TILE_K;
        let right = &mut slot.right;
        grow(right, right_len(row_len, depth));
        if window.is_pointwise() {
            let patches = Matrix::new(&x[r0 * depth..], m, depth, depth);
            pack_right_blocks(patches, k_blocks, 0, right);
        } else {
            // 32 pixels at a time, so that the f32 patches stay in cache until rounded.
            grow(&mut slot.patches, TILE_K * depth);
            for kb in 0..k_blocks {
                let p0 = r0 + kb * TILE_K;
                let count = TILE_K.min(tile.end - p0);
                let patches = &mut slot.patches[..count * depth];
                gather(x, window, p0..p0 + count, patches);
                let patches = Matrix::new(patches, count, depth, depth);
                pack_right_blocks(patches, k_blocks, kb, right);
            }
        }
        // SAFETY: `slot.left` holds `rows` rows of `row_len` values (dyᵀ), `slot.right` the
        // patches' `columns / 16` x `row_len / 32` tiles, `slot.dw` `rows` rows of `columns`
        // floats.
        unsafe {
            multiply(
                &slot.left,
                [rows, row_len],
                amx,
                &slot.right,
                &mut slot.dw[..partial_len],
                columns,
                t > 0,
            )
        };
    });
    let partials = &slots[..count];
    let chunk_rows = depth.div_ceil(4 * rayon::current_num_threads()).max(1);
    dw.par_chunks_mut(chunk_rows * out_channels)
        .enumerate()
        .for_each(|(i, chunk)| {
            for (r, line) in chunk.chunks_exact_mut(out_channels).enumerate() {
                let d = i * chunk_rows + r;
                for (o, value) in line.iter_mut().enumerate() {
                    *value = partials.iter().map(|slot| slot.dw[o * columns + d]).sum();
                }
            }
        });
}

/// The 16 products of Winograd's 3x3 weight gradient (`engine/winograd/weight_gradient.rs`) in
/// bf16: each position's `∂L/∂U = Vᵀ · (A dY Aᵀ)` over a block of tiles, both operands packed
/// along the tiles they share as [`weight_gradient`] packs pixels, into a partial of `c` rows
/// (rounded up to a tile) of `out` columns (rounded up to a column block).
pub(super) struct WinogradProducts;

impl WinogradProducts {
    /// Rows and columns of a position's partial `∂L/∂U`.
    fn partial_shape(c: usize, out: usize) -> [usize; 2] {
        [
            c.next_multiple_of(TILE_ROWS),
            out.next_multiple_of(TILE_COLS),
        ]
    }
}

impl Products for WinogradProducts {
    fn partial_len(&self, c: usize, out: usize) -> usize {
        let [rows, columns] = Self::partial_shape(c, out);
        rows * columns
    }

    fn multiply(
        &self,
        inputs: &[f32],
        gradients: &[f32],
        [m, c, out]: [usize; 3],
        partial: &mut [f32],
        accumulate: bool,
        [left, right]: &mut [Vec<u16>; 2],
    ) {
        let [rows, columns] = Self::partial_shape(c, out);
        pack_left_transposed(Matrix::new(inputs, m, c, c), false, left);
        let row_len = m.next_multiple_of(TILE_K);
        grow(right, right_len(row_len, out));
        pack_right_blocks(
            Matrix::new(gradients, m, out, out),
            row_len / TILE_K,
            0,
            right,
        );
        assert!(partial.len() >= rows * columns, "partial too short");
        // SAFETY: `left` holds `rows` rows of `row_len` values (the inputs transposed), `right`
        // the gradients' `columns / 16` x `row_len / 32` tiles, `partial` `rows` rows of
        // `columns` floats; `backward` takes these products only where AVX512-BF16's dot
        // products run.
        unsafe {
            multiply(
                left,
                [rows, row_len],
                false,
                right,
                partial,
                columns,
                accumulate,
            )
        };
    }

    fn add_sums(&self, partial: &[f32], [c, out]: [usize; 2], pairs: Range<usize>, u: &mut [f32]) {
        let [_, columns] = Self::partial_shape(c, out);
        let mut pair = pairs.start;
        let mut rest = &mut u[..pairs.len()];
        while !rest.is_empty() {
            let (channel, filter) = (pair / out, pair % out);
            let (run, tail) = rest.split_at_mut((out - filter).min(rest.len()));
            let sums = &partial[channel * columns + filter..][..run.len()];
            add_scaled(run, 1.0, sums);
            pair += run.len();
            rest = tail;
        }
    }
}

/// `product (+)= left · right` on AMX tiles or AVX512-BF16's dot products: `left` is
/// `[rows, row_len]` bf16 (rows a multiple of 16, row_len of 32), row-major or, when `tiled`
/// (AMX only), as whole tiles ([`crate::engine::bf16_pack::tiled_at`]: AMX loads a contiguous
/// 1 KiB faster than 16 rows far apart); `right` the matching pair tiles for `stride / 16`
/// column blocks; `product` `rows` rows of `stride` floats.
///
/// # Safety
/// The operands must hold the sizes described, and AVX512-BF16's kernel must run here
/// ([`Bf16Kernel::Avx512Bf16`]; AMX's is taken where it runs).
unsafe fn multiply(
    left: &[u16],
    [rows, row_len]: [usize; 2],
    tiled: bool,
    right: &[u16],
    product: &mut [f32],
    stride: usize,
    accumulate: bool,
) {
    assert!(rows.is_multiple_of(TILE_ROWS) && row_len.is_multiple_of(TILE_K));
    assert!(stride.is_multiple_of(TILE_COLS));
    assert!(left.len() >= rows * row_len && product.len() >= rows * stride);
    let (k_blocks, col_blocks) = (row_len / TILE_K, stride / TILE_COLS);
    assert!(right.len() >= col_blocks * k_blocks * crate::engine::bf16::B_TILE);
    if !Bf16Kernel::Amx.runs_here() {
        assert!(!tiled, "tiled left operands are AMX's");
        use crate::engine::bf16_dot::{PanelStore, Rows, Store, multiply as dot_products};
        let rows = Rows {
            ptr: left.as_ptr() as *const half::bf16,
            row_len,
            m: rows,
            pairs: row_len / 2,
        };
        let base = product.as_mut_ptr();
        let store = |i: usize| PanelStore {
            stride,
            lanes: TILE_COLS,
            to: Store::Sums {
                // SAFETY: column block i lies inside each row of `stride` floats.
                ptr: unsafe { base.add(i * TILE_COLS) },
                accumulate,
            },
        };
        // SAFETY: the asserts above check the sizes the kernel reads and writes; the caller
        // checked that a training kernel runs here, and without AMX that is AVX512-BF16's.
        unsafe { dot_products(rows, right.as_ptr(), row_len / 2, col_blocks, store) };
        return;
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    // SAFETY: the asserts above check the sizes `amx::multiply` reads and writes; the caller
    // checked that AMX runs here.
    unsafe {
        use crate::engine::amx;
        amx::multiply(
            amx::Left {
                ptr: left.as_ptr(),
                row_bytes: row_len * 2,
                row_blocks: rows / TILE_ROWS,
                k_blocks,
                tiled,
            },
            right.as_ptr(),
            amx::Product {
                ptr: product.as_mut_ptr(),
                row_bytes: stride * 4,
                col_blocks,
                accumulate,
            },
        )
    };
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    unreachable!("bf16 training products on a platform without AMX ({accumulate})");
}
