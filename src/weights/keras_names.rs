//! The Keras seed's layer names and layouts, mapped to the model's PyTorch-style names.
//!
//! Keras names layers by creation order (`conv2d`, `conv2d_1`, ...). The seed creates, per inception
//! module, the 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5 and pool projection convolutions in that order,
//! and each auxiliary head's convolution right after the module it reads (so `conv2d_21` is aux1's);
//! `dense`, `dense_1` are the aux heads' Dense 256, `dense_2` the main head's, and the three
//! classifiers are named `main`, `aux1` and `aux2` (../shared/reference/keras_seed/semantic_names.json).
//! Kernels are HWIO for convolutions and (in, out) for Dense layers.

use super::error::WeightsError;
use super::tensor_map::TensorMap;
use crate::model::Variant;
use crate::model::architecture::{AUX_TAPS, INCEPTIONS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Conv,
    Dense,
    BatchNorm,
}

/// (Keras layer, PyTorch-style module prefix, kind) for every layer with weights.
fn layers() -> Vec<(String, String, Kind)> {
    let mut out = Vec::new();
    let mut convs = 0;
    let mut conv = |out: &mut Vec<_>, prefix: String| {
        let name = if convs == 0 {
            "conv2d".to_string()
        } else {
            format!("conv2d_{convs}")
        };
        convs += 1;
        out.push((name, prefix, Kind::Conv));
    };
    conv(&mut out, "conv1.conv".into());
    out.push(("batch_normalization".into(), "bn1".into(), Kind::BatchNorm));
    conv(&mut out, "conv2.conv".into());
    conv(&mut out, "conv3.conv".into());
    out.push((
        "batch_normalization_1".into(),
        "bn2".into(),
        Kind::BatchNorm,
    ));
    for (i, spec) in INCEPTIONS.iter().enumerate() {
        for branch in [
            "branch1",
            "branch2.0",
            "branch2.1",
            "branch3.0",
            "branch3.1",
            "branch4.1",
        ] {
            conv(&mut out, format!("{}.{branch}.conv", spec.name));
        }
        if let Some(head) = AUX_TAPS.iter().position(|&tap| tap == i) {
            conv(&mut out, format!("aux{}.conv.conv", head + 1));
        }
    }
    for (keras, torch) in [
        ("dense", "aux1.fc1"),
        ("dense_1", "aux2.fc1"),
        ("dense_2", "fc_bottleneck"),
        ("main", "fc"),
        ("aux1", "aux1.fc2"),
        ("aux2", "aux2.fc2"),
    ] {
        out.push((keras.into(), torch.into(), Kind::Dense));
    }
    out
}

/// (Keras variable, PyTorch parameter) of each kind of layer.
fn variables(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Conv | Kind::Dense => &[("kernel", "weight"), ("bias", "bias")],
        Kind::BatchNorm => &[
            ("gamma", "weight"),
            ("beta", "bias"),
            ("moving_mean", "running_mean"),
            ("moving_variance", "running_var"),
        ],
    }
}

/// Whether the file uses Keras names.
pub fn is_keras(map: &TensorMap) -> bool {
    map.keys()
        .any(|k| k.ends_with(".kernel") || k.ends_with(".moving_mean"))
}

/// Keras names and layouts to PyTorch's; keys it does not know pass through (and are then
/// reported as unexpected).
pub fn to_torch(mut map: TensorMap) -> TensorMap {
    let mut out = TensorMap::new();
    for (keras, torch, kind) in layers() {
        for (kv, tv) in variables(kind) {
            if let Some(t) = map.remove(&format!("{keras}.{kv}")) {
                let t = match (kind, *kv) {
                    (Kind::Conv, "kernel") if t.shape.len() == 4 => t.permute(&[3, 2, 0, 1]),
                    (Kind::Dense, "kernel") if t.shape.len() == 2 => t.permute(&[1, 0]),
                    _ => t,
                };
                out.insert(format!("{torch}.{tv}"), t);
            }
        }
    }
    out.extend(map);
    out
}

/// PyTorch names and layouts to the seed's Keras ones (keras-seed variant only).
pub fn from_torch(mut map: TensorMap, variant: Variant) -> Result<TensorMap, WeightsError> {
    if variant != Variant::KerasSeed {
        return Err(WeightsError::Unsupported(format!(
            "the Keras layout exists for the keras-seed variant only, not {variant}"
        )));
    }
    let mut out = TensorMap::new();
    for (keras, torch, kind) in layers() {
        for (kv, tv) in variables(kind) {
            if let Some(t) = map.remove(&format!("{torch}.{tv}")) {
                let t = match (kind, *kv) {
                    (Kind::Conv, "kernel") => t.permute(&[2, 3, 1, 0]),
                    (Kind::Dense, "kernel") => t.permute(&[1, 0]),
                    _ => t,
                };
                out.insert(format!("{keras}.{kv}"), t);
            }
        }
    }
    Ok(out)
}
