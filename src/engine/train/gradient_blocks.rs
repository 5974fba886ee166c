//! Every parameter gradient of a [`TrainNet`] as a list of blocks, in the order the backward
//! pass finishes them (the main classifier first, the stem last), and the [`GradientSink`] that
//! [`TrainNet::forward_backward_with`] hands each block to as soon as it is final. A
//! data-parallel job sums the blocks over its processes in buckets while the backward pass of
//! the layers below still runs, as PyTorch's DistributedDataParallel does.

use super::aux::AuxTrain;
use super::dense::Dense;
use super::inception::InceptionTrain;
use super::net::{Stage, TrainLosses, TrainNet};
use super::unit::ConvBn;

/// Told of a training step's progress by [`TrainNet::forward_backward_with`].
pub trait GradientSink {
    /// After the forward pass, with its losses: whether to run the backward pass (it runs only
    /// where the loss is finite, too).
    fn forward_done(&mut self, losses: &TrainLosses) -> bool;
    /// Gradient blocks that the backward pass has finished, in the order of
    /// [`TrainNet::gradient_blocks_mut`]: over a whole backward pass, every block once.
    fn ready(&mut self, blocks: &[&[f32]]);
}

/// The sink of a step on its own: the backward pass runs wherever the loss is finite.
pub(super) struct NoSink;

impl GradientSink for NoSink {
    fn forward_done(&mut self, _losses: &TrainLosses) -> bool {
        true
    }

    fn ready(&mut self, _blocks: &[&[f32]]) {}
}

/// Hands `blocks` to `sink` as read-only slices.
pub(super) fn hand_over(sink: &mut dyn GradientSink, blocks: Vec<&mut [f32]>) {
    if !blocks.is_empty() {
        let views: Vec<&[f32]> = blocks.into_iter().map(|b| &*b).collect();
        sink.ready(&views);
    }
}

impl TrainNet {
    /// Every parameter gradient, in the order the backward pass finishes them: the main
    /// classifier, then from the top stage down, each auxiliary head before the stage it reads.
    pub fn gradient_blocks_mut(&mut self) -> Vec<&mut [f32]> {
        let mut heads: Vec<(usize, Vec<&mut [f32]>)> = self
            .aux
            .iter_mut()
            .map(|(at, head)| (*at, head.gradient_blocks_mut()))
            .collect();
        let mut stages: Vec<Vec<&mut [f32]>> = self
            .stages
            .iter_mut()
            .map(Stage::gradient_blocks_mut)
            .collect();
        let mut blocks = self.fc.gradient_blocks_mut();
        for i in (0..stages.len()).rev() {
            for (at, head) in &mut heads {
                if *at == i {
                    blocks.append(head);
                }
            }
            blocks.append(&mut stages[i]);
        }
        blocks
    }

    /// Number of gradient values of each block of [`TrainNet::gradient_blocks_mut`].
    pub fn gradient_block_lens(&mut self) -> Vec<usize> {
        self.gradient_blocks_mut().iter().map(|b| b.len()).collect()
    }

    /// Replaces every gradient with `values`, the blocks of [`TrainNet::gradient_blocks_mut`]
    /// one after another (a job's sum over its processes), for [`TrainNet::gradients`] to read.
    ///
    /// # Panics
    /// If `values` does not hold exactly as many values as the blocks.
    pub fn set_gradients(&mut self, values: &[f32]) {
        let mut offset = 0;
        for block in self.gradient_blocks_mut() {
            let len = block.len();
            block.copy_from_slice(&values[offset..offset + len]);
            offset += len;
        }
        assert_eq!(offset, values.len(), "one value per gradient");
    }
}

impl Stage {
    pub(super) fn gradient_blocks_mut(&mut self) -> Vec<&mut [f32]> {
        match self {
            Stage::Conv(unit) => unit.gradient_blocks_mut(),
            Stage::Inception(module) => module.gradient_blocks_mut(),
            Stage::MaxPool(..) | Stage::LocalResponse => Vec::new(),
        }
    }
}

impl InceptionTrain {
    fn gradient_blocks_mut(&mut self) -> Vec<&mut [f32]> {
        let mut blocks = self.fused.gradient_blocks_mut();
        blocks.append(&mut self.branch2.gradient_blocks_mut());
        blocks.append(&mut self.branch3.gradient_blocks_mut());
        blocks.append(&mut self.projection.gradient_blocks_mut());
        blocks
    }
}

impl AuxTrain {
    pub(super) fn gradient_blocks_mut(&mut self) -> Vec<&mut [f32]> {
        let mut blocks = self.conv.gradient_blocks_mut();
        blocks.append(&mut self.fc1.gradient_blocks_mut());
        blocks.append(&mut self.fc2.gradient_blocks_mut());
        blocks
    }
}

impl ConvBn {
    /// The weights' and the shift's gradients, and the scale's where there is BatchNorm (the
    /// paper's units have none: their `gamma` stays 1).
    fn gradient_blocks_mut(&mut self) -> Vec<&mut [f32]> {
        let mut blocks = vec![&mut self.weight_grad[..], &mut self.beta_grad[..]];
        if self.batch_norm {
            blocks.push(&mut self.gamma_grad[..]);
        }
        blocks
    }
}

impl Dense {
    pub(super) fn gradient_blocks_mut(&mut self) -> Vec<&mut [f32]> {
        vec![&mut self.weight_grad[..], &mut self.bias_grad[..]]
    }
}
