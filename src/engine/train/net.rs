//! The training network: GoogLeNet as the paper (Table 1, section 5's auxiliary classifiers) or
//! torchvision (BatchNorm after every convolution) builds it, as a list of stages whose outputs
//! are kept for the backward pass.

use super::super::map::{InputAffine, Shape, grow, to_nhwc};
use super::TrainNetError;
use super::aux::AuxTrain;
use super::conv::ConvScratch;
use super::dense::{Dense, DropoutSeed, dropout, dropout_backward};
use super::gradient_blocks::{GradientSink, NoSink, hand_over};
use super::inception::InceptionTrain;
use super::loss::softmax_cross_entropy;
use super::lrn;
use super::norm::Layout;
use super::pool::{self, GradientWrite, MaxPoolShape};
use super::unit::ConvBn;
use crate::engine::Bf16Kernel;

/// One step of the trunk, from the previous stage's output to its own.
pub(crate) enum Stage {
    Conv(Box<ConvBn>),
    MaxPool(MaxPoolShape, Vec<u32>),
    /// The paper's local response normalisation (after the first pool and after conv3).
    LocalResponse,
    Inception(Box<InceptionTrain>),
}

impl Stage {
    fn output(&self, input: Shape) -> Option<Shape> {
        match self {
            Stage::Conv(unit) => unit.output(input),
            Stage::MaxPool(pool, _) => pool.output(input),
            Stage::LocalResponse => Some(input),
            Stage::Inception(module) => module.output(input),
        }
    }

    fn forward(&mut self, x: &[f32], xs: Shape, y: &mut [f32], scratch: &mut ConvScratch) {
        match self {
            Stage::Conv(unit) => {
                let c = unit.conv.out_channels;
                unit.forward(x, xs, y, Layout::dense(c), scratch);
            }
            Stage::MaxPool(pool, argmax) => {
                argmax.resize(y.len(), 0);
                pool::max_forward(pool, x, xs, y, argmax);
            }
            Stage::LocalResponse => lrn::forward(x, xs, y),
            Stage::Inception(module) => module.forward(x, xs, y, scratch),
        }
    }

    /// `dx` (overwritten) from `dy`; `None` where nothing needs it (the input image).
    fn backward(
        &mut self,
        x: &[f32],
        xs: Shape,
        dy: &[f32],
        dx: Option<&mut [f32]>,
        scratch: &mut ConvScratch,
    ) {
        match self {
            Stage::Conv(unit) => {
                let c = unit.conv.out_channels;
                let layout = Layout::dense(c);
                unit.backward(x, xs, dy, layout, dx, scratch);
            }
            Stage::MaxPool(pool, argmax) => {
                if let Some(dx) = dx {
                    pool::max_backward(pool, xs, dy, argmax, dx, GradientWrite::Overwrite);
                }
            }
            Stage::LocalResponse => {
                let dx = dx.expect("a normalisation is never the first stage");
                lrn::backward(x, xs, dy, dx);
            }
            Stage::Inception(module) => {
                let dx = dx.expect("an inception module is never the first stage");
                module.backward(x, xs, dy, dx, scratch);
            }
        }
    }
}

/// What a training step's forward pass gave: the weighted total loss, each head's loss (main,
/// aux1, aux2) and each head's logits (row-major `[batch, classes]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainLosses {
    /// The recipe's weighted total loss.
    pub total: f64,
    /// Each head's mean loss: main, aux1, aux2.
    pub heads: [Option<f64>; 3],
    /// Each head's logits, row-major `[batch, classes]`.
    pub logits: [Option<Vec<f32>>; 3],
}

/// GoogLeNet (the paper's or torchvision's variant) for training on the CPU: a forward pass (with
/// batch statistics where there is BatchNorm) and the auxiliary heads, the loss, and the backward
/// pass to every parameter's gradient. Built and refreshed from a [`crate::model::GoogLeNet`] by
/// [`TrainNet::from_model`] and [`TrainNet::load_weights`]; the optimiser stays burn's.
pub struct TrainNet {
    /// torchvision's `transform_input` (identity when off), applied while converting to NHWC.
    pub(crate) input_affine: InputAffine,
    pub(crate) stages: Vec<Stage>,
    /// Each auxiliary head with the stage whose output it reads.
    pub(crate) aux: Vec<(usize, AuxTrain)>,
    pub(crate) dropout: f64,
    pub(crate) fc: Dense,
    activations: Vec<Vec<f32>>,
    shapes: Vec<Shape>,
    features: Vec<f32>,
    mask: Vec<f32>,
    logits: Vec<f32>,
    logits_grad: [Vec<f32>; 3],
    grad: [Vec<f32>; 2],
    scratch: ConvScratch,
}

