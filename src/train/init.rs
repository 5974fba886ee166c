//! Initial weights for training from scratch.
//!
//! Each variant initialises as its reference does (BVLC's `xavier` filler with bias 0.2 for the
//! paper, torchvision's truncated normal of std 0.01, Keras' glorot_uniform). Without BatchNorm
//! after every convolution, the paper's and the seed's networks then pass almost no signal through
//! 22 layers: at 96 px the paper variant's logits vary across images by 1% of their size, and
//! torchvision's are 1e-13. They train all the same over the millions of steps of an ImageNet run,
//! but not in the few hundred of a small dataset. He initialisation (He et al. 2015,
//! "Delving Deep into Rectifiers": normal, std sqrt(2 / fan_in), zero bias) keeps the
//! activations' scale through the ReLUs, so training starts at once.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::model::GoogLeNet;

/// Which initial weights a run starts from (when no weight file is given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// The variant's reference initialisation.
    Reference,
    /// He normal for every convolution and fully connected layer, zero biases; BatchNorm as is.
    He,
}

impl Init {
    /// The initialisation's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Init::Reference => "reference",
            Init::He => "he",
        }
    }

    /// Applies the initialisation to a freshly built `model` (drawing from the device's RNG).
    pub fn apply(self, model: GoogLeNet) -> GoogLeNet {
        match self {
            Init::Reference => model,
            Init::He => model.map(&mut HeMapper::default()),
        }
    }
}

#[derive(Default)]
struct HeMapper {
    containers: Vec<String>,
}

impl ModuleMapper for HeMapper {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let fan_in = match (self.containers.last().map(String::as_str), D) {
            // burn's Conv2d weight: [out, in, kh, kw].
            (Some("Struct:Conv2d"), 4) => {
                let dims = param.shape();
                dims[1] * dims[2] * dims[3]
            }
            // burn's Linear weight: [in, out].
            (Some("Struct:Linear"), 2) => param.shape()[0],
            (Some("Struct:Conv2d" | "Struct:Linear"), 1) => {
                return param.map(|bias| keep_tracking(&bias, bias.zeros_like()));
            }
            _ => return param,
        };
        let std = (2.0 / fan_in as f64).sqrt();
        param.map(|w| {
            let fresh = Tensor::random(w.shape(), Distribution::Normal(0.0, std), &w.device());
            keep_tracking(&w, fresh)
        })
    }
}

/// `fresh`, tracked for gradients when `old` was (a new tensor on an autodiff device is not).
fn keep_tracking<const D: usize>(old: &Tensor<D>, fresh: Tensor<D>) -> Tensor<D> {
    if old.is_require_grad() {
        fresh.require_grad()
    } else {
        fresh
    }
}
