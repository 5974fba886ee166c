//! Convolution + bias + ReLU as one matrix product per tile of output pixels.
//!
//! Activations are NHWC, so the output pixels are the rows of a matrix and the filters its
//! columns: a 1x1 convolution multiplies the input rows by the weights directly; larger kernels
//! first gather each pixel's receptive field into a row (im2col, one tile at a time so it stays in
//! cache). BatchNorm is folded into the weights and bias, and the epilogue adds the bias, applies
//! the ReLU that follows every convolution of GoogLeNet (section 5 of the paper) and writes each
//! group of columns to its own place, so that several convolutions reading the same input run as
//! one wider product and branch outputs land in the concatenated buffer.
//!
//! Where the CPU has AVX-512, or AVX2 and FMA, the products run on our kernel over weights packed once
//! ([`super::packed`]), which applies the bias and the ReLU in registers and stores straight into
//! the targets, and 3x3 stride-1 convolutions run as Winograd's minimal filtering
//! ([`super::winograd`]), no im2col: F(2x2, 3x3), 2.25x fewer multiplications, or in f32 on maps
//! with enough tiles F(4x4, 3x3), 4x fewer. Elsewhere the products run on the `gemm` crate.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::OnceLock;

use burn::nn::PaddingConfig2d;
use half::bf16;
use rayon::prelude::*;

use super::activation::Activation;
use super::bf16::{Bf16Kernel, Bf16Scratch, Bf16Weights};
use super::calibrator::{Calibrator, InputRange};
use super::int8::{Int8Kernel, Int8Weights};
use super::int8_conv::{Int8Conv, Int8Target};
use super::int8_dot::Int8Out;
use super::map::{Shape, View};
use super::matmul::matmul;
use super::packed::{PANEL, PackedWeights, PanelOut};
use super::window::Window;
use super::winograd::{Tiling, Winograd};
use super::{InferenceError, tensor_values};
use crate::model::conv_unit::ConvUnit;
use crate::model::pool::same_padding;

/// How a convolution pads its input (burn's `PaddingConfig2d` for square kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Padding {
    /// The same number of zeros on every side.
    Explicit(usize),
    /// TensorFlow's 'same': output ceil(n / stride), the odd zero at the end.
    Same,
}

/// A convolution with its BatchNorm folded in, weights laid out as a `[kernel² · in, out]` matrix
/// whose rows run over (kernel row, kernel column, input channel).
pub(crate) struct ConvGemm {
    /// Side of the square kernel.
    pub kernel: usize,
    /// Step between output positions.
    pub stride: usize,
    /// Padding of the input.
    pub padding: Padding,
    /// Channels read.
    pub in_channels: usize,
    /// Channels written (filters).
    pub out_channels: usize,
    weights: Vec<f32>,
    /// The same weights packed for our kernel, where it runs.
    packed: Option<PackedWeights>,
    /// A 3x3/1 convolution's weights for Winograd's F(2x2, 3x3), where the packed kernel runs.
    winograd: Option<Winograd>,
    /// The same for F(4x4, 3x3) in f32, transformed on the first map large enough for it.
    winograd_f4x4: OnceLock<Option<Winograd>>,
    pub(super) bias: Vec<f32>,
    /// The weights rounded to bf16 for its kernel, when the products run in bf16.
    bf16: Option<Bf16Weights>,
    /// The weights quantized to int8 with the input's scale, when the products run in int8.
    int8: Option<Int8Conv>,
    /// The range of the inputs, recorded by [`Self::run`] while calibrating for int8.
    calibrator: Calibrator,
}

/// Where the product's rows come from.
pub(crate) enum Source<'a, T> {
    /// The input pixels themselves (a 1x1 convolution with stride 1).
    Pixels(View<'a, T>),
    /// Each output pixel's receptive field (im2col).
    Patches(View<'a, T>),
    /// A max pool of the input, computed tile by tile (the pool-projection branch).
    MaxPooled(View<'a, T>, Window),
}

impl<'a, T> Source<'a, T> {
    /// The map the rows come from.
    pub fn map(&self) -> View<'a, T> {
        match *self {
            Source::Pixels(v) | Source::Patches(v) | Source::MaxPooled(v, _) => v,
        }
    }
}

impl<T> Clone for Source<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Source<'_, T> {}

/// Output columns `cols` of a product go to channels `offset..` of an NHWC buffer with pixels
/// `stride` floats apart.
pub(crate) struct Target<'a, T> {
    cols: Range<usize>,
    ptr: SendPtr<T>,
    pixels: usize,
    stride: usize,
    offset: usize,
    _buffer: PhantomData<&'a mut [T]>,
}

