//! Helpers shared by the integration tests: the ground truth in ../shared and tensor comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::prelude::*;
use googlenet::weights::safetensors_file;
use googlenet::weights::tensor_map::{HostData, TensorMap};

/// A file of the ground truth that CI places beside the repository, or a clear failure.
pub fn shared(relative: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")).join(relative);
    assert!(
        path.exists(),
        "ground truth missing: {} — this test needs ../shared beside the repository (CI has it)",
        path.display()
    );
    path
}

/// Every tensor of a reference safetensors file.
pub fn reference(relative: &str) -> TensorMap {
    safetensors_file::read(&shared(relative))
        .expect("reference file readable")
        .0
}

pub fn values(map: &TensorMap, key: &str) -> Vec<f32> {
    match &map
        .get(key)
        .unwrap_or_else(|| panic!("reference has no {key}"))
        .data
    {
        HostData::F32(v) => v.clone(),
        HostData::I64(v) => v.iter().map(|&x| x as f32).collect(),
    }
}

pub fn tensor4(map: &TensorMap, key: &str, device: &Device) -> Tensor<4> {
    let shape: [usize; 4] = map[key].shape.clone().try_into().expect("rank 4");
    Tensor::from_data(TensorData::new(values(map, key), shape), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// max |a - b| / max |b|: a relative error that does not blow up on near-zero elements.
pub fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max);
    max_abs_diff(a, b) / scale.max(f32::MIN_POSITIVE)
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let diff = max_abs_diff(got, want);
    assert!(diff <= tol, "{what}: max abs diff {diff:e} > {tol:e}");
}

/// ||a - b|| / ||b||, the relative error of a whole tensor.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt() as f32
}
