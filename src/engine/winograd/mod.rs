//! 3x3 stride-1 convolutions as Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of output pixels comes
//! from a 4x4 block of input pixels with 16 multiplications per pair of channels instead of 36,
//! 2.25x fewer. GoogLeNet's 3x3 convolutions are two thirds of its multiply-adds (Table 1 of the
//! paper: the stem's 3x3 and every inception module's 3x3 branch; torchvision's "5x5" branch is a
//! 3x3 too).
//!
//! With NHWC maps the 16 products of a block of tiles are 16 matrix products
//! `[tiles, in] · [in, out]` on the packed kernel. The transforms around them are additions,
//! vectorised along the channels (`vector.rs`: 16 of them in a zmm register on AVX-512, 8 in a ymm
//! register on AVX2): the input tile `d` becomes `Bᵀ d B`, the weights `g` (BatchNorm
//! already folded) become `G g Gᵀ` once when the engine is built, and the 16 products `m` of a tile
//! become its 2x2 outputs `Aᵀ m A`, to which the bias and the ReLU are applied as they are written.
//! The training step also takes its 3x3 weight gradients this way (`weight_gradient.rs`).
//!
//! f32 products run F(4x4, 3x3) instead (`f4x4.rs`) on maps of [`Tiling::F4X4_SIDE`] pixels or
//! more, in inference only where the map has enough tiles to share out: 4x4 output blocks from
//! 6x6 input blocks, 36 products, 4x fewer multiplications than the direct convolution.
//!
//! In bf16 inference the maps are bf16 and the products run on a bf16 kernel ([`super::bf16`]):
//! both the transformed inputs `Bᵀ d B` (computed in f32) and the transformed weights `G g Gᵀ`
//! are rounded to bf16, the sums and the output transform stay f32.

mod f4x4;
mod weight_gradient;

#[cfg(test)]
pub(crate) use weight_gradient::MIN_CHANNELS;
pub(crate) use weight_gradient::{
    F32Products, Products, WeightGradientScratch, add_scaled, weight_gradient,
};

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use half::bf16;

use super::activation::Activation;
use super::bf16::{Bf16Kernel, Bf16Scratch, Bf16Weights};
use super::conv::{Target, column_split};
use super::map::{Shape, View, grow};
use super::packed::{PANEL, PackedWeights};
use super::simd::simd_kernel;
use super::vector::{Isa, Transform, Vector, on_isa_vectors, separable};
#[cfg(target_arch = "x86_64")]
use super::vector::{Zmm, mask16};

/// Tiles whose products run together: 4 blocks of the packed kernel's 14 rows on AVX-512 (9 of
/// its 6 rows and one of 2 on AVX2).
const TILE_BLOCK: usize = 56;
/// Output columns transformed per pass over the products, so that they stay in L2.
const COLUMN_BLOCK: usize = 128;

/// Which of Winograd's minimal filterings a convolution runs (Lavin and Gray, section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tiling {
    /// F(2x2, 3x3): 2x2 output blocks from 4x4 input blocks, 16 products.
    F2x2,
    /// F(4x4, 3x3): 4x4 output blocks from 6x6 input blocks, 36 products.
    F4x4,
}

impl Tiling {
    /// The smallest map side on which f32 products run F(4x4, 3x3): on GoogLeNet's 7x7 maps its
    /// 8x8 blocks would compute 64 pixels for 49.
    pub const F4X4_SIDE: usize = 14;

    /// The fewest tiles of F(4x4, 3x3) on a map for inference to run it there: fewer leave each
    /// thread's products too few rows (at batch 1 only the 56x56 map has more).
    const F4X4_TILES: usize = 128;

    /// The tiling of the training step's f32 products on map `s`, by its side alone: a batch and
    /// its shards (the ranks of data-parallel training) compute alike.
    pub fn for_f32_map(s: Shape) -> Self {
        match s.h.min(s.w) >= Self::F4X4_SIDE {
            true => Self::F4x4,
            false => Self::F2x2,
        }
    }

    /// The tiling of f32 inference on map `s`: F(4x4, 3x3) where the training step would run it
    /// and the map has [`Self::F4X4_TILES`] of its tiles.
    pub fn for_f32_inference(s: Shape) -> Self {
        match Self::for_f32_map(s) {
            Self::F4x4 if Self::F4x4.tiles(s) >= Self::F4X4_TILES => Self::F4x4,
            _ => Self::F2x2,
        }
    }

    /// Side of an output block.
    const fn side(self) -> usize {
        match self {
            Self::F2x2 => 2,
            Self::F4x4 => 4,
        }
    }

    /// Positions of an input block, one product each.
    const fn positions(self) -> usize {
        (self.side() + 2) * (self.side() + 2)
    }

    /// Tiles of map `s`, in (image, tile row, tile column) order.
    fn tiles(self, s: Shape) -> usize {
        s.n * s.h.div_ceil(self.side()) * s.w.div_ceil(self.side())
    }

    /// Tiles whose products run together: [`TILE_BLOCK`] for F(2x2, 3x3), half as many for
    /// F(4x4, 3x3), whose tiles have 36 positions.
    const fn tile_block(self) -> usize {
        match self {
            Self::F2x2 => TILE_BLOCK,
            Self::F4x4 => TILE_BLOCK / 2,
        }
    }
}

