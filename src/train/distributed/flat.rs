//! A model's gradients and BatchNorm running statistics as one flat `f32` vector, in the order
//! the module visits its tensors (the same on every rank: it follows the network's structure,
//! not the parameters' ids), so that one all-reduce sums them all.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::model::GoogLeNet;

/// Values of the trainable parameters (those tracked for gradients) of `model`.
pub fn trainable_len(model: &GoogLeNet) -> usize {
    let mut count = Count::default();
    model.visit(&mut count);
    count.trainable
}

/// Trainable parameters of `model`.
pub fn trainable_tensors(model: &GoogLeNet) -> usize {
    let mut count = Count::default();
    model.visit(&mut count);
    count.tensors
}

#[derive(Default)]
struct Count {
    trainable: usize,
    tensors: usize,
}

impl ModuleVisitor for Count {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.is_require_grad() {
            self.trainable += param.shape().num_elements();
            self.tensors += 1;
        }
    }
}

/// Adds `weight` times `grads` into `flat` (of [`trainable_len`] values) and sets
/// `present[i]` to 1 for every trainable tensor `i` that `grads` holds.
pub fn add_gradients(
    model: &GoogLeNet,
    grads: &GradientsParams,
    weight: f32,
    flat: &mut [f32],
    present: &mut [f32],
) {
    let mut adder = Adder {
        grads,
        weight,
        flat,
        present,
        offset: 0,
        index: 0,
    };
    model.visit(&mut adder);
}

struct Adder<'a> {
    grads: &'a GradientsParams,
    weight: f32,
    flat: &'a mut [f32],
    present: &'a mut [f32],
    offset: usize,
    index: usize,
}

impl ModuleVisitor for Adder<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let len = param.shape().num_elements();
        let range = self.offset..self.offset + len;
        self.offset += len;
        self.index += 1;
        let Some(grad) = self.grads.get::<D>(param.id) else {
            return;
        };
        self.present[self.index - 1] = 1.0;
        let values = grad.into_data().convert::<f32>();
        let values = values.as_slice::<f32>().expect("f32 after conversion");
        for (sum, &g) in self.flat[range].iter_mut().zip(values) {
            *sum += self.weight * g;
        }
    }
}

/// The gradients in `flat` as burn's optimiser takes them, for the trainable tensors whose
/// `present` count is above zero (a tensor no rank had a gradient for gets none, as in one
/// process), on the device of `model`'s gradients.
pub fn gradients_from_flat(model: &GoogLeNet, flat: &[f32], present: &[f32]) -> GradientsParams {
    let mut builder = Builder {
        grads: GradientsParams::new(),
        flat,
        present,
        device: model.fc.weight.val().device().inner(),
        offset: 0,
        index: 0,
    };
    model.visit(&mut builder);
    builder.grads
}

struct Builder<'a> {
    grads: GradientsParams,
    flat: &'a [f32],
    present: &'a [f32],
    device: Device,
    offset: usize,
    index: usize,
}

impl ModuleVisitor for Builder<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let shape = param.shape();
        let len = shape.num_elements();
        let values = &self.flat[self.offset..self.offset + len];
        self.offset += len;
        self.index += 1;
        if self.present[self.index - 1] > 0.0 {
            let tensor =
                Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), &self.device);
            self.grads.register(param.id, tensor);
        }
    }
}

/// For every float tensor of `model` in visiting order, whether gradients train it; the others
/// are BatchNorm's running mean and variance. Read from the training model (on the autodiff
/// device); it applies to any model of the same configuration, the Polyak average included.
pub fn trained_mask(model: &GoogLeNet) -> Vec<bool> {
    let mut mask = Mask(Vec::new());
    model.visit(&mut mask);
    mask.0
}

struct Mask(Vec<bool>);

impl ModuleVisitor for Mask {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.is_require_grad());
    }
}

/// The values of the tensors of `model` that `trained` marks untrained (the running
/// statistics), in visiting order. Pending updates of other threads are folded in first.
pub fn running_stats(model: &GoogLeNet, trained: &[bool]) -> Vec<f32> {
    let _ = model.valid();
    let mut reader = StatsReader {
        trained,
        index: 0,
        values: Vec::new(),
    };
    model.visit(&mut reader);
    reader.values
}

struct StatsReader<'a> {
    trained: &'a [bool],
    index: usize,
    values: Vec<f32>,
}

impl ModuleVisitor for StatsReader<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.index += 1;
        if self.trained[self.index - 1] {
            return;
        }
        let values = param.val().into_data().convert::<f32>();
        self.values
            .extend_from_slice(values.as_slice::<f32>().expect("f32 after conversion"));
    }
}

/// `model` with the tensors [`running_stats`] reads replaced by `values`.
pub fn with_running_stats(model: GoogLeNet, trained: &[bool], values: &[f32]) -> GoogLeNet {
    let mut writer = StatsWriter {
        trained,
        index: 0,
        values,
        offset: 0,
    };
    model.map(&mut writer)
}

struct StatsWriter<'a> {
    trained: &'a [bool],
    index: usize,
    values: &'a [f32],
    offset: usize,
}

impl ModuleMapper for StatsWriter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.index += 1;
        if self.trained[self.index - 1] {
            return param;
        }
        let shape = param.shape();
        let len = shape.num_elements();
        let values = self.values[self.offset..self.offset + len].to_vec();
        self.offset += len;
        param.map(|old| Tensor::<D>::from_data(TensorData::new(values, shape), &old.device()))
    }
}
