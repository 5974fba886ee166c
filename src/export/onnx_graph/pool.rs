//! Pooling layers as ONNX: ceil-mode and 'same' max pools, average and global average pools.

use super::{GraphBuilder, Value, ints};
use crate::export::error::ExportError;
use crate::export::onnx_proto::Attribute;
use crate::model::pool::{Pool, same_padding};

impl GraphBuilder {
    pub(super) fn pool(&mut self, name: &str, pool: &Pool, x: Value) -> Result<Value, ExportError> {
        let too_small = || ExportError::InputSize {
            size: self.input_size,
            source: crate::model::summary::SummaryError::too_small(
                name,
                [x.channels, x.height, x.width],
            ),
        };
        let height = pool.output_size(x.height).ok_or_else(too_small)?;
        let width = pool.output_size(x.width).ok_or_else(too_small)?;
        let (op, attributes) = match *pool {
            Pool::MaxCeil {
                kernel,
                stride,
                padding,
            } => (
                "MaxPool",
                vec![
                    ("kernel_shape", ints([kernel; 2])),
                    ("strides", ints([stride; 2])),
                    ("pads", ints([padding; 4])),
                    ("ceil_mode", Attribute::Int(1)),
                ],
            ),
            Pool::MaxSame { kernel, stride } => {
                let (top, bottom) = same_padding(x.height, kernel, stride);
                let (left, right) = same_padding(x.width, kernel, stride);
                (
                    "MaxPool",
                    vec![
                        ("kernel_shape", ints([kernel; 2])),
                        ("strides", ints([stride; 2])),
                        ("pads", ints([top, left, bottom, right])),
                    ],
                )
            }
            Pool::Avg { kernel, stride } => (
                "AveragePool",
                vec![
                    ("kernel_shape", ints([kernel; 2])),
                    ("strides", ints([stride; 2])),
                    ("count_include_pad", Attribute::Int(0)),
                ],
            ),
            Pool::AdaptiveAvg { size: 1 } => ("GlobalAveragePool", vec![]),
            Pool::AdaptiveAvg { size } => {
                return Err(ExportError::Unsupported(format!(
                    "{name}: adaptive average pool to {size}x{size}"
                )));
            }
        };
        let out = self.node(name, name, op, &[&x.name], attributes);
        Ok(Value::new(out, x.channels, height, width))
    }
}