/// A 3x3 convolution with stride 1 and one pixel of zero padding, its weights transformed.
pub(crate) struct Winograd {
    /// The vectors its f32 transforms run on.
    isa: Isa,
    in_channels: usize,
    out_channels: usize,
    tiling: Tiling,
    /// `(G g Gᵀ)[ξ]` for each position ξ of an input block, as `[in, out]` matrices.
    weights: Vec<PackedWeights>,
    /// The same rounded to bf16 for a bf16 kernel, when the products run in bf16 (and then
    /// `weights` is empty).
    bf16: Vec<Bf16Weights>,
    /// The transformed weights while they are packed: each input channel's rows of `out`
    /// values, one per position, one after the other.
    rows: Vec<f32>,
}

/// Per-thread buffers: zeros for the border, the transformed inputs (f32 or bf16), the 16
/// products and one tile's outputs.
#[derive(Default)]
pub(crate) struct Scratch {
    zeros: Vec<f32>,
    inputs: Vec<f32>,
    bf16_zeros: Vec<bf16>,
    bf16_inputs: Vec<bf16>,
    bf16: Bf16Scratch,
    products: Vec<f32>,
    outputs: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Winograd {
    /// Transforms `[3 · 3 · in, out]` weights (rows in (kernel row, kernel column, channel)
    /// order) for `tiling`; `None` where the packed kernel does not run.
    pub fn new(
        weights: &[f32],
        in_channels: usize,
        out_channels: usize,
        tiling: Tiling,
    ) -> Option<Self> {
        let mut slot = None;
        Self::reload(&mut slot, weights, in_channels, out_channels, tiling)?;
        slot
    }

    /// The transform of `weights` in `slot`, reusing its buffers whatever the shape (the training
    /// step transforms the weights of each of its convolutions again at every call); `None` where
    /// the packed kernel does not run.
    pub fn reload<'s>(
        slot: &'s mut Option<Self>,
        weights: &[f32],
        in_channels: usize,
        out_channels: usize,
        tiling: Tiling,
    ) -> Option<&'s Self> {
        assert_eq!(weights.len(), 9 * in_channels * out_channels);
        let isa = Isa::here()?;
        let winograd = Self::refit(slot, isa, in_channels, out_channels, tiling);
        winograd.bf16.clear();
        let positions = tiling.positions();
        if winograd.weights.len() != positions {
            winograd.weights = (0..positions)
                .map(|_| PackedWeights::zeros([0, 0]))
                .collect();
        }
        let (c, n) = (in_channels, out_channels);
        transform_all_weights(tiling, weights, [c, n], &mut winograd.rows);
        let rows = &winograd.rows;
        winograd
            .weights
            .par_iter_mut()
            .enumerate()
            .for_each(|(xi, packed)| {
                packed.reset([c, n]);
                for ch in 0..c {
                    packed.set_row(ch, &rows[(ch * positions + xi) * n..][..n]);
                }
            });
        Some(winograd)
    }

    /// The convolution in `slot` (made there if there is none) set to these channels, its
    /// buffers kept for the weights to be loaded.
    fn refit(
        slot: &mut Option<Self>,
        isa: Isa,
        in_channels: usize,
        out_channels: usize,
        tiling: Tiling,
    ) -> &mut Self {
        let winograd = slot.get_or_insert_with(|| Self {
            isa,
            in_channels,
            out_channels,
            tiling,
            weights: Vec::new(),
            bf16: Vec::new(),
            rows: Vec::new(),
        });
        winograd.isa = isa;
        winograd.in_channels = in_channels;
        winograd.out_channels = out_channels;
        winograd.tiling = tiling;
        winograd
    }

    /// The same convolution with its products in bf16: `weights` (as [`Self::new`] took them)
    /// transformed again and rounded to bf16 for `kernel`, which must run here; `None` where the
    /// CPU lacks the AVX-512BW and VL that the bf16 input transform needs, or the convolution
    /// runs F(4x4, 3x3), which has no bf16 path.
    pub fn in_bf16(mut self, weights: &[f32], kernel: Bf16Kernel) -> Option<Self> {
        if !bf16_transform_runs_here() || self.tiling != Tiling::F2x2 {
            return None;
        }
        self.round_weights(weights, kernel);
        self.weights.clear();
        Some(self)
    }

    /// [`Self::reload`] for F(2x2, 3x3) with the products in bf16 on `kernel` (which must run
    /// here), on f32 maps as on bf16 ones: the transformed weights rounded to bf16, and the
    /// transformed inputs as each tile is transformed (the training step's bf16 products).
    /// `None` where the packed kernel or the bf16 input transform does not run.
    pub fn reload_bf16<'s>(
        slot: &'s mut Option<Self>,
        weights: &[f32],
        in_channels: usize,
        out_channels: usize,
        kernel: Bf16Kernel,
    ) -> Option<&'s Self> {
        assert_eq!(weights.len(), 9 * in_channels * out_channels);
        if !Isa::Avx512.runs_here() || !bf16_transform_runs_here() {
            return None;
        }
        let winograd = Self::refit(slot, Isa::Avx512, in_channels, out_channels, Tiling::F2x2);
        winograd.weights.clear();
        winograd.round_weights(weights, kernel);
        Some(winograd)
    }

    /// `G g Gᵀ` of `weights` rounded to bf16 for `kernel` into `self.bf16`, reusing its buffers.
    fn round_weights(&mut self, weights: &[f32], kernel: Bf16Kernel) {
        let (c, n) = (self.in_channels, self.out_channels);
        transform_all_weights(Tiling::F2x2, weights, [c, n], &mut self.rows);
        if self.bf16.len() != 16 || self.bf16[0].kernel() != kernel {
            self.bf16 = (0..16)
                .map(|_| Bf16Weights::new(&[], [0, 0], kernel))
                .collect();
        }
        let rows = &self.rows;
        self.bf16
            .par_iter_mut()
            .enumerate()
            .for_each(|(xi, rounded)| rounded.reload(&rows[xi * n..], [c, n], 16 * n));
    }

    /// The convolution of `input` into `targets`, which together cover every output channel
    /// once: relu(convolution + bias) with `bias_relu`'s bias, the convolution alone without it
    /// (training, where BatchNorm follows); the output has the input's size. bf16 maps need
    /// [`Self::in_bf16`]'s weights, f32 maps the others.
    pub fn run<T: WinogradMap>(
        &self,
        input: View<T>,
        bias_relu: Option<&[f32]>,
        targets: &[Target<T>],
    ) {
        let s = input.shape;
        assert_eq!(s.c, self.in_channels, "input channels");
        assert!(targets.iter().all(|t| t.pixels() >= s.pixels()));
        let tiles = self.tiling.tiles(s);
        if tiles == 0 || self.out_channels == 0 {
            return;
        }
        let threads = rayon::current_num_threads();
        let tile_block = tiles
            .div_ceil(2 * threads)
            .clamp(1, self.tiling.tile_block());
        let row_tasks = tiles.div_ceil(tile_block);
        let (col_tasks, task_cols) = column_split(row_tasks, self.out_channels);
        (0..row_tasks * col_tasks).into_par_iter().for_each(|task| {
            let t0 = task / col_tasks * tile_block;
            let c0 = task % col_tasks * task_cols;
            let cols = c0..(c0 + task_cols).min(self.out_channels);
            SCRATCH.with_borrow_mut(|scratch| {
                let tiles = t0..(t0 + tile_block).min(tiles);
                self.task(input, tiles, cols, bias_relu, targets, scratch)
            });
        });
    }

    fn task<T: WinogradMap>(
        &self,
        input: View<T>,
        tiles: Range<usize>,
        cols: Range<usize>,
        bias_relu: Option<&[f32]>,
        targets: &[Target<T>],
        scratch: &mut Scratch,
    ) {
        let count = tiles.len();
        let (side, tiling) = (self.tiling.side(), self.tiling);
        let rows = self.transform_inputs(input, tiles.clone(), scratch);
        for start in cols.clone().step_by(COLUMN_BLOCK) {
            let block = start..(start + COLUMN_BLOCK).min(cols.end);
            let stride = block.len().next_multiple_of(PANEL);
            grow(&mut scratch.products, tiling.positions() * rows * stride);
            grow(&mut scratch.outputs, side * side * stride);
            self.multiply(count, rows, block.clone(), scratch);
            for (i, t) in tiles.clone().enumerate() {
                let outputs = &mut scratch.outputs[..side * side * stride];
                let products = &scratch.products;
                transform_output(self.isa, tiling, products, i, rows, stride, outputs);
                let s = input.shape;
                let (image, y0, x0) = tile_corner(s, t, side);
                for (dy, dx) in (0..side).flat_map(|dy| (0..side).map(move |dx| (dy, dx))) {
                    let (y, x) = (y0 + dy, x0 + dx);
                    if y >= s.h || x >= s.w {
                        continue;
                    }
                    let pixel = (image * s.h + y) * s.w + x;
                    let values = &outputs[(dy * side + dx) * stride..][..block.len()];
                    for target in targets {
                        // SAFETY: tasks cover disjoint (tile, column) ranges and a tile's
                        // pixels belong to it alone, so no two threads write the same value.
                        unsafe {
                            match bias_relu {
                                Some(bias) => {
                                    target.write_bias_relu(pixel, block.clone(), values, bias)
                                }
                                None => target.write(pixel, block.clone(), values),
                            }
                        };
                    }
                }
            }
        }
    }
}

