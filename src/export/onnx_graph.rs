//! GoogLeNet's inference network (main classifier only, as the paper uses it at test time,
//! section 5) written as an ONNX graph, layer for layer what [`GoogLeNet::forward`] computes.
//!
//! - torchvision: every BatchNorm is folded into the convolution before it
//!   (`w * gamma / sqrt(var + eps)`, `beta - mean * gamma / sqrt(var + eps)`), computed in f64.
//! - keras-seed: TensorFlow's asymmetric 'same' padding becomes explicit pads for the exported
//!   input size, and the (h, w, c) flatten order a Transpose before Flatten.
//! - Dropout is the identity at inference and is left out; the auxiliary heads too.

use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;

use super::error::ExportError;
use super::onnx_proto::{Attribute, Dim, Initializer, Model, Node, ValueInfo};
use crate::model::GoogLeNet;
use crate::model::architecture::STEM_LRN;
use crate::model::batch_norm::BatchNorm;
use crate::model::conv_unit::ConvUnit;
use crate::model::googlenet::transform_input_affine;
use crate::model::inception::Inception;
use crate::model::pool::{Pool, same_padding};

/// Name of the graph input: `[batch, 3, size, size]`, normalised as the variant expects.
pub const INPUT: &str = "input";
/// Name of the graph output: `[batch, classes]` logits of the main classifier.
pub const OUTPUT: &str = "logits";
/// Name of the free batch dimension of the input and the output.
pub const BATCH: &str = "batch";

/// The ONNX model of `model`'s inference network for a square input of side `input_size`.
pub fn inference_graph(model: &GoogLeNet, input_size: usize) -> Result<Model, ExportError> {
    model
        .check_input(3, input_size, input_size)
        .map_err(|source| ExportError::InputSize {
            size: input_size,
            source,
        })?;
    let mut g = GraphBuilder {
        nodes: Vec::new(),
        initializers: Vec::new(),
        input_size,
    };
    let mut x = Value::new(INPUT.to_string(), 3, input_size, input_size);
    if model.transform_input {
        x = g.transform_input(x);
    }
    x = g.conv_unit("conv1", &model.conv1, x)?;
    x = g.pool("maxpool1", &model.stride2_pool, x)?;
    x = g.stem_norm("norm1", "bn1", model, &model.bn1, x)?;
    x = g.conv_unit("conv2", &model.conv2, x)?;
    x = g.conv_unit("conv3", &model.conv3, x)?;
    x = g.stem_norm("norm2", "bn2", model, &model.bn2, x)?;
    x = g.pool("maxpool2", &model.stride2_pool, x)?;
    for (name, module) in model.inceptions() {
        match name {
            "inception4a" => x = g.pool("maxpool3", &model.stride2_pool, x)?,
            "inception5a" => x = g.pool("maxpool4", &model.pool4, x)?,
            _ => {}
        }
        x = g.inception(name, module, x)?;
    }
    x = g.pool("avgpool", &model.main_pool, x)?;
    x = g.flatten(x, model.flatten_hwc);
    if let Some(fc) = &model.fc_bottleneck {
        x = g.gemm("fc_bottleneck", "fc_bottleneck", fc, x)?;
    }
    g.gemm("fc", OUTPUT, &model.fc, x)?;

    let (mean, std) = model.variant.normalization();
    let mut metadata = vec![
        ("googlenet.variant".to_string(), model.variant.to_string()),
        ("googlenet.input_size".to_string(), input_size.to_string()),
        (
            "googlenet.num_classes".to_string(),
            model.num_classes().to_string(),
        ),
        (
            "googlenet.input".to_string(),
            format!(
                "NCHW RGB, (pixel / 255 - mean) / std with mean {mean:?} and std {std:?}{}",
                if model.transform_input {
                    " (the graph then applies torchvision's transform_input)"
                } else {
                    ""
                }
            ),
        ),
    ];
    if model.variant.conv_has_batch_norm() {
        metadata.push((
            "googlenet.batch_norm".to_string(),
            "folded into the preceding convolutions".to_string(),
        ));
    }
    Ok(Model {
        graph_name: format!("googlenet_{}", model.variant.name().replace('-', "_")),
        doc: format!(
            "GoogLeNet (Inception v1), {} variant: main classifier logits, no softmax",
            model.variant
        ),
        nodes: g.nodes,
        initializers: g.initializers,
        inputs: vec![ValueInfo {
            name: INPUT.to_string(),
            dims: vec![
                Dim::Named(BATCH),
                Dim::Fixed(3),
                Dim::Fixed(input_size),
                Dim::Fixed(input_size),
            ],
        }],
        outputs: vec![ValueInfo {
            name: OUTPUT.to_string(),
            dims: vec![Dim::Named(BATCH), Dim::Fixed(model.num_classes())],
        }],
        metadata,
    })
}