struct SendPtr<T>(*mut T);
// SAFETY: tiles write disjoint rows of a target (see `ConvGemm::run`), and the buffer outlives the
// run through `Target`'s borrow.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Sync> Sync for SendPtr<T> {}

impl<'a, T> Target<'a, T> {
    /// Columns `cols` into channels `offset..offset + cols.len()` of `pixels` pixels of `buffer`.
    pub fn new(
        cols: Range<usize>,
        buffer: &'a mut [T],
        pixels: usize,
        stride: usize,
        offset: usize,
    ) -> Self {
        assert!(
            offset + cols.len() <= stride,
            "target columns past the pixel"
        );
        assert!(buffer.len() >= pixels * stride, "target buffer too short");
        Self {
            cols,
            ptr: SendPtr(buffer.as_mut_ptr()),
            pixels,
            stride,
            offset,
            _buffer: PhantomData,
        }
    }

    /// A dense map of `shape` filled by all columns.
    pub fn dense(buffer: &'a mut [T], shape: Shape) -> Self {
        Self::new(0..shape.c, buffer, shape.pixels(), shape.c, 0)
    }

    /// Pixels of its buffer.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// The same target, for as long as this one is borrowed.
    pub(super) fn reborrow(&self) -> Target<'_, T> {
        Target {
            cols: self.cols.clone(),
            ptr: SendPtr(self.ptr.0),
            _buffer: PhantomData,
            ..*self
        }
    }

    /// Where product columns `c..c + lanes` go from output pixel `row` on, if they all fall in
    /// this target.
    pub(super) fn panel(&self, row: usize, c: usize, lanes: usize) -> Option<PanelOut<T>> {
        if !self.cols.contains(&c) || c + lanes > self.cols.end {
            return None;
        }
        let at = row * self.stride + self.offset + c - self.cols.start;
        // SAFETY: `Target::new` checked that its buffer holds `pixels * stride` values, and
        // `ConvGemm::run` that the tiles' rows are among its pixels.
        let ptr = unsafe { self.ptr.0.add(at) };
        Some(PanelOut {
            ptr,
            stride: self.stride,
            lanes,
        })
    }
}

impl<T: Activation> Target<'_, T> {
    /// Writes relu(`values` + bias) for product columns `cols` of output pixel `pixel`, the part
    /// of them that falls in this target (`values[i]` is column `cols.start + i`, `bias` is
    /// indexed by column).
    ///
    /// # Safety
    /// No other thread writes these values of the buffer during the call.
    pub unsafe fn write_bias_relu(
        &self,
        pixel: usize,
        cols: Range<usize>,
        values: &[f32],
        bias: &[f32],
    ) {
        // SAFETY: the caller's guarantee.
        if let Some((dst, lo, hi)) = unsafe { self.part(pixel, &cols) } {
            let values = &values[lo - cols.start..hi - cols.start];
            T::bias_relu(dst, values, &bias[lo..hi]);
        }
    }

    /// Writes `values` as they are, for product columns `cols` of output pixel `pixel` (the
    /// part of them that falls in this target).
    ///
    /// # Safety
    /// No other thread writes these values of the buffer during the call.
    pub unsafe fn write(&self, pixel: usize, cols: Range<usize>, values: &[f32]) {
        // SAFETY: the caller's guarantee.
        if let Some((dst, lo, hi)) = unsafe { self.part(pixel, &cols) } {
            super::activation::convert(&values[lo - cols.start..hi - cols.start], dst);
        }
    }

    /// The values of pixel `pixel` that product columns `lo..hi` (those of `cols` in this
    /// target) go to, with `lo` and `hi`.
    ///
    /// # Safety
    /// No other thread writes these values of the buffer while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part(&self, pixel: usize, cols: &Range<usize>) -> Option<(&mut [T], usize, usize)> {
        let lo = self.cols.start.max(cols.start);
        let hi = self.cols.end.min(cols.end);
        if lo >= hi {
            return None;
        }
        assert!(pixel < self.pixels, "pixel {pixel} of {}", self.pixels);
        let at = pixel * self.stride + self.offset + lo - self.cols.start;
        // SAFETY: `new` checked that `pixels * stride` values exist and that the columns stay
        // inside a pixel; the caller rules out other writers.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.ptr.0.add(at), hi - lo) };
        Some((dst, lo, hi))
    }
}