/// A map format Winograd's path reads: how its tiles are transformed for f32 or bf16 products.
pub(crate) trait WinogradMap: Activation {
    /// The map as f32, for f32 products; `None` for a format only bf16 products read.
    fn as_f32(view: View<Self>) -> Option<View<f32>>;

    /// Zeros of this format for the border, at least `c` of them, beside the rounded inputs'
    /// buffer, both from the scratch.
    fn zeros_and_inputs(scratch: &mut Scratch, c: usize) -> (&[Self], &mut Vec<bf16>);

    /// `Bᵀ d B` of the 16 pixels `d` (`c` values each), rounded to bf16 into row `out`, `out +
    /// matrix`, … of the 16 matrices.
    ///
    /// # Safety
    /// The CPU has AVX-512F, BW and VL; the 16 rows of `c` values `matrix` apart from `out` are
    /// writable.
    unsafe fn transform_rounded(d: [&[Self]; 16], out: *mut bf16, matrix: usize, c: usize);
}

impl WinogradMap for f32 {
    fn as_f32(view: View<f32>) -> Option<View<f32>> {
        Some(view)
    }

    fn zeros_and_inputs(scratch: &mut Scratch, c: usize) -> (&[f32], &mut Vec<bf16>) {
        grow(&mut scratch.zeros, c);
        (&scratch.zeros, &mut scratch.bf16_inputs)
    }

    unsafe fn transform_rounded(d: [&[f32]; 16], out: *mut bf16, matrix: usize, c: usize) {
        // SAFETY: the caller's guarantees.
        unsafe { transform_input_f32_to_bf16_avx512(d, out, matrix, c) }
    }
}