impl TrainNet {
    pub(crate) fn new(
        input_affine: InputAffine,
        stages: Vec<Stage>,
        aux: Vec<(usize, AuxTrain)>,
        dropout: f64,
        fc: Dense,
    ) -> Self {
        Self {
            input_affine,
            activations: (0..=stages.len()).map(|_| Vec::new()).collect(),
            stages,
            aux,
            dropout,
            fc,
            shapes: Vec::new(),
            features: Vec::new(),
            mask: Vec::new(),
            logits: Vec::new(),
            logits_grad: Default::default(),
            grad: Default::default(),
            scratch: ConvScratch::default(),
        }
    }

    /// Runs the convolutions' products (forward, input and weight gradients) in bf16, both
    /// operands rounded to bf16 and the sums kept in f32, as PyTorch's CPU autocast does, on the
    /// kernel [`Bf16Kernel::detect`] picks: AMX tiles, AVX512-BF16's dot products where they
    /// outrun f32 FMAs, else the f32 kernels on the rounded operands. Weights, BatchNorm, pooling,
    /// the classifier and the loss stay f32.
    pub fn with_bf16_products(mut self) -> Self {
        self.scratch = ConvScratch::in_bf16(Bf16Kernel::detect());
        self
    }

    /// [`Self::with_bf16_products`] on `kernel` rather than the one picked for this CPU, or why
    /// it cannot be (the CPU or the OS does not run it).
    pub fn with_bf16_products_on(mut self, kernel: Bf16Kernel) -> Result<Self, TrainNetError> {
        if !kernel.runs_here() {
            return Err(TrainNetError::Unsupported(format!(
                "bf16 products on {}, which this CPU does not run",
                kernel.name()
            )));
        }
        self.scratch = ConvScratch::in_bf16(kernel);
        Ok(self)
    }

    /// Whether the convolutions' products run in bf16 ([`Self::with_bf16_products`]).
    pub fn bf16_products(&self) -> bool {
        self.scratch.bf16()
    }

    /// Number of classes of the main classifier.
    pub fn num_classes(&self) -> usize {
        self.fc.outputs
    }

    /// The shape after every stage for an input of `[n, h, w, 3]`, or why it does not fit.
    fn plan(&self, input: Shape) -> Result<Vec<Shape>, TrainNetError> {
        let too_small = TrainNetError::InputTooSmall {
            height: input.h,
            width: input.w,
        };
        let mut shapes = vec![input];
        for stage in &self.stages {
            let next = stage
                .output(*shapes.last().expect("starts with the input"))
                .ok_or_else(|| too_small.clone())?;
            shapes.push(next);
        }
        for (at, head) in &self.aux {
            head.check(shapes[at + 1])
                .ok_or_else(|| too_small.clone())?;
        }
        let last = shapes.last().expect("at least the input");
        if last.c != self.fc.inputs {
            return Err(too_small);
        }
        Ok(shapes)
    }

    /// One forward and backward pass on `input` (NCHW, `shape` `[batch, 3, h, w]`, normalised as
    /// the variant expects) with `labels`: the loss `main + aux_weight · (aux1 + aux2)` (section 5
    /// of the paper weights the auxiliary losses by 0.3), and every parameter's gradient, read
    /// with [`TrainNet::gradients`]. Dropout masks are drawn from `seed`, image by image. A
    /// non-finite loss is returned without a backward pass.
    pub fn forward_backward(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        labels: &[usize],
        aux_weight: f64,
        seed: DropoutSeed,
    ) -> Result<TrainLosses, TrainNetError> {
        super::super::threads::on_pool(|| {
            self.forward_backward_with(input, shape, labels, aux_weight, seed, &mut NoSink)
        })
    }

