//! The stem's normalisation as ONNX: the paper's local response normalisation (LRN), or the
//! Keras seed's BatchNorm.

use burn::prelude::*;

use super::{GraphBuilder, Value, parameter};
use crate::export::error::ExportError;
use crate::export::onnx_proto::Attribute;
use crate::model::GoogLeNet;
use crate::model::architecture::STEM_LRN;
use crate::model::batch_norm::BatchNorm;

impl GraphBuilder {
    /// The stem's normalisation: LocalRespNorm (paper), BatchNorm (Keras seed) or nothing.
    pub(super) fn stem_norm(
        &mut self,
        lrn_name: &str,
        bn_name: &str,
        model: &GoogLeNet,
        bn: &Option<BatchNorm>,
        x: Value,
    ) -> Result<Value, ExportError> {
        let name = match (bn, &model.lrn) {
            (Some(bn), _) => {
                let param = |field: &str, t: Tensor<1>| parameter(&format!("{bn_name}.{field}"), t);
                let inputs = [
                    ("weight", param("weight", bn.weight.val())?),
                    ("bias", param("bias", bn.bias.val())?),
                    (
                        "running_mean",
                        param("running_mean", bn.running_mean.value())?,
                    ),
                    ("running_var", param("running_var", bn.running_var.value())?),
                ]
                .map(|(field, values)| {
                    self.initializer(format!("{bn_name}.{field}"), vec![values.len()], values)
                });
                let mut all = vec![x.name.as_str()];
                all.extend(inputs.iter().map(String::as_str));
                self.node(
                    bn_name,
                    bn_name,
                    "BatchNormalization",
                    &all,
                    vec![("epsilon", Attribute::Float(bn.epsilon as f32))],
                )
            }
            (None, Some(_)) => self.node(
                lrn_name,
                lrn_name,
                "LRN",
                &[&x.name],
                vec![
                    ("size", Attribute::Int(STEM_LRN.size as i64)),
                    ("alpha", Attribute::Float(STEM_LRN.alpha as f32)),
                    ("beta", Attribute::Float(STEM_LRN.beta as f32)),
                    ("bias", Attribute::Float(STEM_LRN.k as f32)),
                ],
            ),
            (None, None) => return Ok(x),
        };
        Ok(Value::new(name, x.channels, x.height, x.width))
    }
}