impl WinogradMap for bf16 {
    fn as_f32(_: View<bf16>) -> Option<View<f32>> {
        None
    }

    fn zeros_and_inputs(scratch: &mut Scratch, c: usize) -> (&[bf16], &mut Vec<bf16>) {
        grow(&mut scratch.bf16_zeros, c);
        (&scratch.bf16_zeros, &mut scratch.bf16_inputs)
    }

    unsafe fn transform_rounded(d: [&[bf16]; 16], out: *mut bf16, matrix: usize, c: usize) {
        // SAFETY: the caller's guarantees.
        unsafe { transform_input_bf16_avx512(d, out, matrix, c) }
    }
}

impl Winograd {
    /// `Bᵀ d B` of `tiles`, row `i` of each position's matrix for tile `tiles.start + i`, in
    /// the scratch (f32, or rounded to bf16 when the products run in bf16); returns the rows of
    /// each matrix (at least `tiles.len()`).
    fn transform_inputs<T: WinogradMap>(
        &self,
        input: View<T>,
        tiles: Range<usize>,
        scratch: &mut Scratch,
    ) -> usize {
        let c = self.in_channels;
        let Some(weights) = self.bf16.first() else {
            let input =
                T::as_f32(input).expect("bf16 maps need the weights of `Winograd::in_bf16`");
            let count = tiles.len();
            grow(&mut scratch.zeros, c);
            grow(&mut scratch.inputs, self.tiling.positions() * count * c);
            for (i, t) in tiles.enumerate() {
                let inputs = &mut scratch.inputs;
                let zeros = &scratch.zeros;
                transform_input(self.isa, self.tiling, input, zeros, t, i, count, inputs);
            }
            return count;
        };
        let (rows, row_len) = weights.left_layout(tiles.len());
        let matrix = rows * row_len;
        let (zeros, inputs) = T::zeros_and_inputs(scratch, c);
        grow(inputs, 16 * matrix);
        let inputs = &mut inputs[..16 * matrix];
        if row_len > c || rows > tiles.len() {
            // The rows' padding and the rows past the tiles, which the products read as zeros.
            inputs.fill(bf16::ZERO);
        }
        for (i, t) in tiles.enumerate() {
            let d = tile_pixels(input, zeros, t, 2);
            // SAFETY: rounded weights exist only where AVX-512F, BW and VL run (`in_bf16`,
            // `reload_bf16`); row `i` of each of the 16 `[rows, row_len]`
            // matrices lies inside the inputs, and every `d` holds `c` values.
            unsafe { T::transform_rounded(d, inputs.as_mut_ptr().add(i * row_len), matrix, c) };
        }
        rows
    }

    /// The products of the `count` transformed tiles (matrices of `rows` rows) and weight
    /// columns `block`, one per position, into `scratch.products` as `[positions][rows]` rows of
    /// `block.len()` rounded up to 16.
    fn multiply(&self, count: usize, rows: usize, block: Range<usize>, scratch: &mut Scratch) {
        let stride = block.len().next_multiple_of(PANEL);
        let c = self.in_channels;
        for (xi, weights) in self.weights.iter().enumerate() {
            assert_eq!(count, rows);
            weights.multiply(
                &scratch.inputs[xi * count * c..],
                c,
                count,
                block.clone(),
                &mut scratch.products[xi * count * stride..][..count * stride],
            );
        }
        for (xi, weights) in self.bf16.iter().enumerate() {
            let (rows_here, row_len) = weights.left_layout(count);
            assert_eq!(rows_here, rows);
            let left = &scratch.bf16_inputs[xi * rows * row_len..][..rows * row_len];
            let product = &mut scratch.products[xi * rows * stride..][..rows * stride];
            weights.multiply(left, count, block.clone(), &mut scratch.bf16, product);
        }
    }
}

/// Whether the CPU has the AVX-512BW and VL that the bf16 input transform needs.
fn bf16_transform_runs_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Tile `t` of map `s` (in (image, tile row, tile column) order) of output blocks `side` pixels
/// wide: its image and the row and column of its top-left output pixel.
fn tile_corner(s: Shape, t: usize, side: usize) -> (usize, usize, usize) {
    let (rows, cols) = (s.h.div_ceil(side), s.w.div_ceil(side));
    (t / (rows * cols), t / cols % rows * side, t % cols * side)
}

/// `G g Gᵀ` of `[3 · 3 · c, n]` weights (rows in (kernel row, kernel column, channel) order) into
/// `rows`: each input channel's rows of `n` values, one per position ξ = a·i + j of the a x a
/// input block (row `ch · a² + ξ`), the channels spread over the threads.
fn transform_all_weights(tiling: Tiling, weights: &[f32], [c, n]: [usize; 2], rows: &mut Vec<f32>) {
    assert_eq!(weights.len(), 9 * c * n);
    let positions = tiling.positions();
    grow(rows, positions * c * n);
    if n == 0 {
        return;
    }
    rows[..positions * c * n]
        .par_chunks_mut(positions * n)
        .enumerate()
        .for_each(|(ch, out)| {
            let taps: [&[f32]; 9] = std::array::from_fn(|tap| &weights[(tap * c + ch) * n..][..n]);
            match tiling {
                Tiling::F2x2 => transform_weights(taps, out),
                Tiling::F4x4 => f4x4::transform_weights(taps, out),
            }
        });
}

