//! The model's parameters and running statistics as a [`TensorMap`] keyed by module path, and back.

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::store::burn_pack::{Bytes, DType, Tensor as PackTensor};

use super::error::WeightsError;
use super::tensor_map::{HostData, HostTensor, TensorMap};
use crate::model::GoogLeNet;

/// Every float tensor of the model (parameters and BatchNorm running statistics) by path.
pub fn collect(model: &GoogLeNet) -> TensorMap {
    // `valid()` folds the running-statistics updates of earlier forward passes in; a plain
    // `collect` would see the values as of the last synchronisation.
    model
        .valid()
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let shape = t.shape.to_vec();
            let bytes = t.to_bytes().expect("in-memory model tensors are readable");
            let data = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (t.name.clone(), HostTensor::f32(shape, data))
        })
        .collect()
}

/// Loads `map` (module paths and burn layouts, already checked by [`super::validate`]) into the model.
pub fn apply(mut model: GoogLeNet, map: TensorMap, path: &Path) -> Result<GoogLeNet, WeightsError> {
    let tensors = map
        .into_iter()
        .filter_map(|(name, t)| match t.data {
            HostData::F32(values) => Some(PackTensor::new(
                name,
                DType::F32,
                t.shape,
                None,
                Bytes::from_elems(values),
            )),
            HostData::I64(_) => None,
        })
        .collect();
    let result = model.apply(tensors, None, None, false);
    match result.errors.first() {
        Some(err) => Err(WeightsError::corrupt(path, "weights", format!("{err:?}"))),
        None => Ok(model),
    }
}
