//! Named tensors held in host memory, the common ground of every weight format.

use std::collections::BTreeMap;

/// Element data of a host tensor: f32 for weights, i64 for PyTorch's `num_batches_tracked`.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// 32-bit float elements.
    F32(Vec<f32>),
    /// 64-bit integer elements.
    I64(Vec<i64>),
}

/// A tensor in host memory: its shape and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: HostData,
}

impl HostTensor {
    /// An f32 tensor of `shape` holding `data`.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self {
            shape,
            data: HostData::F32(data),
        }
    }

    /// The f32 elements, or `None` for an integer tensor.
    pub fn values(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            HostData::I64(_) => None,
        }
    }

    /// Reorders the axes: `axes[i]` is the source axis of output axis `i`.
    pub fn permute(&self, axes: &[usize]) -> HostTensor {
        let HostData::F32(src) = &self.data else {
            return self.clone();
        };
        let shape: Vec<usize> = axes.iter().map(|&a| self.shape[a]).collect();
        let mut src_strides = vec![1usize; self.shape.len()];
        for i in (0..self.shape.len().saturating_sub(1)).rev() {
            src_strides[i] = src_strides[i + 1] * self.shape[i + 1];
        }
        let strides: Vec<usize> = axes.iter().map(|&a| src_strides[a]).collect();
        let mut out = Vec::with_capacity(src.len());
        let mut index = vec![0usize; shape.len()];
        for _ in 0..src.len() {
            out.push(
                src[index
                    .iter()
                    .zip(&strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>()],
            );
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        HostTensor::f32(shape, out)
    }
}

/// Tensors by name, sorted.
pub type TensorMap = BTreeMap<String, HostTensor>;
