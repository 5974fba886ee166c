//! A convolution unit as ONNX: the convolution with its BatchNorm folded in (torchvision), its
//! padding made explicit for the exported input size (keras-seed's 'same'), and the ReLU.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;

use super::{GraphBuilder, Value, ints, parameter};
use crate::export::error::ExportError;
use crate::export::onnx_proto::Attribute;
use crate::model::batch_norm::BatchNorm;
use crate::model::conv_unit::ConvUnit;
use crate::model::pool::same_padding;

impl GraphBuilder {
    /// Convolution (with its BatchNorm folded in, if any) and ReLU.
    pub(super) fn conv_unit(
        &mut self,
        prefix: &str,
        unit: &ConvUnit,
        x: Value,
    ) -> Result<Value, ExportError> {
        let conv = &unit.conv;
        let weight_name = format!("{prefix}.conv.weight");
        let weight = parameter(&weight_name, conv.weight.val())?;
        let dims = conv.weight.dims().to_vec();
        let out_channels = dims[0];
        let bias = match &conv.bias {
            Some(b) => parameter(&format!("{prefix}.conv.bias"), b.val())?,
            None => vec![0.0; out_channels],
        };
        let (weight, bias, key) = match &unit.bn {
            Some(bn) => {
                let (w, b) = fold_batch_norm(&format!("{prefix}.bn"), bn, &weight, &bias)?;
                (w, b, format!("{prefix}.fused"))
            }
            None => (weight, bias, format!("{prefix}.conv")),
        };
        let weight = self.initializer(format!("{key}.weight"), dims, weight);
        let bias = self.initializer(format!("{key}.bias"), vec![out_channels], bias);

        let [kh, kw] = conv.kernel_size;
        let [sh, sw] = conv.stride;
        let [dh, dw] = conv.dilation;
        let [top, left, bottom, right] = conv_pads(conv, x.height, x.width);
        let side = |n: usize, k: usize, s: usize, d: usize, before: usize, after: usize| {
            (n + before + after)
                .checked_sub(d * (k - 1) + 1)
                .map(|span| span / s + 1)
        };
        let too_small = || ExportError::InputSize {
            size: self.input_size,
            source: crate::model::summary::SummaryError::too_small(
                prefix,
                [x.channels, x.height, x.width],
            ),
        };
        let height = side(x.height, kh, sh, dh, top, bottom).ok_or_else(too_small)?;
        let width = side(x.width, kw, sw, dw, left, right).ok_or_else(too_small)?;
        let conv_out = self.node(
            &format!("{prefix}/conv"),
            &format!("{prefix}/conv"),
            "Conv",
            &[&x.name, &weight, &bias],
            vec![
                ("kernel_shape", ints([kh, kw])),
                ("strides", ints([sh, sw])),
                ("dilations", ints([dh, dw])),
                ("group", Attribute::Int(conv.groups as i64)),
                ("pads", ints([top, left, bottom, right])),
            ],
        );
        let name = self.node(
            &format!("{prefix}/relu"),
            prefix,
            "Relu",
            &[&conv_out],
            vec![],
        );
        Ok(Value::new(name, out_channels, height, width))
    }
}

/// ONNX pads `[top, left, bottom, right]` of a convolution applied to an `h` x `w` input.
fn conv_pads(conv: &Conv2d, height: usize, width: usize) -> [usize; 4] {
    match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => {
            let (top, bottom) = same_padding(height, conv.kernel_size[0], conv.stride[0]);
            let (left, right) = same_padding(width, conv.kernel_size[1], conv.stride[1]);
            [top, left, bottom, right]
        }
    }
}

/// A convolution followed by inference-mode BatchNorm as one convolution:
/// `w' = w * s`, `b' = (b - mean) * s + beta` with `s = gamma / sqrt(var + eps)` per output channel.
fn fold_batch_norm(
    name: &str,
    bn: &BatchNorm,
    weight: &[f32],
    bias: &[f32],
) -> Result<(Vec<f32>, Vec<f32>), ExportError> {
    let gamma = parameter(&format!("{name}.weight"), bn.weight.val())?;
    let beta = parameter(&format!("{name}.bias"), bn.bias.val())?;
    let mean = parameter(&format!("{name}.running_mean"), bn.running_mean.value())?;
    let var = parameter(&format!("{name}.running_var"), bn.running_var.value())?;
    let scale: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(&g, &v)| g as f64 / (v as f64 + bn.epsilon).sqrt())
        .collect();
    let per_channel = weight.len() / scale.len();
    let folded_weight = weight
        .chunks(per_channel)
        .zip(&scale)
        .flat_map(|(w, &s)| w.iter().map(move |&w| (w as f64 * s) as f32))
        .collect();
    let folded_bias = (0..scale.len())
        .map(|c| ((bias[c] as f64 - mean[c] as f64) * scale[c] + beta[c] as f64) as f32)
        .collect();
    Ok((folded_weight, folded_bias))
}
