//! What can go wrong with a weight file, each error naming the file and the first offending key.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a weight file this program reads (.pth/.pt zip or pickle, .safetensors)", .0.display())]
    UnknownFormat(PathBuf),
    #[error("{}: cannot read as {format}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error("{}: tensor {key} has element type {dtype}; weights must be floating point", path.display())]
    DType {
        path: PathBuf,
        key: String,
        dtype: String,
    },
    #[error("{}: {key}: the file has shape {file:?}, the model expects {model:?}", path.display())]
    Shape {
        path: PathBuf,
        key: String,
        file: Vec<usize>,
        model: Vec<usize>,
    },
    #[error("{}: missing key {key} (and {more} more){hint}", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        more: usize,
        hint: String,
    },
    #[error("{}: unexpected key {key} (and {more} more){hint}", path.display())]
    Unexpected {
        path: PathBuf,
        key: String,
        more: usize,
        hint: String,
    },
    #[error("{}: the file holds {file} weights but the model is the {model} variant (use --variant)", path.display())]
    WrongVariant {
        path: PathBuf,
        file: String,
        model: String,
    },
    #[error("{}: bad metadata: {reason}", path.display())]
    Metadata { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
}

impl WeightsError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        WeightsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn corrupt(path: &Path, format: &'static str, reason: impl ToString) -> Self {
        WeightsError::Corrupt {
            path: path.to_path_buf(),
            format,
            reason: reason.to_string(),
        }
    }
}
