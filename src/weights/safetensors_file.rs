//! safetensors files: PyTorch's or Keras' tensors, or the project's own with its metadata.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::error::WeightsError;
use super::pth::{finish_atomic, temp_path};
use super::tensor_map::{HostData, HostTensor, TensorMap};

const FORMAT: &str = "safetensors";

/// Every tensor and the metadata of a safetensors file.
pub fn read(path: &Path) -> Result<(TensorMap, HashMap<String, String>), WeightsError> {
    let bytes = std::fs::read(path).map_err(|e| WeightsError::io(path, e))?;
    let (_, metadata) =
        SafeTensors::read_metadata(&bytes).map_err(|e| WeightsError::corrupt(path, FORMAT, e))?;
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::corrupt(path, FORMAT, e))?;
    let mut map = TensorMap::new();
    for (key, view) in file.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => HostData::F32(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            Dtype::F16 => HostData::F32(
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => HostData::F32(
                raw.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::F64 => HostData::F32(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
            ),
            Dtype::I64 => HostData::I64(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            Dtype::I32 => HostData::I64(
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
                    .collect(),
            ),
            Dtype::U8 => HostData::I64(raw.iter().map(|&b| b as i64).collect()),
            other => {
                return Err(WeightsError::DType {
                    path: path.to_path_buf(),
                    key,
                    dtype: format!("{other:?}"),
                });
            }
        };
        map.insert(
            key,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((map, metadata.metadata().clone().unwrap_or_default()))
}

/// Only the metadata, without reading the tensors.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, WeightsError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| WeightsError::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| WeightsError::corrupt(path, FORMAT, e))?;
    let len = u64::from_le_bytes(len);
    let file_len = file
        .metadata()
        .map_err(|e| WeightsError::io(path, e))?
        .len();
    if len > 100_000_000 || len > file_len.saturating_sub(8) {
        return Err(WeightsError::corrupt(
            path,
            FORMAT,
            format!("header length {len} is implausible for a file of {file_len} bytes"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| WeightsError::corrupt(path, FORMAT, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| WeightsError::corrupt(path, FORMAT, e))?;
    let metadata = json.get("__metadata__").and_then(|m| m.as_object());
    Ok(metadata
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect())
}

/// Writes `map` with `metadata`, atomically.
pub fn write(
    path: &Path,
    map: &TensorMap,
    metadata: &[(&str, String)],
) -> Result<(), WeightsError> {
    let buffers: Vec<(&String, Dtype, &Vec<usize>, Vec<u8>)> = map
        .iter()
        .map(|(key, t)| match &t.data {
            HostData::F32(v) => (
                key,
                Dtype::F32,
                &t.shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            HostData::I64(v) => (
                key,
                Dtype::I64,
                &t.shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(key, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.to_vec(), bytes).map(|v| (key.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WeightsError::corrupt(path, FORMAT, e))?;
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let tmp = temp_path(path);
    let result = safetensors::serialize_to_file(views, metadata, &tmp)
        .map_err(|e| WeightsError::io(path, std::io::Error::other(e)));
    finish_atomic(result, &tmp, path)
}