/// Per-thread scratch: the gathered rows of a tile (f32 or bf16), the tile's product, and the
/// portable bf16 kernel's buffer.
#[derive(Default)]
pub(crate) struct Scratch {
    rows: Vec<f32>,
    bf16_rows: Vec<bf16>,
    /// A tile's rows gathered from a quantized map for int8 products.
    pub(super) int8_rows: Vec<u8>,
    /// Where the int8 kernel writes each panel of the tile.
    pub(super) int8_panels: Vec<Int8Out>,
    pub(super) product: Vec<f32>,
    /// Where the packed kernel writes each panel of the tile.
    pub(super) panels: Vec<PanelOut>,
    /// Where the bf16 kernel writes each panel of the tile, when it stores activations.
    bf16_panels: Vec<PanelOut<bf16>>,
    bf16: Bf16Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl ConvGemm {
    /// Folds the unit's BatchNorm (running statistics) into its convolution.
    pub fn from_unit(unit: &ConvUnit) -> Result<Self, InferenceError> {
        let conv = &unit.conv;
        let [out_channels, in_channels, kh, kw] = conv.weight.dims();
        if kh != kw || conv.stride[0] != conv.stride[1] || conv.groups != 1 {
            return Err(InferenceError::Unsupported(
                "non-square or grouped convolution".into(),
            ));
        }
        if conv.dilation != [1, 1] {
            return Err(InferenceError::Unsupported("dilated convolution".into()));
        }
        let padding = match conv.padding {
            PaddingConfig2d::Same => Padding::Same,
            PaddingConfig2d::Valid => Padding::Explicit(0),
            PaddingConfig2d::Explicit(t, l, b, r) if t == l && t == b && t == r => {
                Padding::Explicit(t)
            }
            PaddingConfig2d::Explicit(..) => {
                return Err(InferenceError::Unsupported("asymmetric padding".into()));
            }
        };
        let weight = tensor_values(conv.weight.val())?;
        let mut bias = match &conv.bias {
            Some(b) => tensor_values(b.val())?,
            None => vec![0.0; out_channels],
        };
        let mut scale = vec![1.0; out_channels];
        if let Some(bn) = &unit.bn {
            let gamma = tensor_values(bn.weight.val())?;
            let beta = tensor_values(bn.bias.val())?;
            let mean = tensor_values(bn.running_mean.value())?;
            let var = tensor_values(bn.running_var.value())?;
            for o in 0..out_channels {
                let s = gamma[o] as f64 / (var[o] as f64 + bn.epsilon).sqrt();
                scale[o] = s as f32;
                bias[o] = ((bias[o] as f64 - mean[o] as f64) * s + beta[o] as f64) as f32;
            }
        }
        let k = kh;
        let mut weights = vec![0.0; k * k * in_channels * out_channels];
        for o in 0..out_channels {
            for i in 0..in_channels {
                for y in 0..k {
                    for x in 0..k {
                        let row = (y * k + x) * in_channels + i;
                        weights[row * out_channels + o] =
                            weight[((o * in_channels + i) * k + y) * k + x] * scale[o];
                    }
                }
            }
        }
        let pads_one = matches!(padding, Padding::Same | Padding::Explicit(1));
        let winograd = (k == 3 && conv.stride[0] == 1 && pads_one)
            .then(|| Winograd::new(&weights, in_channels, out_channels, Tiling::F2x2))
            .flatten();
        let packed = match winograd {
            Some(_) => None,
            None => PackedWeights::for_this_cpu(&weights, [k * k * in_channels, out_channels]),
        };
        Ok(Self {
            kernel: k,
            stride: conv.stride[0],
            padding,
            in_channels,
            out_channels,
            weights,
            packed,
            winograd,
            winograd_f4x4: OnceLock::new(),
            bias,
            bf16: None,
            int8: None,
            calibrator: Calibrator::default(),
        })
    }

    /// The same convolution with its products in bf16 on `kernel` (the folded weights rounded
    /// once, or for Winograd's path their transform; bias and ReLU stay f32). AMX tiles multiply
    /// the 3x3 convolutions directly: at their speed the transforms would cost about what the
    /// smaller products save.
    pub fn in_bf16(mut self, kernel: Bf16Kernel) -> Self {
        let k = self.kernel * self.kernel * self.in_channels;
        self.packed = None;
        self.winograd = (self.winograd.take())
            .filter(|_| kernel != Bf16Kernel::Amx)
            .and_then(|winograd| winograd.in_bf16(&self.weights, kernel));
        self.bf16 = Some(Bf16Weights::new(
            &self.weights,
            [k, self.out_channels],
            kernel,
        ));
        self
    }

    /// The int8 weights, where the products run in int8.
    pub(super) fn int8(&self) -> Option<&Int8Conv> {
        self.int8.as_ref()
    }

    /// The int8 weights to change, where the products run in int8.
    pub(super) fn int8_mut(&mut self) -> Option<&mut Int8Conv> {
        self.int8.as_mut()
    }

    /// Whether [`Self::run`] records the range of its inputs, for [`Self::in_int8`].
    pub fn record_inputs(&self, on: bool) {
        self.calibrator.set_recording(on);
    }

    /// Whether an input range was recorded.
    pub fn is_calibrated(&self) -> bool {
        self.calibrator.range().is_some()
    }

    /// The same convolution with its products in int8 on `kernel` (see [`super::int8`]), its
    /// inputs quantized over the range recorded ([`Self::record_inputs`]; 0..=1 if none was).
    pub fn in_int8(mut self, kernel: Int8Kernel) -> Self {
        assert!(self.bf16.is_none(), "int8 quantizes the f32 convolution");
        let k = self.kernel * self.kernel * self.in_channels;
        let range = self.calibrator.range().unwrap_or(InputRange {
            largest: 1.0,
            most_negative: 0.0,
        });
        self.int8 = Some(Int8Conv::new(Int8Weights::new(
            &self.weights,
            [k, self.out_channels],
            range,
            kernel,
        )));
        self.packed = None;
        self.winograd = None;
        self
    }

    /// Side by side: one convolution whose filters are those of `parts` in order ("horizontal
    /// fusion" of convolutions that read the same input with the same window).
    pub fn concat(parts: &[ConvGemm]) -> ConvGemm {
        let first = &parts[0];
        assert!(parts.iter().all(|p| p.kernel == first.kernel
            && p.stride == first.stride
            && p.padding == first.padding
            && p.in_channels == first.in_channels));
        assert!(
            parts.iter().all(|p| p.bf16.is_none() && p.int8.is_none()),
            "concatenate before rounding"
        );
        let out_channels: usize = parts.iter().map(|p| p.out_channels).sum();
        let rows = first.kernel * first.kernel * first.in_channels;
        let mut weights = Vec::with_capacity(rows * out_channels);
        for r in 0..rows {
            for p in parts {
                weights.extend_from_slice(&p.weights[r * p.out_channels..][..p.out_channels]);
            }
        }
        ConvGemm {
            kernel: first.kernel,
            stride: first.stride,
            padding: first.padding,
            in_channels: first.in_channels,
            out_channels,
            packed: PackedWeights::for_this_cpu(&weights, [rows, out_channels]),
            winograd: None,
            winograd_f4x4: OnceLock::new(),
            weights,
            bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
            bf16: None,
            int8: None,
            calibrator: Calibrator::default(),
        }
    }

    /// The weights for F(4x4, 3x3), transformed on the first call. The transform (itself a
    /// parallel loop) runs outside the cell's lock: a thread of the pool that steals a job of
    /// another forward pass while it transforms never waits on itself; two concurrent first
    /// calls both transform, and one keeps its result.
    fn winograd_f4x4(&self) -> Option<&Winograd> {
        if self.winograd_f4x4.get().is_none() {
            let (c, n) = (self.in_channels, self.out_channels);
            let _ = (self.winograd_f4x4).set(Winograd::new(&self.weights, c, n, Tiling::F4x4));
        }
        self.winograd_f4x4.get().and_then(Option::as_ref)
    }

    /// Where the window lies on an `h` x `w` input, or `None` if the input is too small.
    pub fn window(&self, [h, w]: [usize; 2]) -> Option<Window> {
        let (k, s) = (self.kernel, self.stride);
        let side = |n: usize| match self.padding {
            Padding::Explicit(p) => Some(((n + 2 * p).checked_sub(k)? / s + 1, p)),
            Padding::Same => (n > 0).then(|| (n.div_ceil(s), same_padding(n, k, s).0)),
        };
        let (oh, ph) = side(h)?;
        let (ow, pw) = side(w)?;
        Some(Window {
            kernel: k,
            stride: s,
            pad: [ph, pw],
            out: [oh, ow],
        })
    }

    /// Runs the convolution on `source` (whose map is `input`), writing relu(product + bias) to
    /// `targets`, which together cover every output column once.
    pub fn run<T: MapElement>(&self, source: Source<T>, targets: &[Target<T>]) {
        if self.calibrator.is_recording() {
            T::record(&self.calibrator, source.map());
        }
        if T::int8(self, source, targets) {
            return;
        }
        if let Source::Patches(input) = source
            && T::winograd(self, input, targets)
        {
            return;
        }
        let (window, k, rows) = self.plan(source, targets.iter().map(Target::pixels));
        self.for_each_tile(rows, |rs, cs, scratch| {
            self.tile(source, &window, k, rs, cs, targets, scratch)
        });
    }

    /// The window on `source`'s map, the length of a row of the product's left operand and the
    /// number of output pixels, checking that `targets` hold them.
    pub(super) fn plan<T>(
        &self,
        source: Source<T>,
        target_pixels: impl IntoIterator<Item = usize>,
    ) -> (Window, usize, usize) {
        let input = source.map().shape;
        let window = self
            .window([input.h, input.w])
            .expect("input size checked when planning");
        let rows = input.n * window.out[0] * window.out[1];
        assert!(target_pixels.into_iter().all(|pixels| pixels >= rows));
        let k = match source {
            Source::Patches(_) => self.kernel * self.kernel * self.in_channels,
            _ => self.in_channels,
        };
        if let Source::Pixels(_) | Source::MaxPooled(..) = source {
            assert!(self.kernel == 1 && self.stride == 1, "1x1/1 sources only");
        }
        (window, k, rows)
    }

    /// Calls `tile(rows, columns, scratch)` for tiles of the product's `rows` rows and the
    /// filters, in parallel: rows alone where they are enough to share out, else columns too.
    pub(super) fn for_each_tile(
        &self,
        rows: usize,
        tile: impl Fn(Range<usize>, Range<usize>, &mut Scratch) + Sync,
    ) {
        let threads = rayon::current_num_threads();
        let tile_rows = (rows / (4 * threads)).clamp(16, 256);
        let row_tiles = rows.div_ceil(tile_rows);
        let (col_tiles, tile_cols) = column_split(row_tiles, self.out_channels);
        (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
            let r0 = (t / col_tiles) * tile_rows;
            let rs = r0..(r0 + tile_rows).min(rows);
            let c0 = (t % col_tiles) * tile_cols;
            let cs = c0..(c0 + tile_cols).min(self.out_channels);
            SCRATCH.with_borrow_mut(|scratch| tile(rs, cs, scratch));
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn tile<T: MapElement>(
        &self,
        source: Source<T>,
        window: &Window,
        k: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Target<T>],
        scratch: &mut Scratch,
    ) {
        let Some(stride) = T::product(
            self,
            source,
            window,
            k,
            rows.clone(),
            cols.clone(),
            targets,
            scratch,
        ) else {
            return;
        };
        self.write_product(&scratch.product, stride, rows, cols, targets);
    }

    /// relu(`product` + bias) into `targets`: the tile's `rows`, `stride` floats apart in
    /// `product`, for columns `cols`.
    pub(super) fn write_product<T: Activation>(
        &self,
        product: &[f32],
        stride: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Target<T>],
    ) {
        for (r, p) in rows.enumerate() {
            let values = &product[r * stride..][..cols.len()];
            for target in targets {
                // SAFETY: tiles cover disjoint (row, column) ranges, so no two threads write the
                // same value.
                unsafe { target.write_bias_relu(p, cols.clone(), values, &self.bias) };
            }
        }
    }
}

/// A feature-map format a convolution reads: f32 maps multiply f32 weights on `gemm`, bf16
/// maps the convolution's bf16 weights.
pub(crate) trait MapElement: Activation {
    /// The product of the tile's `rows` (gathered from `source`, `k` values each) and weight
    /// columns `cols`, into `scratch.product`; returns the distance between its rows, or `None`
    /// where the kernel has itself written relu(product + bias) to the `targets`.
    #[allow(clippy::too_many_arguments)]
    fn product(
        conv: &ConvGemm,
        source: Source<Self>,
        window: &Window,
        k: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Target<Self>],
        scratch: &mut Scratch,
    ) -> Option<usize>;

