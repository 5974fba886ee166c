//! A model from a file, URL or pretrained name in one call: resolved (downloaded once into torch's
//! cache), read once, its configuration built and its weights loaded.

use std::path::PathBuf;

use anyhow::Result;
use burn::prelude::Device;

use super::{WeightsFile, WeightsSource};
use crate::model::{GoogLeNet, Variant};

/// A model loaded from a [`WeightsSource`], with what its file says besides the tensors.
pub struct LoadedModel {
    /// The network with the file's weights.
    pub model: GoogLeNet,
    /// The file the weights came from (the cached copy for a name or URL).
    pub path: PathBuf,
    /// The class names a native file records.
    pub class_names: Option<Vec<String>>,
}

/// Resolves `source` (downloading a name or URL into torch's cache when absent), reads its file
/// once, builds the model it describes and loads it. `variant` overrides the one a name implies;
/// the file's own configuration wins over `input_size`.
pub fn load_model(
    source: &WeightsSource,
    variant: Option<Variant>,
    input_size: usize,
    device: &Device,
) -> Result<LoadedModel> {
    let path = source.resolve(true)?;
    let file = WeightsFile::open(&path)?;
    let mut config = file.model_config(variant.or(source.variant()), input_size)?;
    config.transform_input |= source.transform_input();
    let model = file.load_into(config.init(device)?)?;
    Ok(LoadedModel {
        model,
        class_names: file.class_names()?,
        path,
    })
}
