//! The model the service answers with: loaded once at start-up, as `googlenet classify` loads it
//! (same weights reader, same class names), prepared for `--device` and `--precision`, and what
//! `/v1/model` reports.

use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::Device;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ServeConfig;
use super::network::ServedNetwork;
use crate::data::ClassTable;
use crate::model::Variant;
use crate::model::precision::Precision;

/// The network, its class names and its description.
pub struct LoadedModel {
    /// The inference network.
    pub net: ServedNetwork,
    /// The class names.
    pub classes: ClassTable,
    /// What `/v1/model` reports about it.
    pub info: ModelInfo,
}

/// `GET /v1/model`: what is being served.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    /// The model's name.
    pub name: &'static str,
    /// The variant.
    pub variant: Variant,
    /// Number of classes.
    pub classes: usize,
    /// Side of the square crop the network reads.
    pub input_size: u32,
    /// Default shorter side after resizing (`?resize=` changes it per request).
    pub resize: u32,
    /// torchvision's `transform_input` (on for torchvision's official pretrained weights).
    pub transform_input: bool,
    /// The device the network computes on (`cpu`, `cuda:0`, `wgpu`).
    pub device: String,
    /// The float format of its convolutions and fully connected layers.
    pub precision: Precision,
    /// The weights file it was loaded from.
    pub weights: WeightsInfo,
}

/// The weights file a served model came from.
#[derive(Clone, Debug, Serialize)]
pub struct WeightsInfo {
    /// The file name only: the server's folders are not the client's business.
    pub file: String,
    /// Size of the file.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Loads the weights named by `config` onto its device, in its precision.
pub fn load(config: &ServeConfig) -> Result<LoadedModel> {
    let device = Device::flex();
    let loaded = crate::weights::load_model(
        &config.weights,
        config.variant,
        config.crop as usize,
        &device,
    )?;
    let mut model = loaded.model;
    model.transform_input |= config.transform_input;
    let classes = crate::cli::class_table(
        loaded.class_names.as_deref(),
        config.classes.as_deref(),
        model.num_classes(),
    )?;
    let net = ServedNetwork::new(&model, config.device, config.precision)?;
    let info = ModelInfo {
        name: "GoogLeNet",
        variant: model.variant,
        classes: classes.len(),
        input_size: config.crop,
        resize: config.resize,
        transform_input: model.transform_input,
        device: config.device.to_string(),
        precision: config.precision,
        weights: weights_info(&loaded.path)?,
    };
    Ok(LoadedModel { net, classes, info })
}

fn weights_info(path: &Path) -> Result<WeightsInfo> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("reading {}", path.display()))?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(WeightsInfo {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        sha256,
    })
}
