//! Polyak averaging (section 6 of the paper: "Polyak averaging \[13\] was used to create the final
//! model used at inference time"), as an exponential moving average of every weight and BatchNorm
//! running statistic, the way TensorFlow's `ExponentialMovingAverage` with `num_updates` does it.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::model::GoogLeNet;

/// The averaged model and how many updates it has seen.
#[derive(Clone, Debug)]
pub struct Polyak {
    decay: f64,
    updates: u64,
    model: GoogLeNet,
}

impl Polyak {
    /// Starts the average at `model`'s current weights.
    pub fn new(model: &GoogLeNet, decay: f64) -> Polyak {
        Polyak {
            decay,
            updates: 0,
            model: model.valid(),
        }
    }

    /// Continues an average saved after `updates` updates.
    pub fn resume(model: GoogLeNet, decay: f64, updates: u64) -> Polyak {
        Polyak {
            decay,
            updates,
            model: model.valid(),
        }
    }

    /// The decay of the next update: `min(decay, (1 + n) / (10 + n))` after `n` updates, so that
    /// early weights (far from any optimum) fade quickly even with a decay close to 1.
    pub fn decay_at(decay: f64, updates: u64) -> f64 {
        let n = updates as f64;
        decay.min((1.0 + n) / (10.0 + n))
    }

    /// Folds `current` in: `average = d * average + (1 - d) * current`.
    pub fn update(&mut self, current: &GoogLeNet) {
        let d = Polyak::decay_at(self.decay, self.updates);
        let mut collector = Collector::default();
        current.valid().visit(&mut collector);
        let mut mixer = Mixer {
            current: collector.tensors,
            keep: d,
        };
        self.model = self.model.clone().map(&mut mixer);
        self.updates += 1;
    }

    /// The averaged network.
    pub fn model(&self) -> &GoogLeNet {
        &self.model
    }

    /// Replaces the average by `f` of it (the BatchNorm statistics averaged over the ranks of a
    /// distributed run).
    pub fn map_model(&mut self, f: impl FnOnce(GoogLeNet) -> GoogLeNet) {
        self.model = f(self.model.clone());
    }

    /// Number of updates averaged in so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

/// Every float tensor of a model (parameters and running statistics), flattened, in the order
/// the module tree is walked. The average and the model have the same structure, so the order
/// pairs them; parameter ids would not (a resumed BatchNorm keeps fresh ids for its statistics).
#[derive(Default)]
struct Collector {
    tensors: VecDeque<Tensor<1>>,
}

impl ModuleVisitor for Collector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.tensors.push_back(value.reshape([n]));
    }
}

struct Mixer {
    current: VecDeque<Tensor<1>>,
    keep: f64,
}

impl ModuleMapper for Mixer {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let current = self
            .current
            .pop_front()
            .expect("the average and the model have the same tensors");
        assert_eq!(
            current.shape().num_elements(),
            param.shape().num_elements(),
            "the average and the model have the same tensors"
        );
        let keep = self.keep;
        param.map(|average| {
            let shape = average.shape();
            average
                .mul_scalar(keep)
                .add(current.reshape(shape).mul_scalar(1.0 - keep))
        })
    }
}
