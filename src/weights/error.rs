//! What can go wrong with a weight file, each error naming the file and the first offending key.

use std::path::{Path, PathBuf};

/// Why a weight file cannot be read, written or loaded into a model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file cannot be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Neither the extension nor the first bytes say PyTorch or safetensors.
    #[error("{}: not a weight file this program reads (.pth/.pt zip or pickle, .safetensors)", .0.display())]
    UnknownFormat(PathBuf),
    /// The container is damaged or not what its extension says.
    #[error("{}: cannot read as {format}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// A tensor of an element type weights cannot have.
    #[error("{}: tensor {key} has element type {dtype}; weights must be floating point", path.display())]
    DType {
        path: PathBuf,
        key: String,
        dtype: String,
    },
    /// A tensor whose shape differs from the model's.
    #[error("{}: {key}: the file has shape {file:?}, the model expects {model:?}", path.display())]
    Shape {
        path: PathBuf,
        key: String,
        file: Vec<usize>,
        model: Vec<usize>,
    },
    /// A tensor the model needs is not in the file.
    #[error("{}: missing key {key} (and {more} more){hint}", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        more: usize,
        hint: String,
    },
    /// The file holds a tensor the model does not have.
    #[error("{}: unexpected key {key} (and {more} more){hint}", path.display())]
    Unexpected {
        path: PathBuf,
        key: String,
        more: usize,
        hint: String,
    },
    /// The file says it holds another variant than the model's.
    #[error("{}: the file holds {file} weights but the model is the {model} variant (use --variant)", path.display())]
    WrongVariant {
        path: PathBuf,
        file: String,
        model: String,
    },
    /// A native file's metadata cannot be understood.
    #[error("{}: bad metadata: {reason}", path.display())]
    Metadata { path: PathBuf, reason: String },
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