    /// [`TrainNet::forward_backward`], telling `sink` the losses after the forward pass (the
    /// backward pass runs only where it agrees) and handing it each gradient block as soon as the
    /// backward pass has finished it.
    pub fn forward_backward_with(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        labels: &[usize],
        aux_weight: f64,
        seed: DropoutSeed,
        sink: &mut dyn GradientSink,
    ) -> Result<TrainLosses, TrainNetError> {
        super::super::check_input(input, shape)?;
        let [n, _, h, w] = shape;
        if labels.len() != n {
            return Err(TrainNetError::Labels {
                labels: labels.len(),
                batch: n,
            });
        }
        let batch_norm = self
            .stages
            .iter()
            .any(|s| matches!(s, Stage::Conv(u) if u.batch_norm));
        if n < 2 && batch_norm {
            return Err(TrainNetError::BatchTooSmall);
        }
        let classes = self.num_classes();
        if let Some(&label) = labels.iter().find(|&&l| l >= classes) {
            return Err(TrainNetError::Label { label, classes });
        }
        self.shapes = self.plan(Shape { n, h, w, c: 3 })?;

        // Forward through the trunk, keeping every stage's output.
        grow(&mut self.activations[0], self.shapes[0].len());
        to_nhwc(
            input,
            self.shapes[0],
            self.input_affine,
            &mut self.activations[0],
        );
        // Dropout layers are numbered 1 and 2 (the auxiliary heads, in order) and 0 (the main one).
        let mut aux_layer = 0;
        for i in 0..self.stages.len() {
            let (xs, ys) = (self.shapes[i], self.shapes[i + 1]);
            let (done, rest) = self.activations.split_at_mut(i + 1);
            grow(&mut rest[0], ys.len());
            self.stages[i].forward(
                &done[i][..xs.len()],
                xs,
                &mut rest[0][..ys.len()],
                &mut self.scratch,
            );
            for (at, head) in &mut self.aux {
                if *at == i {
                    aux_layer += 1;
                    let draw = (seed, aux_layer);
                    head.forward(&rest[0][..ys.len()], ys, draw, &mut self.scratch);
                }
            }
        }

        // The main classifier: global average pool, dropout, FC.
        let last = *self.shapes.last().expect("planned");
        let top = &self.activations[self.stages.len()][..last.len()];
        grow(&mut self.features, n * last.c);
        pool::adaptive_avg_forward(top, last, [1, 1], &mut self.features[..n * last.c]);
        self.features.truncate(n * last.c);
        dropout(
            &mut self.features,
            n,
            self.dropout,
            (seed, 0),
            &mut self.mask,
        );
        self.fc.forward(&self.features, n, &mut self.logits);

        // The loss of each head and its gradient with respect to the logits.
        let mut losses = TrainLosses::default();
        let main =
            softmax_cross_entropy(&self.logits, labels, classes, 1.0, &mut self.logits_grad[0]);
        losses.total = main;
        losses.heads[0] = Some(main);
        losses.logits[0] = Some(self.logits.clone());
        for (k, (_, head)) in self.aux.iter().enumerate() {
            let loss = softmax_cross_entropy(
                &head.logits,
                labels,
                classes,
                aux_weight,
                &mut self.logits_grad[k + 1],
            );
            losses.total += aux_weight * loss;
            losses.heads[k + 1] = Some(loss);
            losses.logits[k + 1] = Some(head.logits.clone());
        }
        let backward = sink.forward_done(&losses);
        if !backward || !losses.total.is_finite() {
            return Ok(losses);
        }

        // Backward: the classifier, then the trunk from the top, adding each auxiliary head's
        // gradient where it branched off.
        let mut features_grad = Vec::new();
        self.fc.backward(
            &self.features,
            n,
            &self.logits_grad[0],
            Some(&mut features_grad),
        );
        hand_over(sink, self.fc.gradient_blocks_mut());
        dropout_backward(&self.mask, &mut features_grad);
        let [mut dy, mut dx] = std::mem::take(&mut self.grad);
        grow(&mut dy, last.len());
        dy[..last.len()].fill(0.0);
        pool::adaptive_avg_backward(last, [1, 1], &features_grad, &mut dy[..last.len()]);
        for i in (0..self.stages.len()).rev() {
            let (xs, ys) = (self.shapes[i], self.shapes[i + 1]);
            for (k, (at, head)) in self.aux.iter_mut().enumerate() {
                if *at == i {
                    head.backward(
                        &self.logits_grad[k + 1],
                        ys,
                        &mut dy[..ys.len()],
                        &mut self.scratch,
                    );
                    hand_over(sink, head.gradient_blocks_mut());
                }
            }
            grow(&mut dx, xs.len());
            let wants_dx = i > 0;
            self.stages[i].backward(
                &self.activations[i][..xs.len()],
                xs,
                &dy[..ys.len()],
                wants_dx.then_some(&mut dx[..xs.len()]),
                &mut self.scratch,
            );
            hand_over(sink, self.stages[i].gradient_blocks_mut());
            std::mem::swap(&mut dy, &mut dx);
        }
        self.grad = [dy, dx];
        Ok(losses)
    }
}
