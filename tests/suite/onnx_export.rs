//! The ONNX export, read back with a small protobuf decoder: opset, dynamic batch, the operators of
//! each variant in a valid order, attributes (pads, ceil mode, LRN), initializers equal to the
//! model's parameters (BatchNorm folded for torchvision), clear errors, and the `export` command.
//! That onnxruntime reproduces the logits is checked by scripts/check_onnx.py (Python).

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Module, Param, RunningState};
use burn::prelude::*;
use common::*;
use googlenet::export::protobuf::Message;
use googlenet::export::{ExportError, export_onnx};
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};

// ---- a minimal protobuf reader ----

#[derive(Clone, Copy, Debug)]
enum Wire<'a> {
    Varint(u64),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

fn read_varint(buf: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().expect("truncated varint");
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint longer than 10 bytes")
}

fn fields(mut buf: &[u8]) -> Vec<(u32, Wire<'_>)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf);
        let wire = match key & 7 {
            0 => Wire::Varint(read_varint(&mut buf)),
            2 => {
                let len = read_varint(&mut buf) as usize;
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Wire::Bytes(bytes)
            }
            5 => {
                let (bytes, rest) = buf.split_at(4);
                buf = rest;
                Wire::Fixed32(bytes.try_into().unwrap())
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push(((key >> 3) as u32, wire));
    }
    out
}

fn bytes_of(msg: &[u8], field: u32) -> Vec<&[u8]> {
    fields(msg)
        .into_iter()
        .filter_map(|(f, w)| match w {
            Wire::Bytes(b) if f == field => Some(b),
            _ => None,
        })
        .collect()
}

fn strings(msg: &[u8], field: u32) -> Vec<String> {
    bytes_of(msg, field)
        .into_iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

fn string(msg: &[u8], field: u32) -> String {
    strings(msg, field).pop().unwrap_or_default()
}

fn ints(msg: &[u8], field: u32) -> Vec<i64> {
    fields(msg)
        .into_iter()
        .filter_map(|(f, w)| match w {
            Wire::Varint(v) if f == field => Some(v as i64),
            _ => None,
        })
        .collect()
}

fn int(msg: &[u8], field: u32) -> Option<i64> {
    ints(msg, field).pop()
}

// ---- the ONNX messages, decoded ----

#[derive(Debug, PartialEq)]
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

#[derive(Debug)]
struct Node {
    name: String,
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: HashMap<String, Attr>,
}

#[derive(Debug, PartialEq)]
enum Dim {
    Value(i64),
    Param(String),
}

struct Onnx {
    ir_version: i64,
    opsets: Vec<(String, i64)>,
    nodes: Vec<Node>,
    initializers: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    inputs: Vec<(String, Vec<Dim>)>,
    outputs: Vec<(String, Vec<Dim>)>,
    metadata: HashMap<String, String>,
}

fn value_info(msg: &[u8]) -> (String, Vec<Dim>) {
    let tensor_type = bytes_of(bytes_of(msg, 2)[0], 1)[0];
    assert_eq!(int(tensor_type, 1), Some(1), "element type float");
    let shape = bytes_of(tensor_type, 2)[0];
    let dims = bytes_of(shape, 1)
        .into_iter()
        .map(|d| match int(d, 1) {
            Some(v) => Dim::Value(v),
            None => Dim::Param(string(d, 2)),
        })
        .collect();
    (string(msg, 1), dims)
}

fn decode(bytes: &[u8]) -> Onnx {
    let graph = bytes_of(bytes, 7)[0];
    let nodes = bytes_of(graph, 1)
        .into_iter()
        .map(|n| Node {
            name: string(n, 3),
            op: string(n, 4),
            inputs: strings(n, 1),
            outputs: strings(n, 2),
            attrs: bytes_of(n, 5)
                .into_iter()
                .map(|a| {
                    let value = match int(a, 20) {
                        Some(1) => Attr::Float(
                            fields(a)
                                .into_iter()
                                .find_map(|(f, w)| match w {
                                    Wire::Fixed32(b) if f == 2 => Some(f32::from_le_bytes(b)),
                                    _ => None,
                                })
                                .unwrap(),
                        ),
                        Some(2) => Attr::Int(int(a, 3).unwrap()),
                        Some(7) => Attr::Ints(ints(a, 8)),
                        other => panic!("attribute type {other:?}"),
                    };
                    (string(a, 1), value)
                })
                .collect(),
        })
        .collect();
    let initializers = bytes_of(graph, 5)
        .into_iter()
        .map(|t| {
            assert_eq!(int(t, 2), Some(1), "float initializer");
            let raw = bytes_of(t, 9)[0];
            let values = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let dims = ints(t, 1).into_iter().map(|d| d as usize).collect();
            (string(t, 8), (dims, values))
        })
        .collect();
    Onnx {
        ir_version: int(bytes, 1).unwrap(),
        opsets: bytes_of(bytes, 8)
            .into_iter()
            .map(|o| (string(o, 1), int(o, 2).unwrap()))
            .collect(),
        nodes,
        initializers,
        inputs: bytes_of(graph, 11).into_iter().map(value_info).collect(),
        outputs: bytes_of(graph, 12).into_iter().map(value_info).collect(),
        metadata: bytes_of(bytes, 14)
            .into_iter()
            .map(|e| (string(e, 1), string(e, 2)))
            .collect(),
    }
}

impl Onnx {
    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn op_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for n in &self.nodes {
            *counts.entry(n.op.as_str()).or_default() += 1;
        }
        counts
    }

    fn initializer(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.initializers
            .get(name)
            .unwrap_or_else(|| panic!("no initializer {name}"))
    }
}

// ---- helpers ----

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("onnx-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn build(variant: Variant, transform_input: bool) -> GoogLeNet {
    GoogLeNetConfig::new(variant)
        .with_transform_input(transform_input)
        .init(&Device::flex())
        .unwrap()
}

fn export(model: &GoogLeNet, input_size: usize, name: &str) -> Onnx {
    let path = temp_dir("graphs").join(format!("{name}.onnx"));
    let summary = export_onnx(model, input_size, &path).expect("export");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(summary.bytes, bytes.len());
    let onnx = decode(&bytes);
    assert_eq!(summary.nodes, onnx.nodes.len());
    assert_eq!(
        summary.parameters,
        onnx.initializers
            .values()
            .map(|(_, v)| v.len())
            .sum::<usize>()
    );
    onnx
}

fn params<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    to_vec(t)
}