simd_kernel! {
    /// `G g Gᵀ` of one input channel's 3x3 taps (each a row of `out` filters' weights) into the 16
    /// rows of `out` (position ξ = 4i + j of the 4x4 tile), with G of F(2x2, 3x3):
    /// `[[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
    fn transform_weights(taps: [&[f32]; 9], out: &mut [f32]) {
        transform_weight_lanes(taps, out, weight_column)
    }
}

/// `G g` of one column of three taps of F(2x2, 3x3), [`WEIGHT_LANES`] filters each.
#[inline(always)]
fn weight_column([g0, g1, g2]: [[f32; WEIGHT_LANES]; 3]) -> [[f32; WEIGHT_LANES]; 4] {
    let mut u = [[0.0f32; WEIGHT_LANES]; 4];
    for o in 0..WEIGHT_LANES {
        let (a, b, c) = (g0[o], g1[o], g2[o]);
        u[0][o] = a;
        u[1][o] = 0.5 * (a + b + c);
        u[2][o] = 0.5 * (a - b + c);
        u[3][o] = c;
    }
    u
}

/// Filters transformed together by the weight transforms, one vector of lanes.
const WEIGHT_LANES: usize = 16;

/// `G g Gᵀ` of one input channel's 3x3 taps (each a row of `n` filters' weights) into the `A²`
/// rows of `out` (position ξ = A·i + j of the A x A tile), [`WEIGHT_LANES`] filters at a time;
/// `column` is `G g` of one column of three taps.
#[inline(always)]
fn transform_weight_lanes<const A: usize>(
    taps: [&[f32]; 9],
    out: &mut [f32],
    column: impl Fn([[f32; WEIGHT_LANES]; 3]) -> [[f32; WEIGHT_LANES]; A],
) {
    let n = taps[0].len();
    for o0 in (0..n).step_by(WEIGHT_LANES) {
        let lanes = WEIGHT_LANES.min(n - o0);
        let mut g = [[0.0f32; WEIGHT_LANES]; 9];
        for (g, tap) in g.iter_mut().zip(taps) {
            g[..lanes].copy_from_slice(&tap[o0..o0 + lanes]);
        }
        // G g: each column x of the kernel, gg[x][i].
        let gg = [
            column([g[0], g[3], g[6]]),
            column([g[1], g[4], g[7]]),
            column([g[2], g[5], g[8]]),
        ];
        // (G g) Gᵀ: the rows combined.
        for i in 0..A {
            let u = column([gg[0][i], gg[1][i], gg[2][i]]);
            for (j, u) in u.iter().enumerate() {
                out[(i * A + j) * n + o0..][..lanes].copy_from_slice(&u[..lanes]);
            }
        }
    }
}

/// The `P` pixels of tile `t`'s input block (in (image, tile row, tile column) order of output
/// blocks `side` pixels wide, `P = (side + 2)²`), `zeros` (at least `c` of them) where the block
/// hangs over the border.
fn tile_pixels<'a, T, const P: usize>(
    input: View<'a, T>,
    zeros: &'a [T],
    t: usize,
    side: usize,
) -> [&'a [T]; P] {
    let s = input.shape;
    let c = s.c;
    let a = side + 2;
    assert_eq!(a * a, P, "positions of a block");
    let (image, y, x) = tile_corner(s, t, side);
    // The input block starts one pixel above and left of the output block.
    if y >= 1 && x >= 1 && y + a - 1 <= s.h && x + a - 1 <= s.w {
        let corner = input.pixel(image, y - 1, x - 1).as_ptr();
        let at = |ab: usize| (ab / a * s.w + ab % a) * input.stride;
        let last = input.pixel(image, y + a - 2, x + a - 2).as_ptr();
        // SAFETY: the block lies inside the map: its pixels lie between its first and last,
        // both checked by `pixel`, and hold `c` values each.
        assert_eq!(corner.wrapping_add(at(P - 1)), last);
        std::array::from_fn(|ab| unsafe { std::slice::from_raw_parts(corner.add(at(ab)), c) })
    } else {
        let (y0, x0) = (y as isize - 1, x as isize - 1);
        let zeros = &zeros[..c];
        std::array::from_fn(|ab| {
            let (y, x) = (y0 + (ab / a) as isize, x0 + (ab % a) as isize);
            let inside = (0..s.h as isize).contains(&y) && (0..s.w as isize).contains(&x);
            if inside {
                input.pixel(image, y as usize, x as usize)
            } else {
                zeros
            }
        })
    }
}

/// `Bᵀ d B` of tile `t` (in (image, tile row, tile column) order) into row `i` of each
/// position's `[count, c]` matrix of `out`, reading `zeros` (at least `c` of them) where the
/// input block hangs over the border, on `isa`'s vectors.
///
/// # Panics
/// Where `isa` does not run here.
#[allow(clippy::too_many_arguments)]
fn transform_input(
    isa: Isa,
    tiling: Tiling,
    input: View<f32>,
    zeros: &[f32],
    t: usize,
    i: usize,
    count: usize,
    out: &mut [f32],
) {
    let c = input.shape.c;
    assert!(i < count && out.len() >= tiling.positions() * count * c);
    assert!(isa.runs_here(), "{isa:?} does not run here");
    let out = out[i * c..].as_mut_ptr();
    // SAFETY (both): `isa` runs here; row `i` of each position's `[count, c]` matrix lies inside
    // `out`, and every `d` holds `c` values.
    match tiling {
        Tiling::F2x2 => unsafe {
            let d = tile_pixels::<f32, 16>(input, zeros, t, 2);
            transform_input_f32(isa, d, out, count * c, c)
        },
        Tiling::F4x4 => unsafe {
            let d = tile_pixels::<f32, 36>(input, zeros, t, 4);
            transform_input_f32(isa, d, out, count * c, c)
        },
    }
}

