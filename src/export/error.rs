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
        /// The side of the square input asked for, in pixels.
        size: usize,
        /// Why the network cannot be built at that size.
        #[source]
        source: SummaryError,
    },
    /// At this input size a classifier would read another number of features than it has inputs.
    #[error(
        "at a {size}x{size} input the classifier {layer} would read {features} features but it has \
         {expected} inputs: export at the input size the model was built for"
    )]
    HeadMismatch {
        /// The side of the square input asked for, in pixels.
        size: usize,
        /// The classifier concerned (`fc`, `aux1.fc1`, ...).
        layer: &'static str,
        /// How many features reach it at that size.
        features: usize,
        /// How many inputs its weights have.
        expected: usize,
    },
    /// A part of the model the exporter has no ONNX operator for.
    #[error("{0} has no ONNX counterpart in this exporter")]
    Unsupported(String),
    /// A weight tensor could not be read.
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// The parameter's name in the model.
        name: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that could not be written.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// An image could not be read.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// The weights could not be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}
