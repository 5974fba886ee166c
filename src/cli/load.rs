//! The model `--weights` names, its file read once, and the names of its classes.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::Device;

use crate::data::ClassTable;
use crate::model::{GoogLeNet, Variant};
use crate::weights::{WeightsFile, WeightsSource};

/// A model loaded from `--weights`, with what its file says besides the tensors.
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

/// Names for a model's classes: a names file, else the names its weight file records, else
/// ImageNet's for a 1000-class model, else "class N".
pub fn class_table(
    recorded: Option<&[String]>,
    names_file: Option<&Path>,
    num_classes: usize,
) -> Result<ClassTable> {
    let table = if let Some(file) = names_file {
        ClassTable::from_file(file)?
    } else if let Some(names) = recorded {
        ClassTable::from_folder_names(names)
    } else if num_classes == crate::model::architecture::IMAGENET_CLASSES {
        ClassTable::imagenet()
    } else {
        ClassTable::from_folder_names(
            &(0..num_classes)
                .map(|i| format!("class {i}"))
                .collect::<Vec<_>>(),
        )
    };
    anyhow::ensure!(
        table.len() == num_classes,
        "the model has {num_classes} classes but the class names list {}",
        table.len()
    );
    Ok(table)
}