on_isa_vectors! {
    /// Input transform of `c` f32 channels for the tiling of `P` positions, on `isa`'s vectors.
    ///
    /// # Safety
    /// `isa` runs here; every `d` holds `c` values, and the `P` rows of `c` values `matrix`
    /// floats apart from `out` are writable.
    unsafe fn transform_input_f32<const P: usize>(
        d: [&[f32]; P],
        out: *mut f32,
        matrix: usize,
        c: usize,
    ) => transform_input_vectors
}

/// `Bᵀ d B` of `c` f32 channels, a vector at a time.
///
/// # Safety
/// As [`transform_input_f32`], on the instructions of `V`.
#[inline(always)]
unsafe fn transform_input_vectors<V: Vector, const P: usize>(
    d: [&[f32]; P],
    out: *mut f32,
    matrix: usize,
    c: usize,
) {
    // SAFETY (both closures): the loads and stores cover the channels left of each row; the
    // caller vouches for the P rows of `c` values `matrix` floats apart from `out`.
    unsafe {
        transform_channels::<V, P>(
            c,
            |j, ch, lanes| V::load(d[j].as_ptr().add(ch), lanes),
            |ab, ch, lanes, value| value.store(out.add(ab * matrix + ch), lanes),
        )
    }
}

/// Input transform of `c` bf16 channels, 16 at a time: widened to f32 (exact), transformed, and
/// rounded back to bf16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn transform_input_bf16_avx512(d: [&[bf16]; 16], out: *mut bf16, matrix: usize, c: usize) {
    use std::arch::x86_64::*;
    // SAFETY (both closures): masked to the channels left of each row; the caller vouches for
    // the 16 rows of `c` values `matrix` values apart from `out`.
    unsafe {
        transform_channels::<Zmm, 16>(
            c,
            |j, ch, lanes| {
                let at = d[j].as_ptr().add(ch) as *const i16;
                let bits = _mm256_maskz_loadu_epi16(mask16(lanes), at);
                Zmm(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(
                    _mm512_cvtepu16_epi32(bits),
                )))
            },
            |ab, ch, lanes, value| store_rounded(out.add(ab * matrix + ch), lanes, value),
        )
    }
}

/// Input transform of `c` f32 channels, 16 at a time, rounded to bf16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn transform_input_f32_to_bf16_avx512(
    d: [&[f32]; 16],
    out: *mut bf16,
    matrix: usize,
    c: usize,
) {
    // SAFETY (both closures): masked to the channels left of each row; the caller vouches for
    // the 16 rows of `c` values `matrix` values apart from `out`.
    unsafe {
        transform_channels::<Zmm, 16>(
            c,
            |j, ch, lanes| Zmm::load(d[j].as_ptr().add(ch), lanes),
            |ab, ch, lanes, value| store_rounded(out.add(ab * matrix + ch), lanes, value),
        )
    }
}

/// `Bᵀ d B` of `c` channels, a vector at a time, for the tiling of `P` positions:
/// `load(j, ch, lanes)` gives pixel `j`'s channels `ch..ch + lanes`, `store(ab, ch, lanes,
/// value)` takes position `ab`'s.
///
/// # Safety
/// The callers run on the instructions of `V`; `load` and `store` are safe for the arguments
/// given.
#[inline(always)]
unsafe fn transform_channels<V: Vector, const P: usize>(
    c: usize,
    load: impl Fn(usize, usize, usize) -> V,
    store: impl Fn(usize, usize, usize, V),
) {
    for ch in (0..c).step_by(V::LANES) {
        let lanes = V::LANES.min(c - ch);
        let v: [V; P] = std::array::from_fn(|j| load(j, ch, lanes));
        let transformed: [V; P] = match P {
            16 => resized(input_transform(resized(v))),
            36 => resized(f4x4::input(resized(v))),
            _ => unreachable!("a tiling of {P} positions"),
        };
        for (ab, value) in transformed.into_iter().enumerate() {
            store(ab, ch, lanes, value);
        }
    }
}

/// `v` as an array of `B` values, `A` and `B` being equal (a tiling's positions in a generic
/// function).
#[inline(always)]
fn resized<T: Copy, const A: usize, const B: usize>(v: [T; A]) -> [T; B] {
    assert_eq!(A, B);
    std::array::from_fn(|i| v[i])
}

/// The first `lanes` of `value` rounded to bf16 (nearest even, as `bf16::from_f32` for finite
/// values) and stored at `out`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_rounded(out: *mut bf16, lanes: usize, value: Zmm) {
    use std::arch::x86_64::*;
    // SAFETY: the callers enable AVX-512F, BW and VL, and vouch for the lanes of `out`.
    unsafe {
        let bits = _mm512_castps_si512(value.0);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
        let high = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(rounded));
        _mm256_mask_storeu_epi16(out as *mut i16, mask16(lanes), high);
    }
}

/// `Bᵀ d` of one column of four, with Bᵀ of F(2x2, 3x3):
/// `[[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
struct InputColumn;

impl<V: Vector> Transform<V, 4, 4> for InputColumn {
    #[inline(always)]
    fn column([d0, d1, d2, d3]: [V; 4]) -> [V; 4] {
        [d0.sub(d2), d1.add(d2), d2.sub(d1), d1.sub(d3)]
    }
}

