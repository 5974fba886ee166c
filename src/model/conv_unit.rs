//! Convolution + (BatchNorm) + ReLU: every convolution of GoogLeNet is followed by a ReLU
//! (section 5: "All the convolutions, including those inside the Inception modules, use rectified
//! linear activation"). torchvision calls this unit `BasicConv2d` and puts BatchNorm between the two.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::batch_norm::{BatchNorm, BatchNormStyle};
use super::summary::{LayerRow, SummaryError};
use super::variant::Variant;

/// A convolution followed by an optional BatchNorm and a ReLU: the building block of every layer in
/// Table 1.
#[derive(Module, Debug)]
pub struct ConvUnit {
    /// The convolution.
    pub conv: Conv2d,
    /// BatchNorm after the convolution, in the variants that have it (torchvision's `BasicConv2d`).
    pub bn: Option<BatchNorm>,
}

impl ConvUnit {
    /// A `kernel`x`kernel` convolution with stride `stride`, padded as `variant` pads.
    pub fn new(
        variant: Variant,
        [in_channels, out_channels]: [usize; 2],
        kernel: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let padding = if variant.tf_same_padding() {
            PaddingConfig2d::Same
        } else {
            let p = (kernel - 1) / 2;
            PaddingConfig2d::Explicit(p, p, p, p)
        };
        let with_bn = variant.conv_has_batch_norm();
        let mut conv = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(padding)
            .with_bias(!with_bn)
            .with_initializer(weight_initializer(variant))
            .init(device);
        conv.bias = conv.bias.map(|b| filled(b, bias_init(variant)));
        let bn = with_bn.then(|| BatchNorm::new(out_channels, BatchNormStyle::TORCHVISION, device));
        Self { conv, bn }
    }

    /// Convolution, BatchNorm when present, then ReLU.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.is_pointwise() {
            pointwise(&self.conv, x)
        } else {
            self.conv.forward(x)
        };
        let x = match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        relu(x)
    }

    /// A 1x1 convolution with stride 1 and no padding: most of GoogLeNet's convolutions.
    fn is_pointwise(&self) -> bool {
        let c = &self.conv;
        let unpadded = match c.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => t + l + b + r == 0,
            PaddingConfig2d::Same | PaddingConfig2d::Valid => true,
        };
        c.kernel_size == [1, 1]
            && c.stride == [1, 1]
            && c.dilation == [1, 1]
            && c.groups == 1
            && unpadded
    }

    /// Number of filters of the convolution.
    pub fn out_channels(&self) -> usize {
        self.conv.weight.dims()[0]
    }

    /// Output (channels, height, width) for an input of `[c, h, w]`.
    pub fn output_shape(&self, [_, h, w]: [usize; 3]) -> Option<[usize; 3]> {
        let [k, _] = self.conv.kernel_size;
        let [s, _] = self.conv.stride;
        let side = |n: usize| match self.conv.padding {
            PaddingConfig2d::Same => (n > 0).then(|| n.div_ceil(s)),
            PaddingConfig2d::Explicit(p, ..) => (n + 2 * p).checked_sub(k).map(|r| r / s + 1),
            PaddingConfig2d::Valid => n.checked_sub(k).map(|r| r / s + 1),
        };
        Some([self.out_channels(), side(h)?, side(w)?])
    }

    /// Weights and biases; BatchNorm's affine parameters count as trainable, its running statistics not.
    pub fn trainable_params(&self) -> usize {
        let bias = self.conv.bias.as_ref().map_or(0, |b| b.dims()[0]);
        let bn = self.bn.as_ref().map_or(0, |bn| 2 * bn.channels());
        self.conv.weight.shape().num_elements() + bias + bn
    }

    /// BatchNorm running mean and variance elements (not trainable).
    pub fn running_stats(&self) -> usize {
        self.bn.as_ref().map_or(0, |bn| 2 * bn.channels())
    }

    /// Multiply-adds of the convolution for an output of `[c, h, w]`.
    pub fn macs(&self, [_, h, w]: [usize; 3]) -> usize {
        self.conv.weight.shape().num_elements() * h * w
    }

    /// A summary row for this unit applied to `input`.
    pub fn row(&self, name: &str, input: [usize; 3]) -> Result<LayerRow, SummaryError> {
        let out = self
            .output_shape(input)
            .ok_or_else(|| SummaryError::too_small(name, input))?;
        let [k, _] = self.conv.kernel_size;
        let [s, _] = self.conv.stride;
        Ok(LayerRow {
            name: name.to_string(),
            kind: format!("convolution {k}x{k}/{s}"),
            output_shape: out,
            params: self.trainable_params(),
            running_stats: self.running_stats(),
            weights: self.conv.weight.shape().num_elements(),
            macs: self.macs(out),
        })
    }
}

/// A 1x1 convolution as a batched matrix product, `[out, in] · [in, h·w]` per image: the same
/// result, but a much cheaper backward pass on burn-flex, which computes a convolution's weight
/// gradient as a convolution over the batch axis, for a 1x1 kernel one matrix-vector product per
/// input channel. As a product, both gradients are large matrix products.
fn pointwise(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let out = conv.weight.dims()[0];
    let weight = conv.weight.val().reshape([1, out, c]);
    let y = weight
        .matmul(x.reshape([n, c, h * w]))
        .reshape([n, out, h, w]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, out, 1, 1]),
        None => y,
    }
}

/// Weight initialisation of each reference: Caffe's `xavier` filler of BVLC GoogLeNet
/// (uniform, bound sqrt(3 / fan_in)), torchvision's truncated normal (std 0.01) and Keras'
/// glorot_uniform.
pub fn weight_initializer(variant: Variant) -> Initializer {
    match variant {
        Variant::Paper => Initializer::KaimingUniform {
            gain: 1.0,
            fan_out_only: false,
        },
        Variant::Torchvision => Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        },
        Variant::KerasSeed => Initializer::XavierUniform { gain: 1.0 },
    }
}

/// `param` with every value set to `value`, still trainable: a mapped value is a new tensor,
/// which autodiff would otherwise not track.
pub fn filled(param: Param<Tensor<1>>, value: f32) -> Param<Tensor<1>> {
    param.map(|t| {
        let t = t.zeros_like().add_scalar(value);
        if t.device().is_autodiff() {
            t.require_grad()
        } else {
            t
        }
    })
}

/// Bias initialisation: BVLC GoogLeNet's constant 0.2, zeros elsewhere.
pub fn bias_init(variant: Variant) -> f32 {
    match variant {
        Variant::Paper => 0.2,
        _ => 0.0,
    }
}
