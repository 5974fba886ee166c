//! Batch normalisation with the running statistics PyTorch and Keras keep.
//!
//! burn's own `BatchNorm` folds the *biased* batch variance into its running variance; PyTorch
//! uses the unbiased one (n / (n - 1)) and Keras the biased one, so the estimator is a setting here.
//! Parameter names follow PyTorch (`weight`, `bias`, `running_mean`, `running_var`).

use burn::module::{Flag, Param, RunningState};
use burn::prelude::*;

/// How the running statistics are updated, and the epsilon, of one reference framework.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormStyle {
    /// Added to the variance before the square root.
    pub epsilon: f64,
    /// Weight of the batch statistic in the running average (PyTorch's convention).
    pub momentum: f64,
    /// Unbiased (PyTorch) or biased (Keras) batch variance in the running variance.
    pub unbiased_running_var: bool,
}

impl BatchNormStyle {
    /// torchvision's `BasicConv2d`: `BatchNorm2d(eps=0.001)`, PyTorch's momentum 0.1, unbiased variance.
    pub const TORCHVISION: BatchNormStyle = BatchNormStyle {
        epsilon: 1e-3,
        momentum: 0.1,
        unbiased_running_var: true,
    };
    /// Keras' `BatchNormalization()` defaults: epsilon 1e-3, momentum 0.99 (0.01 in PyTorch's
    /// convention), biased variance.
    pub const KERAS: BatchNormStyle = BatchNormStyle {
        epsilon: 1e-3,
        momentum: 0.01,
        unbiased_running_var: false,
    };
}

/// Batch normalisation over the channels of a 4D tensor, keeping running statistics as PyTorch or
/// Keras does.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Per-channel scale (gamma).
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift (beta).
    pub bias: Param<Tensor<1>>,
    /// Running average of the batch means, used at inference.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running average of the batch variances, used at inference.
    pub running_var: RunningState<Tensor<1>>,
    /// Whether forward uses the batch statistics (and updates the running ones) rather than the
    /// running statistics.
    pub training: Param<Flag>,
    /// Added to the variance before the square root.
    pub epsilon: f64,
    /// Weight of the batch statistic in the running average (PyTorch's convention).
    pub momentum: f64,
    /// Unbiased (PyTorch) or biased (Keras) batch variance in the running variance.
    pub unbiased_running_var: bool,
}

impl BatchNorm {
    /// A layer for `channels` channels with scale 1, shift 0, running mean 0 and running variance
    /// 1.
    pub fn new(channels: usize, style: BatchNormStyle, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            training: Param::from_bool(true),
            epsilon: style.epsilon,
            momentum: style.momentum,
            unbiased_running_var: style.unbiased_running_var,
        }
    }

    /// Running mean and variance, including the updates of forward passes so far. (burn's
    /// `RunningState::value` alone returns the value as of the last synchronisation.)
    pub fn running_stats(&self) -> (Tensor<1>, Tensor<1>) {
        (
            self.running_mean.value_sync(),
            self.running_var.value_sync(),
        )
    }

    /// Number of channels the layer normalises.
    pub fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Batch statistics (and a running-statistics update) on an autodiff device in training mode,
    /// running statistics otherwise. Computes in the parameters' precision (f32, see
    /// [`super::precision`]) and returns the input's.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let dtype = input.dtype();
        let compute = self.weight.val().dtype();
        if dtype == compute {
            return self.forward_same_dtype(input);
        }
        let output = self.forward_same_dtype(input.cast(compute));
        output.cast(dtype)
    }

    fn forward_same_dtype(&self, input: Tensor<4>) -> Tensor<4> {
        if !(input.device().is_autodiff() && self.training.is_enabled()) {
            return burn::tensor::module::batch_norm(
                input,
                self.weight.val(),
                self.bias.val(),
                self.running_mean.value(),
                self.running_var.value(),
                self.epsilon,
            );
        }
        let [batch, _, height, width] = input.dims();
        let count = (batch * height * width) as f64;
        let result = burn::tensor::module::batch_norm_train(
            input,
            self.weight.val(),
            self.bias.val(),
            self.epsilon,
        );
        let variance = if self.unbiased_running_var && count > 1.0 {
            result.variance.mul_scalar(count / (count - 1.0))
        } else {
            result.variance
        };
        let device = result.output.device();
        let keep = 1.0 - self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(keep);
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(keep);
        self.running_mean.update(
            mean.add(result.mean.detach().mul_scalar(self.momentum))
                .detach(),
        );
        self.running_var.update(
            var.add(variance.detach().mul_scalar(self.momentum))
                .detach(),
        );
        result.output
    }
}
