//! The pooling layers of the three variants and the output sizes they give.

use burn::prelude::*;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

/// A pooling layer, with its padding rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Max pool with PyTorch/Caffe's ceil-mode output size (Caffe rounds pooled sizes up; the paper's
    /// network was trained in DistBelief, whose public re-implementations all do).
    MaxCeil {
        /// The window's side.
        kernel: usize,
        /// The step between windows.
        stride: usize,
        /// Padding added on each side; padded cells never win the max.
        padding: usize,
    },
    /// Max pool with TensorFlow's 'same' padding: output ceil(n / stride), extra padding at the end.
    MaxSame {
        /// The window's side.
        kernel: usize,
        /// The step between windows.
        stride: usize,
    },
    /// Average pool without padding (Keras 'valid').
    Avg {
        /// The window's side.
        kernel: usize,
        /// The step between windows.
        stride: usize,
    },
    /// PyTorch's adaptive average pool to a fixed output size.
    AdaptiveAvg {
        /// The output's side.
        size: usize,
    },
}

impl Pool {
    /// The pool applied to an NCHW tensor.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match *self {
            Pool::MaxCeil {
                kernel,
                stride,
                padding,
            } => max_pool2d(
                x,
                MaxPoolOptions::new([kernel; 2])
                    .with_stride([stride; 2])
                    .with_padding([padding; 2])
                    .with_ceil_mode(true),
            ),
            Pool::MaxSame { kernel, stride } => {
                let [_, _, h, w] = x.dims();
                let pads = [
                    same_padding(h, kernel, stride),
                    same_padding(w, kernel, stride),
                ];
                max_pool2d(
                    x,
                    MaxPoolOptions::new([kernel; 2])
                        .with_stride([stride; 2])
                        .with_padding_pairs(pads),
                )
            }
            Pool::Avg { kernel, stride } => avg_pool2d(
                x,
                AvgPoolOptions::new([kernel; 2])
                    .with_stride([stride; 2])
                    .with_count_include_pad(false),
            ),
            Pool::AdaptiveAvg { size } => adaptive_avg_pool2d(x, [size; 2]),
        }
    }

    /// Output side length for an input side length `n`, or `None` if the input is too small.
    pub fn output_size(&self, n: usize) -> Option<usize> {
        match *self {
            Pool::MaxCeil {
                kernel,
                stride,
                padding,
            } => {
                let span = (n + 2 * padding).checked_sub(kernel)?;
                let mut out = span.div_ceil(stride) + 1;
                // PyTorch: the last window must start inside the input or its left padding.
                if (out - 1) * stride >= n + padding {
                    out -= 1;
                }
                Some(out)
            }
            Pool::MaxSame { stride, .. } => (n > 0).then(|| n.div_ceil(stride)),
            Pool::Avg { kernel, stride } => Some(n.checked_sub(kernel)? / stride + 1),
            Pool::AdaptiveAvg { size } => (n > 0).then_some(size),
        }
    }

    /// How the summary names the layer type, e.g. "max pool 3x3/2".
    pub fn describe(&self) -> String {
        match *self {
            Pool::MaxCeil { kernel, stride, .. } | Pool::MaxSame { kernel, stride } => {
                format!("max pool {kernel}x{kernel}/{stride}")
            }
            Pool::Avg { kernel, stride } => format!("avg pool {kernel}x{kernel}/{stride}"),
            Pool::AdaptiveAvg { size } => format!("adaptive avg pool {size}x{size}"),
        }
    }
}

/// TensorFlow 'same' padding (before, after) for one spatial dimension.
pub fn same_padding(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}
