//! The network a service runs its batches on: the fast CPU engine for f32 and bf16 on the CPU
//! (the default), or burn's own model on another device (`--device cuda:0`, `wgpu`) or in f16,
//! as `googlenet export --device --precision` computes.

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::FloatDType;
use image::RgbImage;

use crate::data::normalize::normalize_chw;
use crate::device::DeviceSpec;
use crate::engine::InferenceNet;
use crate::eval::average::softmax_rows;
use crate::eval::predict::probabilities;
use crate::model::GoogLeNet;
use crate::model::precision::{self, Precision};

/// One model, ready to classify batches of equally sized, cropped images.
pub enum ServedNetwork {
    /// The fast CPU engine (f32 or bf16).
    Fast(Box<InferenceNet>),
    /// burn's model, its weights in `precision` on its device.
    Burn {
        /// The model, on the device it computes on.
        model: Box<GoogLeNet>,
        /// The float format of its convolutions and fully connected layers.
        precision: Precision,
    },
}

impl ServedNetwork {
    /// `model` (on the CPU) prepared for `device` and `precision`: the fast engine for f32 and
    /// bf16 on the CPU, burn's model moved and converted otherwise. Fails when the device is
    /// absent from this build or cannot compute in `precision`.
    pub fn new(model: &GoogLeNet, device: DeviceSpec, precision: Precision) -> Result<Self> {
        if device == DeviceSpec::Cpu && precision != Precision::F16 {
            return Ok(ServedNetwork::Fast(Box::new(InferenceNet::with_precision(
                model, precision,
            )?)));
        }
        let model = model.clone().to_device(&device.to_device()?);
        Ok(ServedNetwork::Burn {
            model: Box::new(precision::apply(model, precision)?),
            precision,
        })
    }

    /// Softmax of each image, one row of the model's classes per image.
    pub fn probabilities(&self, images: &[RgbImage]) -> Result<Vec<f32>> {
        let (model, precision) = match self {
            ServedNetwork::Fast(net) => return probabilities(net, images),
            ServedNetwork::Burn { model, precision } => (model, *precision),
        };
        let (width, height) = images.first().map_or((0, 0), |i| i.dimensions());
        let mut input = Vec::with_capacity(images.len() * 3 * (width * height) as usize);
        for image in images {
            normalize_chw(image, model.variant, &mut input);
        }
        let shape = [images.len(), 3, height as usize, width as usize];
        let device = model.conv1.conv.weight.device();
        let x = Tensor::<4>::from_data(TensorData::new(input, shape), &device);
        let logits = model
            .forward(precision::cast_input(x, precision))
            .cast(FloatDType::F32)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the logits back: {e:?}"))?;
        Ok(softmax_rows(&logits, model.num_classes())?)
    }
}
