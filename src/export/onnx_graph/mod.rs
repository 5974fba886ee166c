//! GoogLeNet's inference network (main classifier only, as the paper uses it at test time,
//! section 5) written as an ONNX graph, layer for layer what [`GoogLeNet::forward`] computes.
//!
//! - torchvision: every BatchNorm is folded into the convolution before it
//!   (`w * gamma / sqrt(var + eps)`, `beta - mean * gamma / sqrt(var + eps)`), computed in f64.
//! - keras-seed: TensorFlow's asymmetric 'same' padding becomes explicit pads for the exported
//!   input size, and the (h, w, c) flatten order a Transpose before Flatten.
//! - Dropout is the identity at inference and is left out; the auxiliary heads too.

mod classifier;
mod conv;
mod pool;
mod stem_norm;

use burn::prelude::*;

use super::error::ExportError;
use super::onnx_proto::{Attribute, Dim, Initializer, Model, Node, ValueInfo};
use crate::model::GoogLeNet;
use crate::model::googlenet::transform_input_affine;
use crate::model::inception::Inception;

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
}

/// An ONNX integer-list attribute (kernel shapes, strides, pads).
fn ints<const N: usize>(values: [usize; N]) -> Attribute {
    Attribute::Ints(values.iter().map(|&v| v as i64).collect())
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
