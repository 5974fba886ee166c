//! The classifier as ONNX: the pooled features flattened (in Keras' (h, w, c) order for
//! keras-seed) and the fully connected layer.

use burn::nn::Linear;

use super::{GraphBuilder, Value, ints, parameter};
use crate::export::error::ExportError;
use crate::export::onnx_proto::Attribute;

impl GraphBuilder {
    /// `[n, c, h, w]` to `[n, c*h*w]`, in (h, w, c) order like Keras when `hwc` is set.
    pub(super) fn flatten(&mut self, x: Value, hwc: bool) -> Value {
        let input = if hwc {
            self.node(
                "flatten/transpose",
                "flatten/transpose",
                "Transpose",
                &[&x.name],
                vec![("perm", ints([0, 2, 3, 1]))],
            )
        } else {
            x.name.clone()
        };
        let out = self.node(
            "flatten",
            "flatten",
            "Flatten",
            &[&input],
            vec![("axis", Attribute::Int(1))],
        );
        Value::new(out, x.channels * x.height * x.width, 1, 1)
    }

    /// A fully connected layer: burn keeps the weight as `[in, out]`, which is Gemm's `B` as is.
    pub(super) fn gemm(
        &mut self,
        layer: &'static str,
        output: &str,
        linear: &Linear,
        x: Value,
    ) -> Result<Value, ExportError> {
        let [inputs, outputs] = linear.weight.dims();
        if x.channels != inputs {
            return Err(ExportError::HeadMismatch {
                size: self.input_size,
                layer,
                features: x.channels,
                expected: inputs,
            });
        }
        let weight_name = format!("{layer}.weight");
        let weight = parameter(&weight_name, linear.weight.val())?;
        let mut names = vec![
            x.name.clone(),
            self.initializer(weight_name, vec![inputs, outputs], weight),
        ];
        if let Some(bias) = &linear.bias {
            let name = format!("{layer}.bias");
            let values = parameter(&name, bias.val())?;
            names.push(self.initializer(name, vec![outputs], values));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = self.node(layer, output, "Gemm", &names, vec![]);
        Ok(Value::new(out, outputs, 1, 1))
    }
}
