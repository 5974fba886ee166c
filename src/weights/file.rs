//! One weight file, opened and parsed once: its tensors in PyTorch names and layouts, and what it
//! says about the model (configuration, variant, class names) for every command to read from.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::WeightsError;
use super::tensor_map::TensorMap;
use super::{keras_names, model_tensors, pth, safetensors_file, torch_names, validate};
use crate::model::{GoogLeNet, GoogLeNetConfig, Variant};

/// A parsed weight file: `.pth`/`.pt` (zip or legacy), `.safetensors` in PyTorch or Keras layout,
/// or the project's own file (safetensors with the configuration in its metadata).
///
/// ```no_run
/// use burn::prelude::Device;
/// use googlenet::weights::WeightsFile;
///
/// let file = WeightsFile::open("googlenet.safetensors".as_ref())?;
/// let config = file.model_config(None, 224)?;
/// let model = file.load_into(config.init(&Device::flex())?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WeightsFile {
    path: PathBuf,
    /// Every tensor in PyTorch names and layouts (a Keras file's converted on reading).
    tensors: TensorMap,
    /// The safetensors metadata (empty for PyTorch files).
    metadata: HashMap<String, String>,
    /// The file used the Keras seed's layer names, so it holds keras-seed weights.
    keras: bool,
}

/// File containers: by extension, else by the first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    Pth,
    Safetensors,
}

/// The container an extension names, `None` when it names none.
pub(crate) fn container_of(path: &Path) -> Option<Container> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pth" | "pt" | "bin" | "ckpt") => Some(Container::Pth),
        Some("safetensors") => Some(Container::Safetensors),
        _ => None,
    }
}

impl WeightsFile {
    /// Reads and parses `path`. A safetensors file is opened once; a PyTorch one is read by
    /// `pytorch-reader`, which opens it once to tell zip from legacy and once to read it.
    pub fn open(path: &Path) -> Result<Self, WeightsError> {
        let (tensors, metadata) = match container_of(path) {
            Some(Container::Pth) => (pth::read(path)?, HashMap::new()),
            Some(Container::Safetensors) => {
                let bytes = std::fs::read(path).map_err(|e| WeightsError::io(path, e))?;
                safetensors_file::parse(&bytes, path)?
            }
            None => Self::sniff_and_read(path)?,
        };
        let keras = keras_names::is_keras(&tensors);
        let tensors = if keras {
            keras_names::to_torch(tensors)
        } else {
            tensors
        };
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            metadata,
            keras,
        })
    }

    /// A file whose extension says nothing: safetensors starts with a little-endian header length
    /// and a JSON object, PyTorch files are zip archives or pickles.
    fn sniff_and_read(path: &Path) -> Result<(TensorMap, HashMap<String, String>), WeightsError> {
        let io = |e| WeightsError::io(path, e);
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        (&mut file).take(9).read_to_end(&mut bytes).map_err(io)?;
        match bytes.as_slice() {
            [_, _, _, _, _, _, _, _, b'{'] => {
                file.read_to_end(&mut bytes).map_err(io)?;
                safetensors_file::parse(&bytes, path)
            }
            [b'P', b'K', ..] | [0x80, ..] => Ok((pth::read(path)?, HashMap::new())),
            _ => Err(WeightsError::UnknownFormat(path.to_path_buf())),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor, in PyTorch names and layouts.
    pub fn tensors(&self) -> &TensorMap {
        &self.tensors
    }

    /// The variant the file says it holds: a native file's metadata, or keras-seed for Keras
    /// layer names; `None` for PyTorch-layout files, which do not say.
    pub fn variant(&self) -> Result<Option<Variant>, WeightsError> {
        if let Some(name) = self.metadata.get("googlenet.variant") {
            return Variant::from_name(name)
                .map(Some)
                .ok_or_else(|| self.bad_metadata(format!("unknown variant {name:?}")));
        }
        Ok(self.keras.then_some(Variant::KerasSeed))
    }

    /// The configuration a native file records, `None` for other files.
    pub fn config(&self) -> Result<Option<GoogLeNetConfig>, WeightsError> {
        if !self.metadata.contains_key("googlenet.variant") {
            return Ok(None);
        }
        let variant = self.variant()?.expect("the metadata names a variant");
        let number = |key: &str, default: usize| -> Result<usize, WeightsError> {
            self.metadata.get(key).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| self.bad_metadata(format!("{key} = {v:?} is not a number")))
            })
        };
        Ok(Some(
            GoogLeNetConfig::new(variant)
                .with_num_classes(number("googlenet.num_classes", 1000)?)
                .with_input_size(number("googlenet.input_size", 224)?)
                .with_transform_input(
                    self.metadata
                        .get("googlenet.transform_input")
                        .is_some_and(|v| v == "true"),
                ),
        ))
    }

    /// The class names a native file records (see [`super::save_with_classes`]), `None` for
    /// other files.
    pub fn class_names(&self) -> Result<Option<Vec<String>>, WeightsError> {
        self.metadata
            .get("googlenet.classes")
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| self.bad_metadata(format!("googlenet.classes: {e}")))
            })
            .transpose()
    }

    /// The number of classes of the main classifier (`fc.bias`).
    pub fn num_classes(&self) -> Result<usize, WeightsError> {
        self.tensors
            .get("fc.bias")
            .and_then(|b| b.shape.first().copied())
            .ok_or_else(|| WeightsError::Missing {
                path: self.path.clone(),
                key: "fc.bias".into(),
                more: 0,
                hint: "; without the classifier the number of classes is unknown".into(),
            })
    }

    /// The configuration to build before loading: the file's own (a native file; `variant`, when
    /// given, must agree with it), else `variant` (default: the file's, else paper) with the
    /// file's class count and `input_size`.
    pub fn model_config(
        &self,
        variant: Option<Variant>,
        input_size: usize,
    ) -> Result<GoogLeNetConfig, WeightsError> {
        if let Some(config) = self.config()? {
            if let Some(v) = variant
                && v != config.variant
            {
                return Err(self.wrong_variant(config.variant.to_string(), v));
            }
            return Ok(config);
        }
        let variant = match variant {
            Some(v) => v,
            None => self.variant()?.unwrap_or(Variant::Paper),
        };
        Ok(GoogLeNetConfig::new(variant)
            .with_num_classes(self.num_classes()?)
            .with_input_size(input_size))
    }

    /// Loads the tensors into `model`, checking the variant, every key and every shape first.
    pub fn load_into(&self, model: GoogLeNet) -> Result<GoogLeNet, WeightsError> {
        if let Some(variant) = self.variant()?
            && variant != model.variant
        {
            let file = if self.keras {
                "keras-seed (Keras layer names)".to_string()
            } else {
                variant.to_string()
            };
            return Err(self.wrong_variant(file, model.variant));
        }
        let expected = torch_names::from_burn(model_tensors::collect(&model));
        validate::check(&expected, &self.tensors, &self.path)?;
        model_tensors::apply(
            model,
            torch_names::to_burn(self.tensors.clone()),
            &self.path,
        )
    }

    fn wrong_variant(&self, file: String, model: Variant) -> WeightsError {
        WeightsError::WrongVariant {
            path: self.path.clone(),
            file,
            model: model.to_string(),
        }
    }

    fn bad_metadata(&self, reason: String) -> WeightsError {
        WeightsError::Metadata {
            path: self.path.clone(),
            reason,
        }
    }
}
