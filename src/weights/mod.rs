//! Loading and saving weights: PyTorch `.pth` (zip and legacy containers), safetensors in PyTorch
//! or Keras layouts, and the project's own file (safetensors in PyTorch names with the model's
//! configuration in its metadata); pretrained weights by name or URL, cached where torch keeps
//! them ([`pretrained`], [`download`]).
//!
//! A file is read once into a [`WeightsFile`]: its tensors pass through a [`TensorMap`] in PyTorch
//! names and layouts ([`torch_names`]), so one validation step reports the first missing,
//! unexpected or misshapen key for every format, and its configuration, variant and class names
//! come from the same read.

pub mod download;
pub mod error;
pub mod file;
pub mod keras_names;
pub mod load;
pub mod model_tensors;
pub mod pretrained;
pub mod pth;
pub mod safetensors_file;
pub mod tensor_map;
pub mod torch_names;
pub mod validate;

use std::path::Path;

pub use error::WeightsError;
pub use file::WeightsFile;
pub use load::{LoadedModel, load_model};
pub use pretrained::{Pretrained, WeightsSource};
pub use tensor_map::{HostTensor, TensorMap};

use crate::model::GoogLeNet;
use file::{Container, container_of};

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

/// Loads weights from `path` into `model`, checking every key and shape first (see
/// [`WeightsFile`] to read the file's configuration and class names from the same read).
pub fn load(model: GoogLeNet, path: &Path) -> Result<GoogLeNet, WeightsError> {
    WeightsFile::open(path)?.load_into(model)
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
    let container = container_of(path).ok_or_else(|| WeightsError::UnknownFormat(path.into()))?;
    match (container, layout) {
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