fn ops(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().collect()
}

// ---- the protobuf writer ----

#[test]
fn protobuf_writer_matches_the_encoding_guide() {
    // The protobuf encoding guide's examples: 150 -> 08 96 01, "testing" -> 12 07 ...,
    // an embedded message -> 1a 03 08 96 01.
    assert_eq!(Message::new().int(1, 150).into_bytes(), [0x08, 0x96, 0x01]);
    assert_eq!(Message::new().int(1, 300).into_bytes(), [0x08, 0xac, 0x02]);
    assert_eq!(
        Message::new().string(2, "testing").into_bytes(),
        [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
    );
    let inner = Message::new().int(1, 150);
    assert_eq!(
        Message::new().message(3, &inner).into_bytes(),
        [0x1a, 0x03, 0x08, 0x96, 0x01]
    );
    assert_eq!(
        Message::new().float(2, 1.0).into_bytes(),
        [0x15, 0x00, 0x00, 0x80, 0x3f]
    );
    // Negative int64: ten bytes, read back as the same value.
    let minus_one = Message::new().int(1, -1).into_bytes();
    assert_eq!(minus_one.len(), 11);
    assert_eq!(ints(&minus_one, 1), [-1]);
}

// ---- the graph of each variant ----

/// Opset 17, IR 8, "input" [batch, 3, n, n] and "logits" [batch, classes], nodes in an order where
/// every input exists before it is used, every initializer used, the last node writing "logits".
fn assert_well_formed(onnx: &Onnx, input_size: i64, classes: i64) {
    assert_eq!(onnx.ir_version, 8);
    assert_eq!(onnx.opsets, [(String::new(), 17)]);
    let batch = || Dim::Param("batch".into());
    assert_eq!(
        onnx.inputs,
        [(
            "input".to_string(),
            vec![
                batch(),
                Dim::Value(3),
                Dim::Value(input_size),
                Dim::Value(input_size)
            ]
        )]
    );
    assert_eq!(
        onnx.outputs,
        [("logits".to_string(), vec![batch(), Dim::Value(classes)])]
    );
    let mut defined: HashSet<&str> = onnx.initializers.keys().map(String::as_str).collect();
    defined.insert("input");
    let mut used = HashSet::new();
    for node in &onnx.nodes {
        for input in &node.inputs {
            assert!(
                defined.contains(input.as_str()),
                "{} reads {input} before it is computed",
                node.name
            );
            used.insert(input.as_str());
        }
        for output in &node.outputs {
            assert!(defined.insert(output), "{output} written twice");
        }
    }
    for name in onnx.initializers.keys() {
        assert!(used.contains(name.as_str()), "initializer {name} unused");
    }
    assert_eq!(onnx.nodes.last().unwrap().outputs, ["logits"]);
}

#[test]
fn paper_graph_has_biased_convolutions_lrn_and_ceil_mode_pools() {
    let model = build(Variant::Paper, false);
    let onnx = export(&model, 224, "paper");
    assert_well_formed(&onnx, 224, 1000);
    // 3 stem + 9 x 6 inception convolutions; 4 stride-2 + 9 branch pools.
    assert_eq!(
        onnx.op_counts(),
        ops(&[
            ("Concat", 9),
            ("Conv", 57),
            ("Flatten", 1),
            ("Gemm", 1),
            ("GlobalAveragePool", 1),
            ("LRN", 2),
            ("MaxPool", 13),
            ("Relu", 57),
        ])
    );
    let lrn = onnx.node("norm1");
    assert_eq!(lrn.attrs["size"], Attr::Int(5));
    assert_eq!(lrn.attrs["alpha"], Attr::Float(1e-4));
    assert_eq!(lrn.attrs["beta"], Attr::Float(0.75));
    assert_eq!(lrn.attrs["bias"], Attr::Float(1.0));
    let pool = onnx.node("maxpool1");
    assert_eq!(pool.attrs["ceil_mode"], Attr::Int(1));
    assert_eq!(pool.attrs["kernel_shape"], Attr::Ints(vec![3, 3]));
    assert_eq!(pool.attrs["strides"], Attr::Ints(vec![2, 2]));
    assert_eq!(pool.attrs["pads"], Attr::Ints(vec![0; 4]));
    assert_eq!(
        onnx.node("maxpool4").attrs["kernel_shape"],
        Attr::Ints(vec![3, 3])
    );
    let conv1 = onnx.node("conv1/conv");
    assert_eq!(conv1.attrs["pads"], Attr::Ints(vec![3; 4]));
    assert_eq!(conv1.attrs["strides"], Attr::Ints(vec![2, 2]));
    assert_eq!(
        onnx.node("inception3a.branch3.1/conv").attrs["kernel_shape"],
        Attr::Ints(vec![5, 5])
    );
    assert_eq!(
        onnx.node("inception3a.branch3.1/conv").attrs["pads"],
        Attr::Ints(vec![2; 4])
    );

    // Initializers are the model's own parameters, in PyTorch's conv layout and burn's [in, out]
    // linear layout (Gemm's B without transposition).
    let (dims, values) = onnx.initializer("conv1.conv.weight");
    assert_eq!(dims, &[64, 3, 7, 7]);
    assert_eq!(values, &params(model.conv1.conv.weight.val()));
    let (_, bias) = onnx.initializer("inception5b.branch4.1.conv.bias");
    assert_eq!(
        bias,
        &params(model.inception5b.branch4.conv.bias.as_ref().unwrap().val())
    );
    let (dims, values) = onnx.initializer("fc.weight");
    assert_eq!(dims, &[1024, 1000]);
    assert_eq!(values, &params(model.fc.weight.val()));
    assert_eq!(onnx.node("fc").inputs, ["flatten", "fc.weight", "fc.bias"]);
    // Everything but the auxiliary heads.
    let aux: usize = [&model.aux1, &model.aux2]
        .iter()
        .map(|h| h.as_ref().unwrap().num_params())
        .sum();
    let exported: usize = onnx.initializers.values().map(|(_, v)| v.len()).sum();
    assert_eq!(exported, model.num_params() - aux);
    assert_eq!(onnx.metadata["googlenet.variant"], "paper");
}

/// A torchvision model whose BatchNorms are far from the identity, so folding them matters.
fn torchvision_with_statistics(transform_input: bool) -> GoogLeNet {
    let mut model = build(Variant::Torchvision, transform_input);
    let device = Device::flex();
    let bn = model.conv1.bn.as_mut().unwrap();
    let channel = |f: fn(f32) -> f32| {
        Tensor::<1>::from_data(
            TensorData::new((0..64).map(|i| f(i as f32)).collect::<Vec<f32>>(), [64]),
            &device,
        )
    };
    bn.weight = Param::from_tensor(channel(|i| 0.5 + 0.02 * i));
    bn.bias = Param::from_tensor(channel(|i| (i * 0.7).sin()));
    bn.running_mean = RunningState::new(channel(|i| 0.05 * (i * 1.3).cos()));
    bn.running_var = RunningState::new(channel(|i| 0.01 + 0.003 * i));
    model
}

#[test]
fn torchvision_graph_folds_batch_norm_into_the_convolutions() {
    let model = torchvision_with_statistics(false);
    let onnx = export(&model, 224, "torchvision");
    assert_well_formed(&onnx, 224, 1000);
    assert_eq!(
        onnx.op_counts(),
        ops(&[
            ("Concat", 9),
            ("Conv", 57),
            ("Flatten", 1),
            ("Gemm", 1),
            ("GlobalAveragePool", 1),
            ("MaxPool", 13),
            ("Relu", 57),
        ])
    );
    // torchvision's 2x2/2 pool before 5a and 3x3 "5x5" branch.
    assert_eq!(
        onnx.node("maxpool4").attrs["kernel_shape"],
        Attr::Ints(vec![2, 2])
    );
    assert_eq!(
        onnx.node("inception3a.branch3.1/conv").attrs["kernel_shape"],
        Attr::Ints(vec![3, 3])
    );

    // w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps).
    let bn = model.conv1.bn.as_ref().unwrap();
    let [gamma, beta, mean, var] = [
        params(bn.weight.val()),
        params(bn.bias.val()),
        params(bn.running_mean.value()),
        params(bn.running_var.value()),
    ];
    let weight = params(model.conv1.conv.weight.val());
    let (dims, folded) = onnx.initializer("conv1.fused.weight");
    assert_eq!(dims, &[64, 3, 7, 7]);
    let per_channel = 3 * 7 * 7;
    for (i, (&w, &f)) in weight.iter().zip(folded).enumerate() {
        let c = i / per_channel;
        let want = w as f64 * gamma[c] as f64 / (var[c] as f64 + 1e-3).sqrt();
        assert!(
            (f as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3),
            "weight {i}: {f} vs {want}"
        );
    }
    let (_, folded_bias) = onnx.initializer("conv1.fused.bias");
    for c in 0..64 {
        let want =
            beta[c] as f64 - mean[c] as f64 * gamma[c] as f64 / (var[c] as f64 + 1e-3).sqrt();
        assert!((folded_bias[c] as f64 - want).abs() < 1e-6, "bias {c}");
    }
    // The folded scale really differs from 1 (the check above has teeth).
    assert!(
        folded
            .iter()
            .zip(&weight)
            .any(|(f, w)| (f - w).abs() > 2.0 * w.abs())
    );
    assert_eq!(
        onnx.metadata["googlenet.batch_norm"],
        "folded into the preceding convolutions"
    );
}

#[test]
fn torchvision_transform_input_becomes_a_per_channel_affine_map() {
    let onnx = export(&torchvision_with_statistics(true), 224, "torchvision_ti");
    assert_well_formed(&onnx, 224, 1000);
    assert_eq!(onnx.nodes[0].op, "Mul");
    assert_eq!(onnx.nodes[0].inputs[0], "input");
    assert_eq!(onnx.nodes[1].op, "Add");
    assert_eq!(onnx.node("conv1/conv").inputs[0], "transform_input");
    let (dims, scale) = onnx.initializer("transform_input.scale");
    assert_eq!(dims, &[1, 3, 1, 1]);
    let (_, shift) = onnx.initializer("transform_input.shift");
    // torchvision: x_ch0 * (0.229 / 0.5) + (0.485 - 0.5) / 0.5, and so on.
    let want_scale = [0.229f32 / 0.5, 0.224 / 0.5, 0.225 / 0.5];
    let want_shift = [
        (0.485f32 - 0.5) / 0.5,
        (0.456 - 0.5) / 0.5,
        (0.406 - 0.5) / 0.5,
    ];
    assert_close("scale", scale, &want_scale, 1e-7);
    assert_close("shift", shift, &want_shift, 1e-7);
}

#[test]
fn keras_seed_graph_pads_like_tensorflow_and_flattens_hwc() {
    let model = build(Variant::KerasSeed, false);
    let onnx = export(&model, 224, "keras_seed");
    assert_well_formed(&onnx, 224, 1000);
    assert_eq!(
        onnx.op_counts(),
        ops(&[
            ("AveragePool", 1),
            ("BatchNormalization", 2),
            ("Concat", 9),
            ("Conv", 57),
            ("Flatten", 1),
            ("Gemm", 2),
            ("MaxPool", 13),
            ("Relu", 57),
            ("Transpose", 1),
        ])
    );
    // TensorFlow 'same' for 7x7/2 on 224: 5 pixels of padding, 2 before and 3 after.
    assert_eq!(
        onnx.node("conv1/conv").attrs["pads"],
        Attr::Ints(vec![2, 2, 3, 3])
    );
    // 3x3/2 max pool on 112: 1 pixel, after.
    let pool = onnx.node("maxpool1");
    assert_eq!(pool.attrs["pads"], Attr::Ints(vec![0, 0, 1, 1]));
    assert!(!pool.attrs.contains_key("ceil_mode"));
    assert_eq!(
        onnx.node("conv3/conv").attrs["pads"],
        Attr::Ints(vec![1; 4])
    );
    assert_eq!(onnx.node("bn1").inputs[0], "maxpool1");
    assert_eq!(onnx.node("bn1").attrs["epsilon"], Attr::Float(1e-3));
    let avg = onnx.node("avgpool");
    assert_eq!(avg.attrs["kernel_shape"], Attr::Ints(vec![7, 7]));
    assert_eq!(avg.attrs["count_include_pad"], Attr::Int(0));
    assert_eq!(
        onnx.node("flatten/transpose").attrs["perm"],
        Attr::Ints(vec![0, 2, 3, 1])
    );
    assert_eq!(onnx.node("flatten").inputs, ["flatten/transpose"]);
    assert_eq!(
        onnx.node("fc_bottleneck").inputs,
        ["flatten", "fc_bottleneck.weight", "fc_bottleneck.bias"]
    );
    assert_eq!(onnx.node("fc").inputs[0], "fc_bottleneck");
    assert_eq!(onnx.initializer("fc_bottleneck.weight").0, [1024, 256]);
    assert_eq!(onnx.initializer("fc.weight").0, [256, 1000]);
    let aux: usize = [&model.aux1, &model.aux2]
        .iter()
        .map(|h| h.as_ref().unwrap().num_params())
        .sum();
    let exported: usize = onnx.initializers.values().map(|(_, v)| v.len()).sum();
    assert_eq!(exported, model.num_params() - aux);
}

#[test]
fn other_input_sizes_change_the_pads_and_the_input_shape() {
    // Paper and torchvision pool globally, so they export at any size their pools allow.
    let onnx = export(&build(Variant::Paper, false), 320, "paper_320");
    assert_well_formed(&onnx, 320, 1000);
    // The seed built for 256: 'same' pads of the 7x7/2 stem on 256 are 2 and 3 again, and the
    // 3x3/2 pool on 128 pads 0 and 1.
    let model = GoogLeNetConfig::new(Variant::KerasSeed)
        .with_input_size(256)
        .init(&Device::flex())
        .unwrap();
    let onnx = export(&model, 256, "keras_256");
    assert_well_formed(&onnx, 256, 1000);
    assert_eq!(onnx.initializer("fc_bottleneck.weight").0, [4096, 256]);
}

#[test]
fn export_errors_name_the_problem() {
    let dir = temp_dir("errors");
    let keras = build(Variant::KerasSeed, false);
    let err = export_onnx(&keras, 256, &dir.join("k.onnx")).unwrap_err();
    assert!(matches!(
        err,
        ExportError::HeadMismatch {
            size: 256,
            features: 4096,
            expected: 1024,
            ..
        }
    ));
    assert!(err.to_string().contains("fc_bottleneck"), "{err}");
    let err = export_onnx(&build(Variant::Paper, false), 16, &dir.join("p.onnx")).unwrap_err();
    assert!(
        matches!(err, ExportError::InputSize { size: 16, .. }),
        "{err}"
    );
    assert!(!dir.join("p.onnx").exists());
    let err = export_onnx(
        &build(Variant::Paper, false),
        224,
        Path::new("/nonexistent-dir/model.onnx"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-dir/model.onnx"),
        "{err}"
    );
}

// ---- the command ----

fn googlenet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(args)
        .output()
        .expect("run googlenet")
}

fn reference_pngs() -> Vec<String> {
    let dir = shared("reference/inputs");
    let mut pngs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .map(|p| p.display().to_string())
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 4);
    pngs
}