    /// Runs the convolution through Winograd's minimal filtering where it has those weights; false
    /// if not.
    fn winograd(conv: &ConvGemm, input: View<Self>, targets: &[Target<Self>]) -> bool;

    /// Widens `calibrator`'s range to the values of `map`, for int8's calibration (f32 maps
    /// only).
    fn record(calibrator: &Calibrator, map: View<Self>);

    /// Runs the convolution's products in int8 where it has int8 weights (f32 maps only); false
    /// if not.
    fn int8(conv: &ConvGemm, source: Source<Self>, targets: &[Target<Self>]) -> bool;
}

impl MapElement for f32 {
    fn record(calibrator: &Calibrator, map: View<f32>) {
        calibrator.record(map);
    }

    fn int8(conv: &ConvGemm, source: Source<f32>, targets: &[Target<f32>]) -> bool {
        if conv.int8.is_none() {
            return false;
        }
        let targets: Vec<_> = targets
            .iter()
            .map(|t| Int8Target::F32(t.reborrow()))
            .collect();
        conv.run_int8(source, &targets);
        true
    }

    fn winograd(conv: &ConvGemm, input: View<f32>, targets: &[Target<f32>]) -> bool {
        let Some(winograd) = &conv.winograd else {
            return false;
        };
        let f4x4 = (Tiling::for_f32_inference(input.shape) == Tiling::F4x4)
            .then(|| conv.winograd_f4x4())
            .flatten();
        f4x4.unwrap_or(winograd)
            .run(input, Some(&conv.bias), targets);
        true
    }

