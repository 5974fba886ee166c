//! An auxiliary classifier (section 5 of the paper, torchvision's `InceptionAux`) in training:
//! average pool to 4x4 (the paper's 5x5/3, torchvision's adaptive), 1x1 convolution with 128
//! filters + ReLU (torchvision: BatchNorm before the ReLU), FC 1024 + ReLU, dropout 0.7, the
//! linear classifier.

use super::super::map::{Shape, grow};
use super::avg_pool::AuxPool;
use super::conv::ConvScratch;
use super::dense::{Dense, DropoutSeed, dropout, dropout_backward, relu, relu_backward};
use super::norm::Layout;
use super::unit::ConvBn;

/// An auxiliary classifier (section 5) for training on the CPU, with its buffers for the backward
/// pass.
pub(crate) struct AuxTrain {
    /// The average pool the head starts with.
    pub pool: AuxPool,
    /// The 1x1 convolution with BatchNorm and ReLU.
    pub conv: ConvBn,
    /// Its rows are in (row, column, channel) order, the order of the engine's NHWC map;
    /// [`super::params`] permutes torchvision's (channel, row, column) rows on the way in and out.
    pub fc1: Dense,
    /// The linear classifier.
    pub fc2: Dense,
    /// Dropout probability before the classifier (70% in the paper, section 5).
    pub dropout: f64,
    pooled: Vec<f32>,
    conv_out: Vec<f32>,
    hidden_relu: Vec<f32>,
    hidden: Vec<f32>,
    mask: Vec<f32>,
    /// Logits of the last forward pass, row-major `[batch, classes]`.
    pub logits: Vec<f32>,
    hidden_grad: Vec<f32>,
    conv_grad: Vec<f32>,
    pooled_grad: Vec<f32>,
}

impl AuxTrain {
    /// A head from its layers, with empty buffers.
    pub fn new(pool: AuxPool, conv: ConvBn, fc1: Dense, fc2: Dense, dropout: f64) -> Self {
        Self {
            pool,
            conv,
            fc1,
            fc2,
            dropout,
            pooled: Vec::new(),
            conv_out: Vec::new(),
            hidden_relu: Vec::new(),
            hidden: Vec::new(),
            mask: Vec::new(),
            logits: Vec::new(),
            hidden_grad: Vec::new(),
            conv_grad: Vec::new(),
            pooled_grad: Vec::new(),
        }
    }

    /// The head's features for a map of `xs`, or `None` if they do not match FC 1's inputs.
    pub fn check(&self, xs: Shape) -> Option<()> {
        let out = self.conv.output(self.pool.output(xs)?)?;
        (out.h * out.w * out.c == self.fc1.inputs).then_some(())
    }

    /// The head on `x` (the output of inception 4a or 4d); the logits end up in `self.logits`.
    /// Its dropout draws from `seed` as dropout layer `layer`.
    pub fn forward(
        &mut self,
        x: &[f32],
        xs: Shape,
        (seed, layer): (DropoutSeed, u64),
        scratch: &mut ConvScratch,
    ) {
        let ps = self.pool.output(xs).expect("checked when planning");
        grow(&mut self.pooled, ps.len());
        self.pool.forward(x, xs, &mut self.pooled[..ps.len()]);
        let cs = self.conv.output(ps).expect("checked when planning");
        grow(&mut self.conv_out, cs.len());
        self.conv.forward(
            &self.pooled[..ps.len()],
            ps,
            &mut self.conv_out[..cs.len()],
            Layout::dense(cs.c),
            scratch,
        );
        self.fc1
            .forward(&self.conv_out[..cs.len()], xs.n, &mut self.hidden_relu);
        relu(&mut self.hidden_relu);
        self.hidden.clone_from(&self.hidden_relu);
        dropout(
            &mut self.hidden,
            xs.n,
            self.dropout,
            (seed, layer),
            &mut self.mask,
        );
        self.fc2.forward(&self.hidden, xs.n, &mut self.logits);
    }

    /// Given the gradient of the logits: every parameter's gradient, and the gradient of the
    /// head's input added to `dx`.
    pub fn backward(
        &mut self,
        logits_grad: &[f32],
        xs: Shape,
        dx: &mut [f32],
        scratch: &mut ConvScratch,
    ) {
        let n = xs.n;
        let ps = self.pool.output(xs).expect("checked when planning");
        let cs = self.conv.output(ps).expect("checked when planning");
        self.fc2
            .backward(&self.hidden, n, logits_grad, Some(&mut self.hidden_grad));
        dropout_backward(&self.mask, &mut self.hidden_grad);
        relu_backward(&self.hidden_relu, &mut self.hidden_grad);
        self.fc1.backward(
            &self.conv_out[..cs.len()],
            n,
            &self.hidden_grad,
            Some(&mut self.conv_grad),
        );
        grow(&mut self.pooled_grad, ps.len());
        self.conv.backward(
            &self.pooled[..ps.len()],
            ps,
            &self.conv_grad[..cs.len()],
            Layout::dense(cs.c),
            Some(&mut self.pooled_grad[..ps.len()]),
            scratch,
        );
        self.pool.backward(xs, &self.pooled_grad[..ps.len()], dx);
    }
}
