//! PyTorch checkpoints: read with burn's `pytorch-reader` (zip and legacy containers), written as
//! `torch.save` writes a state_dict (a zip archive holding a protocol-2 pickle and one raw storage
//! per tensor), so that `torch.load(..., weights_only=True)` accepts it.

use std::io::Write;
use std::path::Path;

use pytorch_reader::{DType, PytorchReader};
use zip::write::SimpleFileOptions;

use super::error::WeightsError;
use super::tensor_map::{HostData, HostTensor, TensorMap};

/// Reads every tensor of a state_dict (also one nested under `state_dict`/`model`, or with
/// DataParallel's `module.` prefix).
pub fn read(path: &Path) -> Result<TensorMap, WeightsError> {
    let reader = PytorchReader::new(path)
        .map_err(|e| WeightsError::corrupt(path, "a PyTorch checkpoint", e))?;
    let mut map = TensorMap::new();
    for (key, tensor) in reader.tensors() {
        let bytes = tensor.read().map_err(|e| {
            WeightsError::corrupt(path, "a PyTorch checkpoint", format!("{key}: {e}"))
        })?;
        let shape = tensor.shape().to_vec();
        let data = decode(&bytes, tensor.dtype()).ok_or_else(|| WeightsError::DType {
            path: path.to_path_buf(),
            key: key.clone(),
            dtype: format!("{:?}", tensor.dtype()),
        })?;
        map.insert(key.clone(), HostTensor { shape, data });
    }
    if map.is_empty() {
        return Err(WeightsError::corrupt(
            path,
            "a PyTorch checkpoint",
            "it holds no tensors",
        ));
    }
    Ok(strip_wrapper_prefix(map))
}

fn decode(bytes: &[u8], dtype: DType) -> Option<HostData> {
    let f32s =
        |n: usize, f: &dyn Fn(&[u8]) -> f32| HostData::F32(bytes.chunks_exact(n).map(f).collect());
    Some(match dtype {
        DType::F32 => f32s(4, &|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        DType::F64 => f32s(8, &|b| f64::from_le_bytes(b.try_into().unwrap()) as f32),
        DType::F16 => f32s(2, &|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        DType::BF16 => f32s(2, &|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        DType::I64 => HostData::I64(
            bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        _ => return None,
    })
}

/// Training scripts often save `{"state_dict": ...}` or a DataParallel model (`module.` keys).
fn strip_wrapper_prefix(map: TensorMap) -> TensorMap {
    for prefix in [
        "state_dict.",
        "model.",
        "module.",
        "state_dict.module.",
        "model.module.",
    ] {
        if map.keys().all(|k| k.starts_with(prefix)) {
            return strip_wrapper_prefix(
                map.into_iter()
                    .map(|(k, v)| (k[prefix.len()..].to_string(), v))
                    .collect(),
            );
        }
    }
    map
}

/// Writes `map` as a PyTorch state_dict, atomically.
pub fn write(path: &Path, map: &TensorMap) -> Result<(), WeightsError> {
    let io = |e: std::io::Error| WeightsError::io(path, e);
    let zip_err = |e: zip::result::ZipError| WeightsError::io(path, std::io::Error::other(e));
    let tmp = temp_path(path);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let result = (|| {
        zip.start_file("archive/data.pkl", stored)
            .map_err(zip_err)?;
        zip.write_all(&pickle_state_dict(map)).map_err(io)?;
        zip.start_file("archive/byteorder", stored)
            .map_err(zip_err)?;
        zip.write_all(b"little").map_err(io)?;
        for (index, tensor) in map.values().enumerate() {
            zip.start_file(format!("archive/data/{index}"), stored.with_alignment(64))
                .map_err(zip_err)?;
            match &tensor.data {
                HostData::F32(v) => v.iter().try_for_each(|x| zip.write_all(&x.to_le_bytes())),
                HostData::I64(v) => v.iter().try_for_each(|x| zip.write_all(&x.to_le_bytes())),
            }
            .map_err(io)?;
        }
        zip.start_file("archive/version", stored).map_err(zip_err)?;
        zip.write_all(b"3\n").map_err(io)?;
        let inner = zip.finish().map_err(zip_err)?;
        inner
            .into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)
    })();
    finish_atomic(result, &tmp, path)
}

/// `path` with `.tmp` appended, in the same folder so that the rename is atomic.
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Renames the finished temporary file over `path`, or removes it if writing failed.
pub fn finish_atomic(
    result: Result<(), WeightsError>,
    tmp: &Path,
    path: &Path,
) -> Result<(), WeightsError> {
    match result {
        Ok(()) => std::fs::rename(tmp, path).map_err(|e| WeightsError::io(path, e)),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// The pickle `torch.save(state_dict)` writes: an OrderedDict of `_rebuild_tensor_v2` calls whose
/// storages are persistent ids ("storage", FloatStorage, key, "cpu", numel) naming `data/<key>`.
fn pickle_state_dict(map: &TensorMap) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]);
    p.ordered_dict();
    p.op(b'(');
    for (index, (key, tensor)) in map.iter().enumerate() {
        p.string(key);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        p.op(b'(');
        p.string("storage");
        let storage = match tensor.data {
            HostData::F32(_) => "FloatStorage",
            HostData::I64(_) => "LongStorage",
        };
        p.global("torch", storage);
        p.string(&index.to_string());
        p.string("cpu");
        p.int(tensor.shape.iter().product::<usize>().max(1));
        p.op(b't');
        p.op(b'Q');
        p.int(0);
        p.tuple(&tensor.shape);
        let mut strides = vec![1usize; tensor.shape.len()];
        for i in (0..tensor.shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * tensor.shape[i + 1];
        }
        p.tuple(&strides);
        p.op(0x89);
        p.ordered_dict();
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u');
    p.op(b'.');
    p.0
}

/// A protocol-2 pickle writer for the few opcodes a state_dict needs.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, code: u8) {
        self.0.push(code);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, value: usize) {
        self.0.push(b'J');
        self.0.extend_from_slice(&(value as i32).to_le_bytes());
    }

    fn tuple(&mut self, values: &[usize]) {
        if values.is_empty() {
            return self.op(b')');
        }
        self.op(b'(');
        values.iter().for_each(|&v| self.int(v));
        self.op(b't');
    }

    /// `collections.OrderedDict()`.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R');
    }
}
