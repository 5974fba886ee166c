//! An inception module (Figure 2b of the paper) in training.
//!
//! The three 1x1 convolutions that read the module's input (branch 1, the 3x3 reduction, the
//! "5x5" reduction) run as one unit side by side, so the forward pass is one matrix product and
//! the backward pass's input gradient is one product too (it sums the three branches' gradients
//! for free). The fused unit's BatchNorm writes branch 1 straight into its channels of the
//! concatenated map and the two reductions into their own buffers; the other branches' outputs are
//! written into their channels of the concatenated map too, and their gradients are read from the
//! same channels of the gradient map. The fused unit's backward pass reads its gradient the same
//! way, branch 1's from the gradient map and the reductions' from their own buffers.

use super::super::map::{Shape, grow};
use super::conv::ConvScratch;
use super::norm::Layout;
use super::pool::{self, GradientWrite, MaxPoolShape};
use super::unit::ConvBn;

pub(crate) struct InceptionTrain {
    /// Branch 1, the 3x3 reduction and the 5x5 reduction side by side.
    pub fused: ConvBn,
    /// Output channels of branch 1, the 3x3 reduction and the 5x5 reduction.
    pub widths: [usize; 3],
    /// The 3x3 convolution after its reduction.
    pub branch2: ConvBn,
    /// The 5x5 convolution (3x3 in torchvision) after its reduction.
    pub branch3: ConvBn,
    /// The 3x3/1 max pool before the projection (torchvision: padding 1, ceil mode).
    pub pool: MaxPoolShape,
    /// The 1x1 projection after the pool (Table 1, "pool proj").
    pub projection: ConvBn,
    /// Saved by the forward pass: the two reductions, the pooled input and where each pooled
    /// value came from.
    reduced: [Vec<f32>; 2],
    pooled: Vec<f32>,
    argmax: Vec<u32>,
    /// Gradient buffers of the backward pass.
    reduced_grad: [Vec<f32>; 2],
    pooled_grad: Vec<f32>,
}

impl InceptionTrain {
    /// A module from its units, with empty buffers.
    pub fn new(
        fused: ConvBn,
        widths: [usize; 3],
        branch2: ConvBn,
        branch3: ConvBn,
        pool: MaxPoolShape,
        projection: ConvBn,
    ) -> Self {
        Self {
            fused,
            widths,
            branch2,
            branch3,
            pool,
            projection,
            reduced: [Vec::new(), Vec::new()],
            pooled: Vec::new(),
            argmax: Vec::new(),
            reduced_grad: [Vec::new(), Vec::new()],
            pooled_grad: Vec::new(),
        }
    }

    /// Channels of the concatenated output.
    pub fn out_channels(&self) -> usize {
        self.widths[0]
            + self.branch2.conv.out_channels
            + self.branch3.conv.out_channels
            + self.projection.conv.out_channels
    }

    /// The output shape for `input`: every branch keeps the map's size, or `None`.
    pub fn output(&self, input: Shape) -> Option<Shape> {
        let keeps = |s: Option<Shape>, c: usize| s == Some(input.with_channels(c));
        let reduced = |c: usize| input.with_channels(c);
        let ok = keeps(self.fused.output(input), self.fused.conv.out_channels)
            && keeps(
                self.branch2.output(reduced(self.widths[1])),
                self.branch2.conv.out_channels,
            )
            && keeps(
                self.branch3.output(reduced(self.widths[2])),
                self.branch3.conv.out_channels,
            )
            && self.pool.output(input) == Some(input)
            && keeps(
                self.projection.output(input),
                self.projection.conv.out_channels,
            );
        ok.then(|| input.with_channels(self.out_channels()))
    }

    /// Channel offsets of branches 2, 3 and 4 in the concatenated output.
    fn offsets(&self) -> [usize; 3] {
        let b2 = self.widths[0];
        let b3 = b2 + self.branch2.conv.out_channels;
        [b2, b3, b3 + self.branch3.conv.out_channels]
    }

    /// The module on `x` into `out` (dense, [`Self::output`]'s shape).
    pub fn forward(&mut self, x: &[f32], xs: Shape, out: &mut [f32], scratch: &mut ConvScratch) {
        let p = xs.pixels();
        let [w1, r2, r3] = self.widths;
        let out_c = self.out_channels();
        let [o2, o3, o4] = self.offsets();
        for r in &mut self.reduced {
            grow(r, p * r2.max(r3));
        }
        let [red2, red3] = &mut self.reduced;
        self.fused.forward_split(
            x,
            xs,
            [
                (&mut out[..], Layout::dense(out_c), w1),
                (&mut red2[..p * r2], Layout::dense(r2), r2),
                (&mut red3[..p * r3], Layout::dense(r3), r3),
            ],
            scratch,
        );
        self.branch2.forward(
            &red2[..p * r2],
            xs.with_channels(r2),
            out,
            Layout {
                stride: out_c,
                offset: o2,
            },
            scratch,
        );
        self.branch3.forward(
            &red3[..p * r3],
            xs.with_channels(r3),
            out,
            Layout {
                stride: out_c,
                offset: o3,
            },
            scratch,
        );
        grow(&mut self.pooled, xs.len());
        self.argmax.resize(xs.len(), 0);
        pool::max_forward(
            &self.pool,
            x,
            xs,
            &mut self.pooled[..xs.len()],
            &mut self.argmax,
        );
        self.projection.forward(
            &self.pooled[..xs.len()],
            xs,
            out,
            Layout {
                stride: out_c,
                offset: o4,
            },
            scratch,
        );
    }

    /// Given the gradient `dout` of the output: every parameter's gradient and the gradient of
    /// the input `x` in `dx` (overwritten).
    pub fn backward(
        &mut self,
        x: &[f32],
        xs: Shape,
        dout: &[f32],
        dx: &mut [f32],
        scratch: &mut ConvScratch,
    ) {
        let p = xs.pixels();
        let [w1, r2, r3] = self.widths;
        let out_c = self.out_channels();
        let [o2, o3, o4] = self.offsets();
        grow(&mut self.pooled_grad, xs.len());
        self.projection.backward(
            &self.pooled[..xs.len()],
            xs,
            dout,
            Layout {
                stride: out_c,
                offset: o4,
            },
            Some(&mut self.pooled_grad[..xs.len()]),
            scratch,
        );
        for g in &mut self.reduced_grad {
            grow(g, p * r2.max(r3));
        }
        let [red2, red3] = &self.reduced;
        let [g2, g3] = &mut self.reduced_grad;
        self.branch2.backward(
            &red2[..p * r2],
            xs.with_channels(r2),
            dout,
            Layout {
                stride: out_c,
                offset: o2,
            },
            Some(&mut g2[..p * r2]),
            scratch,
        );
        self.branch3.backward(
            &red3[..p * r3],
            xs.with_channels(r3),
            dout,
            Layout {
                stride: out_c,
                offset: o3,
            },
            Some(&mut g3[..p * r3]),
            scratch,
        );
        self.fused.backward_split(
            x,
            xs,
            [
                (dout, Layout::dense(out_c), w1),
                (&g2[..p * r2], Layout::dense(r2), r2),
                (&g3[..p * r3], Layout::dense(r3), r3),
            ],
            Some(&mut dx[..xs.len()]),
            scratch,
        );
        pool::max_backward(
            &self.pool,
            xs,
            &self.pooled_grad[..xs.len()],
            &self.argmax,
            dx,
            GradientWrite::Accumulate,
        );
    }
}
