//! What can go wrong with a weight file, each error naming the file and the first offending key.

use std::path::{Path, PathBuf};

/// Why a weight file cannot be read, written or loaded into a model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file cannot be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// Neither the extension nor the first bytes say PyTorch or safetensors.
    #[error("{}: not a weight file this program reads (.pth/.pt zip or pickle, .safetensors)", .0.display())]
    UnknownFormat(PathBuf),
    /// The container is damaged or not what its extension says.
    #[error("{}: cannot read as {format}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What it was read as, e.g. `"a PyTorch checkpoint"`.
        format: &'static str,
        /// What the reader found wrong.
        reason: String,
    },
    /// A tensor of an element type weights cannot have.
    #[error("{}: tensor {key} has element type {dtype}; weights must be floating point", path.display())]
    DType {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name in the file.
        key: String,
        /// The element type the file gives it, e.g. `I64`.
        dtype: String,
    },
    /// A tensor whose shape differs from the model's.
    #[error("{}: {key}: the file has shape {file:?}, the model expects {model:?}", path.display())]
    Shape {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name in the file.
        key: String,
        /// The shape the file gives the tensor.
        file: Vec<usize>,
        /// The shape the model's parameter has.
        model: Vec<usize>,
    },
    /// A tensor the model needs is not in the file.
    #[error("{}: missing key {key} (and {more} more){hint}", path.display())]
    Missing {
        /// The file lacking the tensor.
        path: PathBuf,
        /// The first missing tensor's name.
        key: String,
        /// How many other tensors are missing too.
        more: usize,
        /// A likely cause (a wrong variant or layout), or empty; starts with its own separator.
        hint: String,
    },
    /// The file holds a tensor the model does not have.
    #[error("{}: unexpected key {key} (and {more} more){hint}", path.display())]
    Unexpected {
        /// The file holding the extra tensor.
        path: PathBuf,
        /// The first extra tensor's name.
        key: String,
        /// How many other tensors are extra too.
        more: usize,
        /// A likely cause (a wrong variant or layout), or empty; starts with its own separator.
        hint: String,
    },
    /// The file says it holds another variant than the model's.
    #[error("{}: the file holds {file} weights but the model is the {model} variant (use --variant)", path.display())]
    WrongVariant {
        /// The file whose metadata names the variant.
        path: PathBuf,
        /// The variant the file's metadata names.
        file: String,
        /// The variant of the model being loaded.
        model: String,
    },
    /// A native file's metadata cannot be understood.
    #[error("{}: bad metadata: {reason}", path.display())]
    Metadata {
        /// The file with the bad metadata.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A combination of format and layout that does not exist.
    #[error("{0}")]
    Unsupported(String),
}

impl WeightsError {
    /// [`WeightsError::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        WeightsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// [`WeightsError::Corrupt`]: `path` is not readable as `format`.
    pub fn corrupt(path: &Path, format: &'static str, reason: impl ToString) -> Self {
        WeightsError::Corrupt {
            path: path.to_path_buf(),
            format,
            reason: reason.to_string(),
        }
    }
}
