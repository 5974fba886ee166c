//! Loading and saving weights: PyTorch `.pth` (zip and legacy containers), safetensors in PyTorch
//! or Keras layouts, and the project's own file (safetensors in PyTorch names with the model's
//! configuration in its metadata).
//!
//! Every file passes through a [`TensorMap`] in PyTorch names and layouts
//! ([`torch_names`]), so one validation step reports the first missing, unexpected or misshapen
//! key for every format.

pub mod error;
pub mod keras_names;
pub mod model_tensors;
pub mod pth;
pub mod safetensors_file;
pub mod tensor_map;
pub mod torch_names;
pub mod validate;

use std::path::Path;

pub use error::WeightsError;
pub use tensor_map::{HostTensor, TensorMap};

use crate::model::{GoogLeNet, GoogLeNetConfig, Variant};

/// Key names and tensor layouts of a weight file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// PyTorch names and layouts plus the model's configuration in the metadata (safetensors only).
    Native,
    /// torchvision's state_dict: loads into `torchvision.models.googlenet` with `strict=True`.
    Torchvision,
    /// The Keras seed's layer names and layouts (HWIO kernels, (in, out) dense kernels).
    Keras,
}

/// File containers, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Pth,
    Safetensors,
}

fn container(path: &Path) -> Result<Container, WeightsError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pth" | "pt" | "bin" | "ckpt") => Ok(Container::Pth),
        Some("safetensors") => Ok(Container::Safetensors),
        _ => Err(WeightsError::UnknownFormat(path.to_path_buf())),
    }
}

/// Reads a weight file into PyTorch names and layouts, whatever its container and layout.
pub fn read_torch_layout(path: &Path, variant: Variant) -> Result<TensorMap, WeightsError> {
    let map = match sniff_container(path)? {
        Container::Pth => pth::read(path)?,
        Container::Safetensors => safetensors_file::read(path)?.0,
    };
    if keras_names::is_keras(&map) {
        if variant != Variant::KerasSeed {
            return Err(WeightsError::WrongVariant {
                path: path.to_path_buf(),
                file: "keras-seed (Keras layer names)".into(),
                model: variant.to_string(),
            });
        }
        return keras_names::to_torch(map, path);
    }
    Ok(map)
}

/// The container by content where the extension does not say (safetensors starts with a small
/// little-endian header length and a JSON object; PyTorch files are zip archives or pickles).
fn sniff_container(path: &Path) -> Result<Container, WeightsError> {
    if let Ok(c) = container(path) {
        return Ok(c);
    }
    let mut head = [0u8; 9];
    let n = std::io::Read::read(
        &mut std::fs::File::open(path).map_err(|e| WeightsError::io(path, e))?,
        &mut head,
    )
    .map_err(|e| WeightsError::io(path, e))?;
    match &head[..n] {
        [b'P', b'K', ..] | [0x80, ..] => Ok(Container::Pth),
        [_, _, _, _, _, _, _, _, b'{'] => Ok(Container::Safetensors),
        _ => Err(WeightsError::UnknownFormat(path.to_path_buf())),
    }
}

/// Loads weights from `path` into `model`, checking every key and shape first.
pub fn load(model: GoogLeNet, path: &Path) -> Result<GoogLeNet, WeightsError> {
    if let Some(config) = read_config(path)?
        && config.variant != model.variant
    {
        return Err(WeightsError::WrongVariant {
            path: path.to_path_buf(),
            file: config.variant.to_string(),
            model: model.variant.to_string(),
        });
    }
    let map = read_torch_layout(path, model.variant)?;
    let expected = torch_names::from_burn(model_tensors::collect(&model));
    validate::check(&expected, &map, path)?;
    model_tensors::apply(model, torch_names::to_burn(map), path)
}

