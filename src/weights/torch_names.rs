//! From the model's own parameter paths to PyTorch's state_dict names and layouts, and back.
//!
//! The model's fields are named after torchvision's modules, so only two things differ: the pool
//! projection sits at `branch4.1` in torchvision (index 0 is the parameterless max pool), and burn
//! stores linear weights as `[in, out]` where PyTorch stores `[out, in]`. PyTorch's
//! `num_batches_tracked` counters are written on export and dropped on import.

use super::tensor_map::{HostData, HostTensor, TensorMap};

/// PyTorch names and layouts to the model's paths and layouts.
pub fn to_burn(map: TensorMap) -> TensorMap {
    map.into_iter()
        .filter(|(key, _)| !key.ends_with(".num_batches_tracked"))
        .map(|(key, t)| {
            (
                key.replace(".branch4.1.", ".branch4."),
                swap_linear(&key, t),
            )
        })
        .collect()
}

/// The model's paths and layouts to PyTorch's (torchvision's when the variant is torchvision).
pub fn from_burn(map: TensorMap) -> TensorMap {
    let mut out = TensorMap::new();
    for (key, t) in map {
        let t = swap_linear(&key, t);
        let key = key.replace(".branch4.", ".branch4.1.");
        if let Some(bn) = key.strip_suffix(".running_var") {
            let counter = HostTensor {
                shape: vec![],
                data: HostData::I64(vec![0]),
            };
            out.insert(format!("{bn}.num_batches_tracked"), counter);
        }
        out.insert(key, t);
    }
    out
}

/// Linear weights are the only 2-D parameters of GoogLeNet; they swap between [in, out] and [out, in].
fn swap_linear(key: &str, t: HostTensor) -> HostTensor {
    if key.ends_with(".weight") && t.shape.len() == 2 {
        t.permute(&[1, 0])
    } else {
        t
    }
}
