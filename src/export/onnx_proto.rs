//! The few ONNX messages an inference graph needs, with the field numbers of `onnx.proto`
//! (ONNX 1.12+, IR version 8, the IR of opset 17).

use super::protobuf::Message;

/// IR version 8 goes with opset 17 (ONNX 1.12).
pub const IR_VERSION: i64 = 8;
/// The default (`ai.onnx`) operator set the graph is written against.
pub const OPSET: i64 = 17;

/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;

/// An operator attribute (`AttributeProto`).
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    /// An integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A float.
    Float(f32),
}

impl Attribute {
    fn encode(&self, name: &str) -> Message {
        // AttributeProto: name = 1, f = 2, i = 3, ints = 8, type = 20
        // (AttributeType FLOAT = 1, INT = 2, INTS = 7).
        let m = Message::new().string(1, name);
        match self {
            Attribute::Float(f) => m.float(2, *f).int(20, 1),
            Attribute::Int(i) => m.int(3, *i).int(20, 2),
            Attribute::Ints(values) => values.iter().fold(m, |m, &v| m.int(8, v)).int(20, 7),
        }
    }
}

/// One operator application (`NodeProto`).
#[derive(Clone, Debug)]
pub struct Node {
    /// Unique node name.
    pub name: String,
    /// ONNX operator, such as `Conv` or `Concat`.
    pub op_type: &'static str,
    /// Names of the input values.
    pub inputs: Vec<String>,
    /// Names of the output values.
    pub outputs: Vec<String>,
    /// The operator's attributes by name.
    pub attributes: Vec<(&'static str, Attribute)>,
}

impl Node {
    fn encode(&self) -> Message {
        // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
        let m = self
            .inputs
            .iter()
            .fold(Message::new(), |m, i| m.string(1, i));
        let m = self.outputs.iter().fold(m, |m, o| m.string(2, o));
        let attributes: Vec<Message> = self
            .attributes
            .iter()
            .map(|(name, a)| a.encode(name))
            .collect();
        m.string(3, &self.name)
            .string(4, self.op_type)
            .messages(5, &attributes)
    }
}

/// A float32 constant (`TensorProto` with `raw_data`, little-endian).
#[derive(Clone, Debug)]
pub struct Initializer {
    /// Name the nodes refer to it by.
    pub name: String,
    /// Shape.
    pub dims: Vec<usize>,
    /// Elements, row-major.
    pub values: Vec<f32>,
}

impl Initializer {
    fn encode(&self) -> Message {
        // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9.
        let raw: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.dims
            .iter()
            .fold(Message::new(), |m, &d| m.int(1, d as i64))
            .int(2, FLOAT)
            .string(8, &self.name)
            .bytes(9, &raw)
    }
}

/// One axis of a graph input or output: a fixed size or a named, free one (`dim_param`).
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    /// An axis of this size.
    Fixed(usize),
    /// A free axis, named (such as the batch axis).
    Named(&'static str),
}

/// A float32 graph input or output (`ValueInfoProto`).
#[derive(Clone, Debug)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// Shape, one entry per axis.
    pub dims: Vec<Dim>,
}

impl ValueInfo {
    fn encode(&self) -> Message {
        // TensorShapeProto.Dimension: dim_value = 1, dim_param = 2; TensorShapeProto: dim = 1;
        // TypeProto.Tensor: elem_type = 1, shape = 2; TypeProto: tensor_type = 1;
        // ValueInfoProto: name = 1, type = 2.
        let dims: Vec<Message> = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Message::new().int(1, *n as i64),
                Dim::Named(name) => Message::new().string(2, name),
            })
            .collect();
        let shape = Message::new().messages(1, &dims);
        let tensor = Message::new().int(1, FLOAT).message(2, &shape);
        let value_type = Message::new().message(1, &tensor);
        Message::new().string(1, &self.name).message(2, &value_type)
    }
}

/// A whole model: one graph, the default operator set, and string metadata.
#[derive(Clone, Debug)]
pub struct Model {
    /// Name of the graph.
    pub graph_name: String,
    /// The graph's doc string.
    pub doc: String,
    /// Operator nodes, in topological order.
    pub nodes: Vec<Node>,
    /// The constant tensors (weights).
    pub initializers: Vec<Initializer>,
    /// The graph inputs.
    pub inputs: Vec<ValueInfo>,
    /// The graph outputs.
    pub outputs: Vec<ValueInfo>,
    /// Model metadata as key-value strings (`metadata_props`).
    pub metadata: Vec<(String, String)>,
}

impl Model {
    /// The serialised `ModelProto`.
    pub fn encode(&self) -> Vec<u8> {
        // GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12.
        let nodes: Vec<Message> = self.nodes.iter().map(Node::encode).collect();
        let initializers: Vec<Message> =
            self.initializers.iter().map(Initializer::encode).collect();
        let inputs: Vec<Message> = self.inputs.iter().map(ValueInfo::encode).collect();
        let outputs: Vec<Message> = self.outputs.iter().map(ValueInfo::encode).collect();
        let graph = Message::new()
            .messages(1, &nodes)
            .string(2, &self.graph_name)
            .messages(5, &initializers)
            .string(10, &self.doc)
            .messages(11, &inputs)
            .messages(12, &outputs);
        // OperatorSetIdProto: domain = 1 (empty: ai.onnx), version = 2.
        let opset = Message::new().string(1, "").int(2, OPSET);
        // StringStringEntryProto: key = 1, value = 2.
        let metadata: Vec<Message> = self
            .metadata
            .iter()
            .map(|(k, v)| Message::new().string(1, k).string(2, v))
            .collect();
        // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, graph = 7,
        // opset_import = 8, metadata_props = 14.
        Message::new()
            .int(1, IR_VERSION)
            .string(2, env!("CARGO_PKG_NAME"))
            .string(3, env!("CARGO_PKG_VERSION"))
            .message(7, &graph)
            .message(8, &opset)
            .messages(14, &metadata)
            .into_bytes()
    }
}
