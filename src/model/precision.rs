//! Reduced precision (bf16, f16) for the convolutions and fully connected layers, with every
//! BatchNorm kept in f32: its scale, shift and running statistics stay f32 and it normalises in f32
//! ([`super::batch_norm::BatchNorm::forward`] casts its input up and its output back), because a
//! running variance underflows in f16 and an average over a batch loses digits in bf16.
//!
//! Two uses:
//! - inference: [`apply`] converts the weights once;
//! - training: the weights stay f32 (the optimizer's "master" copy: an SGD step of 1e-5 on a
//!   weight of 1e-2 vanishes in bf16's 8-bit mantissa), and each step runs on [`autocast`]'s
//!   reduced-precision view of them. The casts are recorded by autodiff, so the gradients arrive
//!   on the f32 weights, in f32. Compute the loss from `logits.cast(FloatDType::F32)`.
//!
//! burn 0.22 has no automatic mixed precision of its own (no autocast, no loss scaling): this
//! module is that, for GoogLeNet. Loss scaling is not needed for bf16 (f32's exponent range); in
//! f16, gradients below 6e-8 flush to zero.

use std::fmt;

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::FloatDType;
use clap::ValueEnum;
use serde::Serialize;

use super::GoogLeNet;

/// The float format the network computes in (BatchNorm excepted, which is always f32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    F32,
    /// bfloat16: f32's range, 8-bit mantissa (about 3 significant digits).
    Bf16,
    /// IEEE half: 5-bit exponent (largest 65504), 11-bit mantissa.
    F16,
}

/// A precision the device cannot compute in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{precision} is not supported on {device}: use --precision f32 there")]
pub struct PrecisionError {
    /// The precision asked for.
    pub precision: Precision,
    /// The device that cannot compute in it.
    pub device: String,
}

impl Precision {
    /// burn's float type for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// The name the CLI uses for this precision (`f32`, `bf16`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// Whether `device` computes in this precision (burn's own report of the backend).
    pub fn check(self, device: &Device) -> Result<(), PrecisionError> {
        if self == Precision::F32 || device.supports_dtype(self.dtype()) {
            Ok(())
        } else {
            Err(PrecisionError {
                precision: self,
                device: format!("{device:?}"),
            })
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// For inference: the same network with every float parameter outside BatchNorm converted to
/// `precision`. Feed it [`cast_input`]'s input; its logits come out in `precision`.
pub fn apply(model: GoogLeNet, precision: Precision) -> Result<GoogLeNet, PrecisionError> {
    precision.check(&model.conv1.conv.weight.device())?;
    Ok(cast_parameters(model, precision))
}

/// For a training step: a view of `model` in `precision` whose casts autodiff records, so that
/// `GradientsParams::from_grads(loss.backward(), model)` finds f32 gradients for `model`'s f32
/// weights (the optimizer steps `model`, not the view). Build it anew for each step, after the
/// optimizer has changed `model`. BatchNorm running statistics updated by the view's forward pass
/// are `model`'s own (the view shares them). With `F32` this is a clone of `model`.
pub fn autocast(model: &GoogLeNet, precision: Precision) -> GoogLeNet {
    cast_parameters(model.clone(), precision)
}

/// The input in the network's precision (images arrive from the loader in f32).
pub fn cast_input(x: Tensor<4>, precision: Precision) -> Tensor<4> {
    x.cast(precision.dtype())
}

fn cast_parameters(model: GoogLeNet, precision: Precision) -> GoogLeNet {
    if precision == Precision::F32 {
        return model;
    }
    model.map(&mut CastOutsideBatchNorm {
        dtype: precision.dtype(),
        parents: Vec::new(),
    })
}

/// Casts float parameters unless the struct that holds them is a BatchNorm.
struct CastOutsideBatchNorm {
    dtype: FloatDType,
    /// The container type of each module entered (burn passes "Struct:Name" of the parent).
    parents: Vec<String>,
}

impl ModuleMapper for CastOutsideBatchNorm {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.parents.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.parents.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.parents.last().is_some_and(|p| p == "Struct:BatchNorm") {
            return param;
        }
        let dtype = self.dtype;
        param.map(|tensor| tensor.cast(dtype))
    }
}
