//! The auxiliary classifiers attached to inception 4a and 4d (section 5 of the paper).
//!
//! Paper: average pool 5x5/3, 1x1 convolution with 128 filters + ReLU, FC 1024 + ReLU, dropout 70%,
//! linear classifier. torchvision pools adaptively to 4x4 instead; the Keras seed uses Dense 256
//! and dropout 40%, and flattens in (h, w, c) order.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::architecture::AUX_CONV_CHANNELS;
use super::conv_unit::{ConvUnit, bias_init, filled, weight_initializer};
use super::pool::Pool;
use super::summary::{LayerRow, SummaryError};
use super::variant::Variant;

/// One auxiliary classifier (section 5): pool, 1x1 convolution, two fully connected layers with
/// dropout between them.
#[derive(Module, Debug)]
pub struct AuxHead {
    /// The 1x1 convolution with 128 filters and ReLU (section 5).
    pub conv: ConvUnit,
    /// The hidden fully connected layer: 1024 units in the paper (section 5), 256 in the Keras
    /// seed.
    pub fc1: Linear,
    /// The linear classifier over the classes.
    pub fc2: Linear,
    /// Dropout before the classifier: 70% in the paper (section 5), 40% in the Keras seed.
    pub dropout: Dropout,
    /// The average pool the head starts with: 5x5/3 in the paper (section 5), adaptive 4x4 in
    /// torchvision.
    #[module(skip)]
    pub pool: Pool,
    /// Flatten (h, w, c) like Keras' `Flatten` on NHWC tensors instead of (c, h, w).
    pub flatten_hwc: bool,
}

impl AuxHead {
    /// `input_side` is the side of the feature map the head reads (14 for a 224 input).
    pub fn new(
        variant: Variant,
        in_channels: usize,
        input_side: usize,
        num_classes: usize,
        device: &Device,
    ) -> Result<Self, SummaryError> {
        let pool = match variant {
            Variant::Torchvision => Pool::AdaptiveAvg { size: 4 },
            _ => Pool::Avg {
                kernel: 5,
                stride: 3,
            },
        };
        let side = pool.output_size(input_side).ok_or_else(|| {
            SummaryError::too_small("aux pool", [in_channels, input_side, input_side])
        })?;
        let hidden = variant.aux_hidden();
        Ok(Self {
            conv: ConvUnit::new(variant, [in_channels, AUX_CONV_CHANNELS], 1, 1, device),
            fc1: linear(variant, AUX_CONV_CHANNELS * side * side, hidden, device),
            fc2: linear(variant, hidden, num_classes, device),
            dropout: DropoutConfig::new(variant.aux_dropout()).init(),
            pool,
            flatten_hwc: variant.tf_same_padding(),
        })
    }

    /// Class logits of the head for the feature map `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv.forward(self.pool.forward(x));
        let x = flatten(x, self.flatten_hwc);
        let x = self.dropout.forward(relu(self.fc1.forward(x)));
        self.fc2.forward(x)
    }

    /// Summary rows: pool, conv, fc1, fc2.
    pub fn rows(&self, name: &str, input: [usize; 3]) -> Result<Vec<LayerRow>, SummaryError> {
        let [c, h, w] = input;
        let too_small = || SummaryError::too_small(name, input);
        let pooled = [
            c,
            self.pool.output_size(h).ok_or_else(too_small)?,
            self.pool.output_size(w).ok_or_else(too_small)?,
        ];
        let conv = self.conv.row(&format!("{name}.conv"), pooled)?;
        let fc1 = linear_row(&format!("{name}.fc1"), &self.fc1);
        let fc2 = linear_row(&format!("{name}.fc2"), &self.fc2);
        let pool = LayerRow::no_params(&format!("{name}.pool"), self.pool.describe(), pooled);
        Ok(vec![pool, conv, fc1, fc2])
    }
}

/// A fully connected layer initialised as the variant's reference initialises it.
pub fn linear(variant: Variant, inputs: usize, outputs: usize, device: &Device) -> Linear {
    let mut layer = LinearConfig::new(inputs, outputs)
        .with_initializer(weight_initializer(variant))
        .init(device);
    layer.bias = layer.bias.map(|b| filled(b, bias_init(variant)));
    layer
}

/// Flattens `[n, c, h, w]` to `[n, c*h*w]`, in (h, w, c) order when `hwc` is set.
pub fn flatten(x: Tensor<4>, hwc: bool) -> Tensor<2> {
    let x = if hwc { x.permute([0, 2, 3, 1]) } else { x };
    x.flatten(1, 3)
}

/// Summary row of a fully connected layer.
pub fn linear_row(name: &str, layer: &Linear) -> LayerRow {
    let [inputs, outputs] = layer.weight.dims();
    let bias = layer.bias.as_ref().map_or(0, |b| b.dims()[0]);
    LayerRow {
        name: name.to_string(),
        kind: "linear".to_string(),
        output_shape: [outputs, 1, 1],
        params: inputs * outputs + bias,
        running_stats: 0,
        weights: inputs * outputs,
        macs: inputs * outputs,
    }
}
