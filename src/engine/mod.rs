//! The CPU engines of our own, kept apart from the network's definition ([`crate::model`]) the
//! way tract keeps its kernels apart from its graph: they read a
//! [`GoogLeNet`](crate::model::GoogLeNet)'s weights and give the same numbers, planned for speed.
//! [`InferenceNet`] runs inference (this module's files); [`TrainNet`] the training step
//! (`train/`: forward, backward and the gradients for burn's optimiser).
//!
//! Inference: same weights and same logits as `GoogLeNet::forward`.
//!
//! burn-flex runs each layer as written (NCHW, BatchNorm and ReLU as separate passes, each branch
//! of an inception module reading its input on its own, a copy for the concatenation), which is
//! what its extension points allow. Here, at load time, BatchNorm is folded into the convolution
//! weights and bias; activations stay NHWC so that every convolution is a matrix product over
//! pixels with bias and ReLU in its epilogue (on AVX-512, or AVX2 with FMA, our own kernel over weights packed once,
//! `packed.rs`, and 3x3 stride-1 convolutions as Winograd's F(2x2, 3x3), or F(4x4, 3x3) for f32
//! products on larger maps, `winograd/`; elsewhere
//! `gemm`, the crate burn-flex uses); the three 1x1
//! convolutions that read an inception module's input run as one wider product ("horizontal
//! fusion"); every branch writes straight into its channels of the concatenated output; the
//! pool-projection branch pools tile by tile inside its product; and buffers are reused from one
//! call to the next. A call runs on the thread pool, its other threads kept awake between the
//! call's parallel loops (`threads.rs`); at batch 1 the classifier reads its weights on every
//! thread (`matvec.rs`).
//!
//! In bf16 ([`InferenceNet::with_precision`]) the convolutions' products round both operands to
//! bf16 and sum in f32, on AMX tiles where the CPU has them (`bf16.rs`, `amx.rs`), else on
//! AVX512-BF16's dot products (`bf16_dot.rs`), where 3x3 stride-1 convolutions stay on
//! Winograd's path, its transformed operands rounded. BatchNorm is folded in f32 first; the feature maps
//! are bf16, and bias, ReLU and the classifier compute in f32.
//!
//! In int8 ([`InferenceNet::calibrate`] on a few images, then [`InferenceNet::into_int8`]) every
//! convolution reads u8 inputs over the range calibration recorded (`calibrator.rs`) and
//! multiplies i8 weights with one scale per filter in exact i32 sums on AVX512-VNNI (`int8.rs`,
//! `int8_dot.rs`, `int8_conv.rs`). The first convolution quantizes the f32 image; after it the
//! maps are u8, each product's epilogue quantizing relu(scaled sum + bias) for the layer that
//! reads it (`net/int8_maps.rs`; a stem with LocalRespNorm or BatchNorm between its convolutions
//! keeps f32 maps up to the first module); the last module writes f32 for the average pool and
//! the classifier.

mod activation;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx;
mod bf16;
mod bf16_dot;
mod bf16_pack;
mod calibrator;
mod conv;
mod groups;
mod int8;
mod int8_conv;
mod int8_dot;
mod map;
mod matmul;
mod matvec;
mod net;
mod norm;
mod packed;
mod pool;
mod simd;
mod threads;
mod train;
mod transpose;
mod vector;
mod window;
mod winograd;

pub use bf16::Bf16Kernel;
pub use int8::Int8Kernel;
pub use net::InferenceNet;
pub use train::{DropoutSeed, GradientSink, TrainLosses, TrainNet, TrainNetError};

use burn::prelude::*;

/// An NCHW input that neither engine takes.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    /// The input's length does not match its shape.
    #[error("input has {got} values, but shape {shape:?} needs {want}")]
    Length {
        /// The number of values given.
        got: usize,
        /// The number of values the shape needs.
        want: usize,
        /// The shape given, `[batch, channels, height, width]`.
        shape: [usize; 4],
    },
    /// The input does not have 3 channels.
    #[error("the network takes 3 input channels (RGB), got {0}")]
    Channels(usize),
}

/// Checks that `input` is an RGB batch of `shape` `[batch, channels, height, width]`.
fn check_input(input: &[f32], shape: [usize; 4]) -> Result<(), InputError> {
    let [n, c, h, w] = shape;
    if c != 3 {
        return Err(InputError::Channels(c));
    }
    let want = n * c * h * w;
    if input.len() != want {
        return Err(InputError::Length {
            got: input.len(),
            want,
            shape,
        });
    }
    Ok(())
}

/// Why the fast inference path cannot be built or run.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum InferenceError {
    /// The input is not an RGB batch of its shape.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The input is too small for the network.
    #[error("an input of {height}x{width} is too small for the network")]
    InputTooSmall {
        /// The input's height in pixels.
        height: usize,
        /// The input's width in pixels.
        width: usize,
    },
    /// At this input size the final pooling gives another number of features than the
    /// classifier has inputs (1024 at 224x224, table 1).
    #[error(
        "an input of {height}x{width} gives {features} features, the classifier was built for {expected}"
    )]
    FeatureMismatch {
        /// The input's height in pixels.
        height: usize,
        /// The input's width in pixels.
        width: usize,
        /// How many features reach the classifier at that size.
        features: usize,
        /// How many inputs the classifier has.
        expected: usize,
    },
    /// The model has a part the fast path does not implement.
    #[error("the fast inference path does not support {0}")]
    Unsupported(String),
    /// A weight tensor could not be read.
    #[error("reading a weight tensor: {0}")]
    Weights(String),
}

/// The values of a float tensor, as f32.
fn tensor_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, InferenceError> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| InferenceError::Weights(format!("{e:?}")))
}
