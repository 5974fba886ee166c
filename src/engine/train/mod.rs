//! A CPU training path of our own for GoogLeNet, the paper's variant and torchvision's: the
//! forward pass (torchvision's BatchNorm with batch statistics) with both auxiliary heads, the
//! loss, and the backward pass to every parameter's gradient, handed to burn's optimiser as
//! [`burn::optim::GradientsParams`].
//!
//! Why not burn-flex's autodiff: it runs each operation as written (NCHW, BatchNorm and ReLU as
//! separate passes over memory, a convolution's weight gradient as a convolution over the batch
//! axis). Here activations are NHWC, so every convolution and both of its gradients are large
//! matrix products over pixels (`gemm`); BatchNorm and ReLU are one pass forward and one back;
//! the three 1x1 convolutions that read an inception module's input are one product; branch
//! outputs are written into the concatenated map and their gradients read from it; buffers are
//! kept from one step to the next.

mod aux;
mod avg_pool;
mod bias;
mod conv;
mod dense;
mod gradient_blocks;
mod inception;
mod loss;
mod lrn;
mod net;
mod norm;
mod params;
mod plan;
mod pool;
mod unit;

pub use dense::DropoutSeed;
pub use gradient_blocks::GradientSink;
pub use net::{TrainLosses, TrainNet};

use super::{InferenceError, InputError};

/// Why the fast training path cannot be built or run.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum TrainNetError {
    /// The input is not an RGB batch of its shape.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The number of labels differs from the number of images.
    #[error("{labels} labels for a batch of {batch} images")]
    Labels {
        /// The number of labels given.
        labels: usize,
        /// The number of images in the batch.
        batch: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} is not below the number of classes ({classes})")]
    Label {
        /// The offending label.
        label: usize,
        /// The number of classes the network has.
        classes: usize,
    },
    /// BatchNorm needs at least 2 images per batch to train.
    #[error("training with BatchNorm needs at least 2 images per batch")]
    BatchTooSmall,
    /// The input does not fit the network.
    #[error("an input of {height}x{width} does not fit the network")]
    InputTooSmall {
        /// The input's height in pixels.
        height: usize,
        /// The input's width in pixels.
        width: usize,
    },
    /// The model has a part the fast path does not implement.
    #[error("the fast training path does not support {0}")]
    Unsupported(String),
    /// A weight tensor could not be read.
    #[error("reading a weight tensor: {0}")]
    Weights(String),
}

impl From<InferenceError> for TrainNetError {
    fn from(e: InferenceError) -> Self {
        TrainNetError::Weights(e.to_string())
    }
}