/// `Bᵀ d B` of one vector of a 4x4 block.
#[inline(always)]
fn input_transform<V: Vector>(v: [V; 16]) -> [V; 16] {
    separable::<V, InputColumn, 4, 4, 16, 16>(v)
}

/// `Aᵀ m A` of tile `i`'s products (rows of `stride` floats in `[positions][rows]` order) into
/// the tile's output pixels, `stride` floats apart in `out`, on `isa`'s vectors.
///
/// # Panics
/// Where `isa` does not run here.
fn transform_output(
    isa: Isa,
    tiling: Tiling,
    products: &[f32],
    i: usize,
    rows: usize,
    stride: usize,
    out: &mut [f32],
) {
    assert!(stride.is_multiple_of(16));
    let side = tiling.side();
    let out = &mut out[..side * side * stride];
    assert!(isa.runs_here(), "{isa:?} does not run here");
    // SAFETY (both): `isa` runs here; every product row holds `stride` values, a multiple of 16,
    // and `out` the block's pixels' `stride` values each.
    match tiling {
        Tiling::F2x2 => unsafe {
            let m: [&[f32]; 16] = product_rows(products, i, rows, stride);
            transform_output_f32::<16, 4>(isa, m, out.as_mut_ptr(), stride)
        },
        Tiling::F4x4 => unsafe {
            let m: [&[f32]; 36] = product_rows(products, i, rows, stride);
            transform_output_f32::<36, 16>(isa, m, out.as_mut_ptr(), stride)
        },
    }
}

/// Row `i` of each position's `[rows, stride]` product.
fn product_rows<const P: usize>(
    products: &[f32],
    i: usize,
    rows: usize,
    stride: usize,
) -> [&[f32]; P] {
    std::array::from_fn(|xi| &products[(xi * rows + i) * stride..][..stride])
}

on_isa_vectors! {
    /// Output transform of `stride` columns from the `P` products of a tiling to its `Q` output
    /// pixels, `stride` floats apart from `out`, on `isa`'s vectors.
    ///
    /// # Safety
    /// `isa` runs here; `stride` is a multiple of 16 and the length of every slice, and the `Q`
    /// pixels of `stride` floats at `out` are writable.
    unsafe fn transform_output_f32<const P: usize, const Q: usize>(
        m: [&[f32]; P],
        out: *mut f32,
        stride: usize,
    ) => transform_output_vectors
}

/// `Aᵀ m A` of `stride` columns, a vector at a time.
///
/// # Safety
/// As [`transform_output_f32`], on the instructions of `V`.
#[inline(always)]
unsafe fn transform_output_vectors<V: Vector, const P: usize, const Q: usize>(
    m: [&[f32]; P],
    out: *mut f32,
    stride: usize,
) {
    for k in (0..stride).step_by(V::LANES) {
        // SAFETY: `k + V::LANES <= stride`, the length of every slice; the caller vouches for
        // the `Q` pixels at `out`.
        unsafe {
            let v: [V; P] = std::array::from_fn(|j| V::load(m[j].as_ptr().add(k), V::LANES));
            let y: [V; Q] = match P {
                16 => resized(output_transform(resized(v))),
                36 => resized(f4x4::output(resized(v))),
                _ => unreachable!("a tiling of {P} positions"),
            };
            for (q, value) in y.into_iter().enumerate() {
                value.store(out.add(q * stride + k), V::LANES);
            }
        }
    }
}

/// `Aᵀ m` of one column of four, with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`.
struct OutputColumn;

impl<V: Vector> Transform<V, 4, 2> for OutputColumn {
    #[inline(always)]
    fn column([m0, m1, m2, m3]: [V; 4]) -> [V; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }
}

