//! What can stop an export, each error naming the layer, size or file concerned.

use std::path::PathBuf;

use crate::model::summary::SummaryError;
use crate::weights::WeightsError;

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The network cannot be built for the input size asked for.
    #[error("cannot export for a {size}x{size} input: {source}")]
    InputSize {
        size: usize,
        #[source]
        source: SummaryError,
    },
    #[error(
        "at a {size}x{size} input the classifier {layer} would read {features} features but it has \
         {expected} inputs: export at the input size the model was built for"
    )]
    HeadMismatch {
        size: usize,
        layer: &'static str,
        features: usize,
        expected: usize,
    },
    /// A part of the model the exporter has no ONNX operator for.
    #[error("{0} has no ONNX counterpart in this exporter")]
    Unsupported(String),
    /// A weight tensor could not be read.
    #[error("tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image could not be read.
    #[error("{}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    /// The weights could not be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}
