//! A convolution unit in training: torchvision's `BasicConv2d` (convolution without bias,
//! BatchNorm with the batch's statistics, ReLU; forward, backward and the running averages) or
//! the paper's convolution with a bias and ReLU.

use super::super::map::{Shape, grow};
use super::bias;
use super::conv::{self, ConvScratch, ConvShape};
use super::norm::{self, BatchStats, Layout};

/// A convolution followed by BatchNorm and ReLU, with its parameters in the engine's layout and
/// their gradients. Several of torchvision's units that read the same input can be one unit
/// side by side (their filters as one wider matrix, [`super::params`]): BatchNorm works channel by
/// channel, so nothing else changes.
pub(crate) struct ConvBn {
    /// Kernel, stride, padding and channels of the convolution.
    pub conv: ConvShape,
    /// BatchNorm after the convolution (torchvision), or else a bias, held in `beta` with its
    /// gradient in `beta_grad` (the paper: `relu(conv + bias)` is BatchNorm's output with the
    /// normalisation left out and `gamma` = 1).
    pub batch_norm: bool,
    /// `[kernel²·in, out]`, rows over (kernel row, kernel column, input channel).
    pub weight: Vec<f32>,
    /// BatchNorm per-channel scale.
    pub gamma: Vec<f32>,
    /// BatchNorm per-channel shift.
    pub beta: Vec<f32>,
    /// Running average of the batch means.
    pub running_mean: Vec<f32>,
    /// Running average of the batch variances.
    pub running_var: Vec<f32>,
    /// Added to the variance before the square root.
    pub epsilon: f64,
    /// Weight of the batch statistic in the running average (PyTorch's convention).
    pub momentum: f64,
    /// Gradient of the loss with respect to `weight`.
    pub weight_grad: Vec<f32>,
    /// Gradient of the loss with respect to `gamma`.
    pub gamma_grad: Vec<f32>,
    /// Gradient of the loss with respect to `beta`.
    pub beta_grad: Vec<f32>,
    /// The convolution's output of the last forward pass; its gradient after the backward pass.
    raw: Vec<f32>,
    stats: Option<BatchStats>,
}

impl ConvBn {
    /// A unit with zero weights and unit BatchNorm; [`super::params`] fills in a model's values.
    pub fn new(conv: ConvShape, epsilon: f64, momentum: f64) -> Self {
        let c = conv.out_channels;
        Self {
            conv,
            batch_norm: true,
            weight: vec![0.0; conv.weight_len()],
            gamma: vec![1.0; c],
            beta: vec![0.0; c],
            running_mean: vec![0.0; c],
            running_var: vec![1.0; c],
            epsilon,
            momentum,
            weight_grad: vec![0.0; conv.weight_len()],
            gamma_grad: vec![0.0; c],
            beta_grad: vec![0.0; c],
            raw: Vec::new(),
            stats: None,
        }
    }

    /// A unit with a convolution bias instead of BatchNorm (the paper's), zero until loaded.
    pub fn with_bias(conv: ConvShape) -> Self {
        Self {
            batch_norm: false,
            ..Self::new(conv, 0.0, 0.0)
        }
    }

    /// The output shape for `input`, or `None` if it does not fit.
    pub fn output(&self, input: Shape) -> Option<Shape> {
        self.conv.output(input)
    }

    /// Writes `relu(batch_norm(conv(x)))` to `out` at `layout`, keeping what the backward pass
    /// needs, and moves the running statistics (PyTorch's momentum 0.1 rule).
    pub fn forward(
        &mut self,
        x: &[f32],
        xs: Shape,
        out: &mut [f32],
        layout: Layout,
        scratch: &mut ConvScratch,
    ) -> Shape {
        let c = self.conv.out_channels;
        self.forward_split(x, xs, [(out, layout, c)], scratch)
    }

    /// [`Self::forward`] with the output channels written, in order, to several maps
    /// ([`norm::forward_split`]'s parts).
    pub fn forward_split<const N: usize>(
        &mut self,
        x: &[f32],
        xs: Shape,
        parts: [(&mut [f32], Layout, usize); N],
        scratch: &mut ConvScratch,
    ) -> Shape {
        let ys = self.conv.output(xs).expect("shapes are planned");
        grow(&mut self.raw, ys.len());
        let raw = &mut self.raw[..ys.len()];
        conv::forward(&self.conv, x, xs, &self.weight, raw, scratch);
        if !self.batch_norm {
            bias::forward_split(raw, &self.beta, parts);
            return ys;
        }
        let stats = norm::forward_split(raw, ys.c, &self.gamma, &self.beta, self.epsilon, parts);
        norm::update_running(
            &stats,
            self.momentum,
            &mut self.running_mean,
            &mut self.running_var,
        );
        self.stats = Some(stats);
        ys
    }

    /// Given `dy` (the gradient of the forward's output, at its `layout`): every parameter's
    /// gradient and, when `dx` is given, the gradient of `x` (overwritten).
    pub fn backward(
        &mut self,
        x: &[f32],
        xs: Shape,
        dy: &[f32],
        layout: Layout,
        dx: Option<&mut [f32]>,
        scratch: &mut ConvScratch,
    ) {
        let c = self.conv.out_channels;
        self.backward_split(x, xs, [(dy, layout, c)], dx, scratch);
    }

    /// [`Self::backward`] with the output's gradient read, in order, from several maps, as
    /// [`Self::forward_split`] wrote the output ([`norm::backward_split`]'s parts).
    pub fn backward_split<const N: usize>(
        &mut self,
        x: &[f32],
        xs: Shape,
        parts: [(&[f32], Layout, usize); N],
        dx: Option<&mut [f32]>,
        scratch: &mut ConvScratch,
    ) {
        let ys = self.conv.output(xs).expect("shapes are planned");
        let draw = &mut self.raw[..ys.len()];
        if self.batch_norm {
            let stats = self
                .stats
                .take()
                .expect("a forward pass before the backward pass");
            norm::backward_split(
                draw,
                ys.c,
                &self.gamma,
                &stats,
                parts,
                &mut self.gamma_grad,
                &mut self.beta_grad,
            );
        } else {
            bias::backward_split(draw, &self.beta, parts, &mut self.beta_grad);
        }
        conv::backward(
            &self.conv,
            x,
            xs,
            &self.weight,
            draw,
            &mut self.weight_grad,
            dx,
            scratch,
        );
    }
}