/// A tensor of the graph with its shape (batch left out).
#[derive(Clone, Debug)]
struct Value {
    name: String,
    channels: usize,
    height: usize,
    width: usize,
}

impl Value {
    fn new(name: String, channels: usize, height: usize, width: usize) -> Value {
        Value {
            name,
            channels,
            height,
            width,
        }
    }
}

struct GraphBuilder {
    nodes: Vec<Node>,
    initializers: Vec<Initializer>,
    input_size: usize,
}

impl GraphBuilder {
    /// Adds a node whose single output is named `output`.
    fn node(
        &mut self,
        name: &str,
        output: &str,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, Attribute)>,
    ) -> String {
        self.nodes.push(Node {
            name: name.to_string(),
            op_type,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
            attributes,
        });
        output.to_string()
    }

    fn initializer(&mut self, name: String, dims: Vec<usize>, values: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.initializers.push(Initializer {
            name: name.clone(),
            dims,
            values,
        });
        name
    }

    /// torchvision's `transform_input`: `x * scale + shift` per channel.
    fn transform_input(&mut self, x: Value) -> Value {
        let (scale, shift) = transform_input_affine();
        let scale = self.initializer(
            "transform_input.scale".into(),
            vec![1, 3, 1, 1],
            scale.to_vec(),
        );
        let shift = self.initializer(
            "transform_input.shift".into(),
            vec![1, 3, 1, 1],
            shift.to_vec(),
        );
        let scaled = self.node(
            "transform_input/mul",
            "transform_input/mul",
            "Mul",
            &[&x.name, &scale],
            vec![],
        );
        let name = self.node(
            "transform_input/add",
            "transform_input",
            "Add",
            &[&scaled, &shift],
            vec![],
        );
        Value::new(name, x.channels, x.height, x.width)
    }

    /// Convolution (with its BatchNorm folded in, if any) and ReLU.
    fn conv_unit(&mut self, prefix: &str, unit: &ConvUnit, x: Value) -> Result<Value, ExportError> {
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

    fn pool(&mut self, name: &str, pool: &Pool, x: Value) -> Result<Value, ExportError> {
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

    /// The stem's normalisation: LocalRespNorm (paper), BatchNorm (Keras seed) or nothing.
    fn stem_norm(
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

    /// The four branches of Figure 2b concatenated on the channel axis.
    fn inception(
        &mut self,
        name: &str,
        module: &Inception,
        x: Value,
    ) -> Result<Value, ExportError> {
        let b1 = self.conv_unit(&format!("{name}.branch1"), &module.branch1, x.clone())?;
        let mut b2 = x.clone();
        for (i, unit) in module.branch2.iter().enumerate() {
            b2 = self.conv_unit(&format!("{name}.branch2.{i}"), unit, b2)?;
        }
        let mut b3 = x.clone();
        for (i, unit) in module.branch3.iter().enumerate() {
            b3 = self.conv_unit(&format!("{name}.branch3.{i}"), unit, b3)?;
        }
        let pooled = self.pool(&format!("{name}.branch4.0"), &module.pool, x)?;
        let b4 = self.conv_unit(&format!("{name}.branch4.1"), &module.branch4, pooled)?;
        let channels = b1.channels + b2.channels + b3.channels + b4.channels;
        let out = self.node(
            &format!("{name}/concat"),
            name,
            "Concat",
            &[&b1.name, &b2.name, &b3.name, &b4.name],
            vec![("axis", Attribute::Int(1))],
        );
        Ok(Value::new(out, channels, b1.height, b1.width))
    }

    /// `[n, c, h, w]` to `[n, c*h*w]`, in (h, w, c) order like Keras when `hwc` is set.
    fn flatten(&mut self, x: Value, hwc: bool) -> Value {
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
    fn gemm(
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

fn ints<const N: usize>(values: [usize; N]) -> Attribute {
    Attribute::Ints(values.iter().map(|&v| v as i64).collect())
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

/// The values of a float parameter, row-major.
fn parameter<const D: usize>(name: &str, tensor: Tensor<D>) -> Result<Vec<f32>, ExportError> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| ExportError::Tensor {
            name: name.to_string(),
            reason: format!("{e:?}"),
        })
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