    fn product(
        conv: &ConvGemm,
        source: Source<f32>,
        window: &Window,
        k: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Target<f32>],
        scratch: &mut Scratch,
    ) -> Option<usize> {
        let (m, n) = (rows.len(), cols.len());
        let (a, a_stride): (&[f32], usize) = match source {
            Source::Pixels(v) => (&v.data[rows.start * v.stride + v.offset..], v.stride),
            Source::Patches(v) => {
                super::map::grow(&mut scratch.rows, m * k);
                gather_patches(v, window, rows.clone(), k, &mut scratch.rows[..m * k], 0.0);
                (&scratch.rows[..], k)
            }
            Source::MaxPooled(v, pool) => {
                super::map::grow(&mut scratch.rows, m * k);
                max_pooled_rows(v, &pool, rows.clone(), k, &mut scratch.rows[..m * k]);
                (&scratch.rows[..], k)
            }
        };
        if let Some(packed) = &conv.packed {
            let panels = &mut scratch.panels;
            if panel_outs(targets, &rows, &cols, panels) {
                // SAFETY: `panel_outs` checked that each panel lies inside one target, whose
                // `Target::new` checked the buffer; tiles cover disjoint (row, column) ranges.
                unsafe {
                    let out = |i: usize| panels[i];
                    let bias = Some(&conv.bias[..]);
                    packed.multiply_into(a, a_stride, m, cols.start, panels.len(), out, bias);
                }
                return None;
            }
            super::map::grow(&mut scratch.product, m * n.next_multiple_of(PANEL));
            return Some(packed.multiply(a, a_stride, m, cols, &mut scratch.product));
        }
        super::map::grow(&mut scratch.product, m * n);
        matmul(
            &mut scratch.product[..m * n],
            n,
            a,
            a_stride,
            &conv.weights[cols.start..],
            conv.out_channels,
            [m, k, n],
            false,
        );
        Some(n)
    }
}

