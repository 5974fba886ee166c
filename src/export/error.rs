//! What can stop an export, each error naming the layer, size or file concerned.

use std::path::PathBuf;

use crate::model::summary::SummaryError;
use crate::weights::WeightsError;

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
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
    #[error("{0} has no ONNX counterpart in this exporter")]
    Unsupported(String),
    #[error("tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
}
