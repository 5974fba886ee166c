//! Helpers shared by the integration tests: the ground truth in ../shared and tensor comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use googlenet::model::{GoogLeNet, GoogLeNetConfig, Variant};
use googlenet::weights::tensor_map::{HostData, TensorMap};
use googlenet::weights::{self, safetensors_file};
use image::{ImageFormat, Rgb, RgbImage};

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

/// ../shared's calibrated torchvision state: PyTorch made the reference outputs beside it with it.
pub const TORCHVISION_PTH: &str = "reference/torchvision/torchvision_seed1234_calibrated.pth";

/// The torchvision variant holding [`TORCHVISION_PTH`], loaded strictly.
pub fn torchvision_reference(device: &Device) -> GoogLeNet {
    let model = GoogLeNetConfig::new(Variant::Torchvision)
        .init(device)
        .unwrap();
    weights::load(model, &shared(TORCHVISION_PTH)).expect("the reference state loads strictly")
}

/// A path under the temporary folder for this test program, removed if a run before left it. All
/// tests share one process (and so one process id): each passes its own name.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("googlenet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Writes `image` to `path` in `format` whatever the file's extension says, making the folders.
pub fn save_image(path: &Path, image: &RgbImage, format: ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save_with_format(path, format).unwrap();
}

/// The first half of a valid 64x64 JPEG: a file that decoders reject as truncated.
pub fn write_truncated_jpeg(path: &Path) {
    let mut jpeg = std::io::Cursor::new(Vec::new());
    RgbImage::from_pixel(64, 64, Rgb([9, 9, 9]))
        .write_to(&mut jpeg, ImageFormat::Jpeg)
        .unwrap();
    let jpeg = jpeg.into_inner();
    std::fs::write(path, &jpeg[..jpeg.len() / 2]).unwrap();
}

/// The float64 truth of the reference's deep gradients (tests/fixtures/make_torchvision_grads_f64.py:
/// PyTorch's train-mode step of ../shared/reference/torchvision in double precision), against which
/// float32 gradients below several train-mode BatchNorms of a 4-image batch are judged.
pub fn torchvision_f64_gradients() -> TensorMap {
    safetensors_file::read(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torchvision_train_grads_f64.safetensors"
    )))
    .expect("tests/fixtures/torchvision_train_grads_f64.safetensors readable")
    .0
}