impl MapElement for bf16 {
    fn record(_: &Calibrator, _: View<bf16>) {
        panic!("int8 is calibrated on the f32 network");
    }

    fn int8(_: &ConvGemm, _: Source<bf16>, _: &[Target<bf16>]) -> bool {
        false
    }

    fn winograd(conv: &ConvGemm, input: View<bf16>, targets: &[Target<bf16>]) -> bool {
        let Some(winograd) = &conv.winograd else {
            return false;
        };
        winograd.run(input, Some(&conv.bias), targets);
        true
    }

    fn product(
        conv: &ConvGemm,
        source: Source<bf16>,
        window: &Window,
        k: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        targets: &[Target<bf16>],
        scratch: &mut Scratch,
    ) -> Option<usize> {
        let weights = conv
            .bf16
            .as_ref()
            .expect("a bf16 map is only run through convolutions rounded to bf16");
        let m = rows.len();
        let panels = &mut scratch.bf16_panels;
        let fused = weights.stores_activations() && panel_outs(targets, &rows, &cols, panels);
        if let Source::Pixels(v) = source
            && fused
            && k.is_multiple_of(2)
            && v.stride.is_multiple_of(2)
        {
            // The pixels' channels are the rows as they lie: no copy.
            let left = &v.data[rows.start * v.stride + v.offset..];
            // SAFETY: as below; the rows of `left` hold k (even) values `v.stride` apart.
            unsafe {
                weights.multiply_bias_relu(left, v.stride, m, cols.start, panels, &conv.bias)
            };
            return None;
        }
        let (padded_rows, row_len) = weights.left_layout(m);
        super::map::grow(&mut scratch.bf16_rows, padded_rows * row_len);
        let left = &mut scratch.bf16_rows[..padded_rows * row_len];
        match source {
            Source::Pixels(v) => {
                for (p, row) in rows.clone().zip(left.chunks_exact_mut(row_len)) {
                    row[..k].copy_from_slice(&v.data[p * v.stride + v.offset..][..k]);
                    row[k..].fill(bf16::ZERO);
                }
            }
            Source::Patches(v) => {
                gather_patches(v, window, rows.clone(), row_len, left, bf16::ZERO)
            }
            Source::MaxPooled(v, pool) => max_pooled_rows(v, &pool, rows.clone(), row_len, left),
        }
        left[m * row_len..].fill(bf16::ZERO);
        if fused {
            let panels = &scratch.bf16_panels;
            // SAFETY: `panel_outs` checked that each panel lies inside one target, whose
            // `Target::new` checked the buffer; tiles cover disjoint (row, column) ranges.
            unsafe { weights.multiply_bias_relu(left, row_len, m, cols.start, panels, &conv.bias) };
            return None;
        }
        super::map::grow(&mut scratch.product, weights.product_len(m, cols.len()));
        let product = &mut scratch.product;
        Some(weights.multiply(left, m, cols, &mut scratch.bf16, product))
    }
}