/// The configuration stored in a native file, `None` for other files.
pub fn read_config(path: &Path) -> Result<Option<GoogLeNetConfig>, WeightsError> {
    if sniff_container(path)? != Container::Safetensors {
        return Ok(None);
    }
    let metadata = safetensors_file::read_metadata(path)?;
    let Some(variant) = metadata.get("googlenet.variant") else {
        return Ok(None);
    };
    let variant = Variant::from_name(variant).ok_or_else(|| WeightsError::Metadata {
        path: path.to_path_buf(),
        reason: format!("unknown variant {variant:?}"),
    })?;
    let number = |key: &str, default: usize| -> Result<usize, WeightsError> {
        metadata.get(key).map_or(Ok(default), |v| {
            v.parse().map_err(|_| WeightsError::Metadata {
                path: path.to_path_buf(),
                reason: format!("{key} = {v:?} is not a number"),
            })
        })
    };
    Ok(Some(
        GoogLeNetConfig::new(variant)
            .with_num_classes(number("googlenet.num_classes", 1000)?)
            .with_input_size(number("googlenet.input_size", 224)?)
            .with_transform_input(
                metadata
                    .get("googlenet.transform_input")
                    .is_some_and(|v| v == "true"),
            ),
    ))
}

/// The class names a native file records (see [`save_with_classes`]), `None` for other files.
pub fn read_class_names(path: &Path) -> Result<Option<Vec<String>>, WeightsError> {
    if sniff_container(path)? != Container::Safetensors {
        return Ok(None);
    }
    let metadata = safetensors_file::read_metadata(path)?;
    metadata
        .get("googlenet.classes")
        .map(|json| {
            serde_json::from_str(json).map_err(|e| WeightsError::Metadata {
                path: path.to_path_buf(),
                reason: format!("googlenet.classes: {e}"),
            })
        })
        .transpose()
}

/// The number of classes of the main classifier in a weight file.
pub fn num_classes(path: &Path, variant: Variant) -> Result<usize, WeightsError> {
    let map = read_torch_layout(path, variant)?;
    map.get("fc.bias")
        .and_then(|b| b.shape.first().copied())
        .ok_or_else(|| WeightsError::Missing {
            path: path.to_path_buf(),
            key: "fc.bias".into(),
            more: 0,
            hint: "; without the classifier the number of classes is unknown".into(),
        })
}

/// Saves `model` to `path` (`.safetensors` or `.pth`) in `layout`, atomically.
pub fn save(model: &GoogLeNet, path: &Path, layout: Layout) -> Result<(), WeightsError> {
    save_with_classes(model, path, layout, None)
}

/// [`save`], recording the class names in a native file's metadata (`googlenet.classes`, a JSON
/// list) so that `classify` and `eval` can name predictions of a model trained on any dataset.
pub fn save_with_classes(
    model: &GoogLeNet,
    path: &Path,
    layout: Layout,
    classes: Option<&[String]>,
) -> Result<(), WeightsError> {
    let torch = torch_names::from_burn(model_tensors::collect(model));
    let map = match layout {
        Layout::Native | Layout::Torchvision => torch,
        Layout::Keras => keras_names::from_torch(torch, model.variant)?,
    };
    match (container(path)?, layout) {
        (Container::Safetensors, Layout::Native) => {
            let mut metadata = vec![
                ("googlenet.variant", model.variant.to_string()),
                ("googlenet.num_classes", model.num_classes().to_string()),
                ("googlenet.input_size", model.input_size.to_string()),
                (
                    "googlenet.transform_input",
                    model.transform_input.to_string(),
                ),
            ];
            if let Some(names) = classes {
                let json = serde_json::to_string(names).expect("strings serialise");
                metadata.push(("googlenet.classes", json));
            }
            safetensors_file::write(path, &map, &metadata)
        }
        (Container::Safetensors, _) => safetensors_file::write(path, &map, &[]),
        (Container::Pth, Layout::Keras) => Err(WeightsError::Unsupported(
            "Keras-layout weights are written as .safetensors, not .pth".into(),
        )),
        (Container::Pth, _) => pth::write(path, &map),
    }
}
