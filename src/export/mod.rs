//! Exporting the network for other runtimes: ONNX (opset 17, dynamic batch) of the inference
//! network, and a reference file of inputs and this program's logits that the exported model must
//! reproduce (`scripts/check_onnx.py` runs onnxruntime on it). Weight files in PyTorch layouts are
//! written by [`crate::weights::save`].

pub mod error;
pub mod onnx_graph;
pub mod onnx_proto;
pub mod protobuf;
pub mod reference;

use std::io::Write;
use std::path::Path;

pub use error::ExportError;
pub use onnx_graph::{BATCH, INPUT, OUTPUT, inference_graph};
pub use reference::{reference_input, write_reference};

use crate::model::GoogLeNet;

/// What an ONNX export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxSummary {
    /// Operator nodes in the graph.
    pub nodes: usize,
    /// Elements of all initializers (after BatchNorm folding, without the auxiliary heads).
    pub parameters: usize,
    /// Size of the written file.
    pub bytes: usize,
}

/// Writes `model`'s inference network for a square input of side `input_size` to `path` as an
/// ONNX model, atomically (a temporary file renamed over `path`).
pub fn export_onnx(
    model: &GoogLeNet,
    input_size: usize,
    path: &Path,
) -> Result<OnnxSummary, ExportError> {
    let graph = inference_graph(model, input_size)?;
    let bytes = graph.encode();
    write_atomic(path, &bytes)?;
    Ok(OnnxSummary {
        nodes: graph.nodes.len(),
        parameters: graph.initializers.iter().map(|i| i.values.len()).sum(),
        bytes: bytes.len(),
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)
}
