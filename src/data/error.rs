//! The one error type of the data pipeline: it always names the file (or folder) and the reason.

use std::path::PathBuf;

/// An error of the data pipeline, naming the file or folder and the reason.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or decoded into an RGB image.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why it cannot be used: the decoder's message, or a limit it exceeds.
        reason: String,
    },
    /// A dataset folder or label file is unusable.
    #[error("{}: {reason}", path.display())]
    Dataset {
        /// The folder or label file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The loader could not turn decoded images into a batch.
    #[error("batch: {0}")]
    Batch(String),
}

impl DataError {
    pub(crate) fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Image {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn dataset(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Dataset {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