#[test]
fn export_command_writes_the_model_and_a_reference() {
    let dir = temp_dir("cli");
    let out = dir.join("tv.onnx");
    let pngs = reference_pngs();
    let mut args = vec![
        "export",
        out.to_str().unwrap(),
        "--variant",
        "torchvision",
        "--reference-images",
    ];
    args.extend(pngs.iter().map(String::as_str));
    let run = googlenet(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("randomly initialised"), "{stderr}");
    let onnx = decode(&std::fs::read(&out).unwrap());
    assert_well_formed(&onnx, 224, 1000);

    // The reference input is the PNGs normalised as torchvision does it, bit for bit.
    let reference =
        googlenet::weights::safetensors_file::read(&dir.join("tv.reference.safetensors"))
            .unwrap()
            .0;
    assert_eq!(reference["input"].shape, [4, 3, 224, 224]);
    assert_eq!(reference["logits"].shape, [4, 1000]);
    let inputs = common::reference("reference/inputs/inputs.safetensors");
    assert_close(
        "reference input",
        &values(&reference, "input"),
        &values(&inputs, "torch_input_nchw_imagenet"),
        0.0,
    );
}

#[test]
fn export_command_rejects_bad_input_clearly() {
    let dir = temp_dir("cli_errors");
    let out = dir.join("x.onnx");
    // A reference image that is not 224x224.
    let photo = shared("data/hymenoptera/val/ants/10308379_1b6c72e180.jpg");
    let run = googlenet(&[
        "export",
        out.to_str().unwrap(),
        "--reference-images",
        photo.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("10308379_1b6c72e180.jpg") && stderr.contains("224x224"),
        "{stderr}"
    );
    // An extension that names no format.
    let run = googlenet(&["export", dir.join("model.bin").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr.contains("--format"), "{stderr}");
}

#[test]
fn export_command_writes_torchvision_layout_weights() {
    let dir = temp_dir("cli_pth");
    let pth = shared("reference/torchvision/torchvision_seed1234_calibrated.pth");
    let out = dir.join("copy.pth");
    let run = googlenet(&[
        "export",
        out.to_str().unwrap(),
        "--weights",
        pth.to_str().unwrap(),
        "--variant",
        "torchvision",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let original = googlenet::weights::load(build(Variant::Torchvision, false), &pth).unwrap();
    let copy = googlenet::weights::load(build(Variant::Torchvision, false), &out).unwrap();
    assert_eq!(
        params(copy.inception4c.branch2[1].conv.weight.val()),
        params(original.inception4c.branch2[1].conv.weight.val())
    );
    assert_eq!(
        params(copy.fc.bias.as_ref().unwrap().val()),
        params(original.fc.bias.as_ref().unwrap().val())
    );
}
