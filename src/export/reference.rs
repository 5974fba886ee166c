//! A reference for other runtimes: a few images, normalised as the network expects, and the logits
//! this program computes for them. `scripts/check_onnx.py` feeds the same input to onnxruntime and
//! compares.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use super::error::ExportError;
use crate::model::{GoogLeNet, Variant};
use crate::weights::{HostTensor, TensorMap, safetensors_file};

/// The images as one NCHW batch, `(pixel / 255 - mean) / std` with the variant's statistics
/// ([`crate::data::normalize_chw`]). Each image must already be `input_size` x `input_size`: no
/// resizing happens here, so the input is exactly the stored pixels.
pub fn reference_input(
    images: &[PathBuf],
    variant: Variant,
    input_size: usize,
) -> Result<Vec<f32>, ExportError> {
    let plane = input_size * input_size;
    let mut batch = Vec::with_capacity(images.len() * 3 * plane);
    for path in images {
        let image = image::open(path)
            .map_err(|e| ExportError::Image {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .to_rgb8();
        if image.dimensions() != (input_size as u32, input_size as u32) {
            return Err(ExportError::Image {
                path: path.clone(),
                reason: format!(
                    "is {}x{}; reference images must be exactly {input_size}x{input_size} (no resizing is done)",
                    image.width(),
                    image.height()
                ),
            });
        }
        crate::data::normalize_chw(&image, variant, &mut batch);
    }
    Ok(batch)
}

/// Runs `model` on the images and writes a safetensors file with `input` (`[n, 3, size, size]`)
/// and `logits` (`[n, classes]`, f32 whatever the model computes in), atomically. The model runs
/// on its own device and in its own precision (see [`crate::model::precision::apply`]);
/// `computed_on` (e.g. "cuda:0 bf16") is recorded in the file's metadata.
pub fn write_reference(
    model: &GoogLeNet,
    images: &[PathBuf],
    input_size: usize,
    computed_on: &str,
    path: &Path,
) -> Result<(), ExportError> {
    let input = reference_input(images, model.variant, input_size)?;
    let shape = [images.len(), 3, input_size, input_size];
    let weight = model.conv1.conv.weight.val();
    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), shape), &weight.device());
    let logits = model
        .forward(x.cast(weight.dtype()))
        .cast(burn::tensor::FloatDType::F32)
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| ExportError::Tensor {
            name: "logits".into(),
            reason: format!("{e:?}"),
        })?;
    let mut map = TensorMap::new();
    map.insert("input".into(), HostTensor::f32(shape.to_vec(), input));
    map.insert(
        "logits".into(),
        HostTensor::f32(vec![images.len(), model.num_classes()], logits),
    );
    let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    let metadata = [
        ("googlenet.variant", model.variant.to_string()),
        ("googlenet.images", names.join("\n")),
        ("googlenet.computed_on", computed_on.to_string()),
    ];
    safetensors_file::write(path, &map, &metadata)?;
    Ok(())
}
