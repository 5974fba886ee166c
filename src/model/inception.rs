//! The Inception module with dimension reductions (Figure 2b of the paper).

use burn::prelude::*;

use super::architecture::InceptionSpec;
use super::conv_unit::ConvUnit;
use super::pool::Pool;
use super::summary::{LayerRow, SummaryError};
use super::variant::Variant;

/// Four branches concatenated on the channel axis in the order 1x1, 3x3, 5x5, pool projection.
/// Field names follow torchvision (`branch2.0` is the 3x3 reduction, `branch2.1` the 3x3).
#[derive(Module, Debug)]
pub struct Inception {
    /// The 1x1 branch.
    pub branch1: ConvUnit,
    /// The 1x1 reduction then the 3x3 convolution.
    pub branch2: Vec<ConvUnit>,
    /// The 1x1 reduction then the 5x5 convolution (3x3 in torchvision).
    pub branch3: Vec<ConvUnit>,
    /// The 1x1 projection after the branch's 3x3/1 max pool (torchvision's `branch4.1`).
    pub branch4: ConvUnit,
    /// The branch's 3x3/1 max pool before the projection (Figure 2b).
    #[module(skip)]
    pub pool: Pool,
}

impl Inception {
    /// The module `spec` of Table 1 for `variant`, freshly initialised.
    pub fn new(variant: Variant, spec: &InceptionSpec, device: &Device) -> Self {
        let unit = |channels, kernel| ConvUnit::new(variant, channels, kernel, 1, device);
        let k5 = variant.branch3_kernel();
        let pool = if variant.tf_same_padding() {
            Pool::MaxSame {
                kernel: 3,
                stride: 1,
            }
        } else {
            Pool::MaxCeil {
                kernel: 3,
                stride: 1,
                padding: 1,
            }
        };
        Self {
            branch1: unit([spec.in_channels, spec.ch1x1], 1),
            branch2: vec![
                unit([spec.in_channels, spec.ch3x3_reduce], 1),
                unit([spec.ch3x3_reduce, spec.ch3x3], 3),
            ],
            branch3: vec![
                unit([spec.in_channels, spec.ch5x5_reduce], 1),
                unit([spec.ch5x5_reduce, spec.ch5x5], k5),
            ],
            branch4: unit([spec.in_channels, spec.pool_proj], 1),
            pool,
        }
    }

    /// The four branches on `x`, concatenated on the channel axis.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let chain = |units: &[ConvUnit], x: Tensor<4>| units.iter().fold(x, |x, u| u.forward(x));
        let b1 = self.branch1.forward(x.clone());
        let b2 = chain(&self.branch2, x.clone());
        let b3 = chain(&self.branch3, x.clone());
        let b4 = self.branch4.forward(self.pool.forward(x));
        Tensor::cat(vec![b1, b2, b3, b4], 1)
    }

    fn units(&self) -> impl Iterator<Item = &ConvUnit> {
        [&self.branch1]
            .into_iter()
            .chain(&self.branch2)
            .chain(&self.branch3)
            .chain([&self.branch4])
    }

    /// Channels of the concatenated output.
    pub fn out_channels(&self) -> usize {
        [
            &self.branch1,
            &self.branch2[1],
            &self.branch3[1],
            &self.branch4,
        ]
        .iter()
        .map(|u| u.out_channels())
        .sum()
    }

    /// One summary row for the whole module (Table 1 gives one row per module).
    pub fn row(&self, name: &str, input: [usize; 3]) -> Result<LayerRow, SummaryError> {
        let [_, h, w] = input;
        let out = [self.out_channels(), h, w];
        if h == 0 || w == 0 {
            return Err(SummaryError::too_small(name, input));
        }
        Ok(LayerRow {
            name: name.to_string(),
            kind: "inception".to_string(),
            output_shape: out,
            params: self.units().map(ConvUnit::trainable_params).sum(),
            running_stats: self.units().map(ConvUnit::running_stats).sum(),
            weights: self
                .units()
                .map(|u| u.conv.weight.shape().num_elements())
                .sum(),
            macs: self.units().map(|u| u.macs([0, h, w])).sum(),
        })
    }
}