/// How `columns` output columns are shared out when `row_tasks` tasks of rows alone are too few to
/// keep the pool busy (batch 1, the 7x7 stage): (column tasks, columns per task), each task a
/// whole number of panels and at least two wide.
pub(crate) fn column_split(row_tasks: usize, columns: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads();
    let tasks = if row_tasks >= 2 * threads {
        1
    } else {
        (2 * threads)
            .div_ceil(row_tasks)
            .min(columns / (2 * PANEL))
            .max(1)
    };
    let per_task = columns.div_ceil(tasks).next_multiple_of(PANEL);
    (columns.div_ceil(per_task), per_task)
}

/// Where each panel of the tile's columns goes in `targets`, into `out`; false if a panel spans
/// two targets (its columns then go through the product buffer).
pub(super) fn panel_outs<T>(
    targets: &[Target<T>],
    rows: &Range<usize>,
    cols: &Range<usize>,
    out: &mut Vec<PanelOut<T>>,
) -> bool {
    panels_of(cols, out, |c, lanes| {
        targets.iter().find_map(|t| t.panel(rows.start, c, lanes))
    })
}

/// Each panel of columns `cols` as `panel(first column, lanes)` finds it, into `out`; false
/// where it finds none.
pub(super) fn panels_of<P>(
    cols: &Range<usize>,
    out: &mut Vec<P>,
    panel: impl Fn(usize, usize) -> Option<P>,
) -> bool {
    out.clear();
    for c in cols.clone().step_by(PANEL) {
        match panel(c, PANEL.min(cols.end - c)) {
            Some(p) => out.push(p),
            None => return false,
        }
    }
    true
}