/// `Aᵀ m A` of one vector of the 16 products into a 2x2 block.
#[inline(always)]
fn output_transform<V: Vector>(v: [V; 16]) -> [V; 4] {
    separable::<V, OutputColumn, 4, 2, 16, 4>(v)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_input_bf16_avx512(_: [&[bf16]; 16], _: *mut bf16, _: usize, _: usize) {
    unreachable!("winograd weights exist only where AVX-512F runs")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_input_f32_to_bf16_avx512(_: [&[f32]; 16], _: *mut bf16, _: usize, _: usize) {
    unreachable!("winograd weights exist only where AVX-512F runs")
}

#[cfg(test)]
mod tests {

    use half::bf16;

    use super::{Tiling, Winograd};
    use crate::engine::Bf16Kernel;
    use crate::engine::conv::Target;
    use crate::engine::map::{Shape, View};

    pub(super) fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 251) as f32 / 125.0 - 1.0)
            .collect()
    }

    /// Calls `visit(p, q, tap)` for every output pixel `p` of a 3x3/1 window with one pixel of
    /// zero padding on map `s`, every input pixel `q` under it and its tap `ky · 3 + kx`.
    pub(super) fn window_taps(s: Shape, mut visit: impl FnMut(usize, usize, usize)) {
        for n in 0..s.n {
            for oy in 0..s.h {
                for ox in 0..s.w {
                    let p = (n * s.h + oy) * s.w + ox;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if iy < 1 || ix < 1 || iy > s.h || ix > s.w {
                                continue;
                            }
                            visit(p, (n * s.h + iy - 1) * s.w + ix - 1, ky * 3 + kx);
                        }
                    }
                }
            }
        }
    }

    /// relu(3x3/1 convolution, one pixel of zero padding, + bias) summed in f64.
    fn direct(x: &[f32], s: Shape, w: &[f32], bias: &[f32], out: usize) -> Vec<f64> {
        let mut y: Vec<f64> = (0..s.pixels() * out)
            .map(|i| bias[i % out] as f64)
            .collect();
        window_taps(s, |p, q, tap| {
            for c in 0..s.c {
                for o in 0..out {
                    let wi = (tap * s.c + c) * out + o;
                    y[p * out + o] += x[q * s.c + c] as f64 * w[wi] as f64;
                }
            }
        });
        y.iter().map(|v| v.max(0.0)).collect()
    }

    #[test]
    fn matches_the_direct_convolution_in_f64() {
        // Odd sides (tiles past the border), one pixel, more tiles than a block, channels and
        // filters not multiples of 16, more filters than a column block, two targets splitting
        // the filters inside a panel.
        for ((n, h, w, c, out), tiling) in [
            (1, 7, 7, 24, 40),
            (2, 17, 17, 16, 150),
            (1, 1, 1, 3, 5),
            (3, 14, 9, 64, 33),
            (2, 5, 4, 0, 7),
            (2, 18, 13, 40, 24),
        ]
        .into_iter()
        .flat_map(|shape| [Tiling::F2x2, Tiling::F4x4].map(|tiling| (shape, tiling)))
        {
            let weights = values(9 * c * out, 1);
            let Some(winograd) = Winograd::new(&weights, c, out, tiling) else {
                eprintln!(
                    "SKIPPED: this CPU has neither AVX-512F nor AVX2, Winograd's path never runs here"
                );
                return;
            };
            let s = Shape { n, h, w, c };
            let x = values(s.len(), 2);
            let bias = values(out, 3);
            let want = direct(&x, s, &values(9 * c * out, 1), &bias, out);
            let split = out / 2 + 1;
            let (first_stride, second_stride) = (split + 5, out - split);
            let mut first = vec![f32::NAN; s.pixels() * first_stride];
            let mut second = vec![f32::NAN; s.pixels() * second_stride];
            winograd.run(
                View::dense(&x, s),
                Some(&bias),
                &[
                    Target::new(0..split, &mut first, s.pixels(), first_stride, 3),
                    Target::new(split..out, &mut second, s.pixels(), second_stride, 0),
                ],
            );
            for p in 0..s.pixels() {
                for o in 0..out {
                    let got = if o < split {
                        first[p * first_stride + 3 + o]
                    } else {
                        second[p * second_stride + o - split]
                    } as f64;
                    let exact = want[p * out + o];
                    assert!(
                        (got - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                        "{tiling:?} [{n}, {h}, {w}, {c}] -> {out}: pixel {p} filter {o}: {got} vs {exact}"
                    );
                }
                let untouched = &first[p * first_stride..][..3];
                assert!(untouched.iter().all(|v| v.is_nan()), "pixel {p}");
            }
        }
    }

    /// bf16 maps on each bf16 kernel that runs here: the direct convolution of the same bf16
    /// inputs, within bf16's rounding of the transformed operands and of the output (each a
    /// relative 2^-9, summed over terms no larger than the direct products' magnitudes times the
    /// transforms' gains).
    #[test]
    fn bf16_maps_match_the_direct_convolution_within_bf16_rounding() {
        let kernels: Vec<Bf16Kernel> = [
            Bf16Kernel::Portable,
            Bf16Kernel::Avx512Bf16,
            Bf16Kernel::Amx,
        ]
        .into_iter()
        .filter(|k| k.runs_here())
        .collect();
        for (n, h, w, c, out) in [(1, 7, 7, 24, 40), (2, 9, 6, 35, 150), (1, 1, 1, 3, 5)] {
            let weights = values(9 * c * out, 1);
            let s = Shape { n, h, w, c };
            let x: Vec<bf16> = values(s.len(), 2).into_iter().map(bf16::from_f32).collect();
            let wide: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
            let bias = values(out, 3);
            let want = direct(&wide, s, &weights, &bias, out);
            let mut magnitude = vec![0.0f64; s.pixels() * out];
            window_taps(s, |p, q, tap| {
                for ch in 0..c {
                    for o in 0..out {
                        let term =
                            wide[q * c + ch] as f64 * weights[(tap * c + ch) * out + o] as f64;
                        magnitude[p * out + o] += term.abs();
                    }
                }
            });
            for &kernel in &kernels {
                let Some(winograd) = Winograd::new(&weights, c, out, Tiling::F2x2)
                    .and_then(|f32_path| f32_path.in_bf16(&weights, kernel))
                else {
                    eprintln!("SKIPPED: this CPU lacks AVX-512F, BW or VL: no bf16 Winograd path");
                    return;
                };
                let mut y = vec![bf16::from_f32(f32::NAN); s.pixels() * out];
                winograd.run(
                    View::dense(&x, s),
                    Some(&bias),
                    &[Target::dense(&mut y, s.with_channels(out))],
                );
                for (i, (got, exact)) in y.iter().zip(&want).enumerate() {
                    let bound = 4.0 * magnitude[i] / 512.0 + exact.abs() / 256.0 + 1e-6;
                    let got = got.to_f64();
                    assert!(
                        (got - exact).abs() <= bound,
                        "{kernel:?} [{n}, {h}, {w}, {c}] -> {out}: value {i}: {got} vs {exact}"
                    );
                }
            }
        }
    }
}