/// Fills one row of `row_len` values per output pixel in `rows` with the max pool `pool` of `v`
/// there (its `v.shape.c` channels), zeros after them.
pub(super) fn max_pooled_rows<T: Activation>(
    v: View<T>,
    pool: &Window,
    rows: Range<usize>,
    row_len: usize,
    out: &mut [T],
) {
    let c = v.shape.c;
    for (p, row) in rows.zip(out.chunks_exact_mut(row_len)) {
        super::pool::max_window(v, pool, p, &mut row[..c]);
        row[c..].fill(T::default());
    }
}

/// Fills one row of `row_len` values per output pixel in `rows` with its receptive field in
/// (kernel row, kernel column, channel) order, `border` where the window hangs over the border
/// (zero, or a quantized map's zero point), zeros after the field.
pub(super) fn gather_patches<T: Activation>(
    v: View<T>,
    window: &Window,
    rows: Range<usize>,
    row_len: usize,
    out: &mut [T],
    border: T,
) {
    let c = v.shape.c;
    let k = window.kernel;
    let [oh, ow] = window.out;
    for (p, row) in rows.zip(out.chunks_exact_mut(row_len)) {
        let (row, padding) = row.split_at_mut(k * k * c);
        // Fills and copies of a few bytes are library calls: only the non-empty ones are made.
        if !padding.is_empty() {
            padding.fill(T::default());
        }
        let image = p / (oh * ow);
        let oy = p / ow % oh;
        let ox = p % ow;
        let y0 = (oy * window.stride) as isize - window.pad[0] as isize;
        let x0 = (ox * window.stride) as isize - window.pad[1] as isize;
        // Columns of the window inside the input: their pixels lie side by side in NHWC, so a
        // dense map copies them in one go.
        let inside = x0.max(0) as usize..(x0 + k as isize).clamp(0, v.shape.w as isize) as usize;
        let first = (inside.start as isize - x0) as usize;
        for ky in 0..k {
            let y = y0 + ky as isize;
            let line = &mut row[ky * k * c..][..k * c];
            if y < 0 || y >= v.shape.h as isize || inside.is_empty() {
                line.fill(border);
                continue;
            }
            let (before, after) = (first * c, (first + inside.len()) * c);
            if before > 0 {
                line[..before].fill(border);
            }
            if after < line.len() {
                line[after..].fill(border);
            }
            let dst = &mut line[first * c..][..inside.len() * c];
            if v.stride == c {
                let start = (image * v.shape.h + y as usize) * v.shape.w + inside.start;
                dst.copy_from_slice(&v.data[start * c + v.offset..][..inside.len() * c]);
            } else {
                for (d, x) in dst.chunks_exact_mut(c).zip(inside.clone()) {
                    d.copy_from_slice(v.pixel(image, y as usize, x));
                }
            }
        }
    }
}
