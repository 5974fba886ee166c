//! Checks a checkpoint's `optimizer.bpk` against the model it is loaded beside, before burn
//! takes it in: burn's loader accepts a momentum buffer of any shape, rank or dtype (and panics
//! on a tensor without a parameter id), and the first step after it would then panic mid-run.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::burn_pack::{DType, Reader};

use crate::model::GoogLeNet;

/// burn's `ModuleOptimizer` keeps each parameter's rank under `"{param_id}.__rank"`.
const RANK_SUFFIX: &str = ".__rank";

/// Shape and dtype of each float parameter, by burn's parameter id.
#[derive(Default)]
struct Parameters {
    by_id: HashMap<u64, (Vec<usize>, DType)>,
}

impl ModuleVisitor for Parameters {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        self.by_id.insert(
            param.id.val(),
            (value.shape().as_slice().to_vec(), value.dtype()),
        );
    }
}

/// `Ok` when every state tensor in the optimiser record at `path` belongs to a parameter of
/// `model` and has its shape and dtype, and every recorded rank is its parameter's; otherwise
/// what does not match, naming the parameter id.
pub fn check(path: &Path, model: &GoogLeNet) -> Result<(), String> {
    let mut parameters = Parameters::default();
    model.visit(&mut parameters);
    let parameter = |id: u64| {
        parameters
            .by_id
            .get(&id)
            .ok_or_else(|| format!("state for parameter {id}, which this model does not have"))
    };
    let reader = Reader::from_file(path).map_err(|e| e.to_string())?;
    for (name, value) in reader.scalars() {
        let Some(id) = name.strip_suffix(RANK_SUFFIX) else {
            continue;
        };
        let id = id
            .parse::<u64>()
            .map_err(|_| format!("rank entry {name:?} names no parameter id"))?;
        let (shape, _) = parameter(id)?;
        let rank =
            usize::try_from(*value).map_err(|_| format!("rank entry {name:?} is no rank"))?;
        if rank != shape.len() {
            return Err(format!(
                "parameter {id} has rank {} but its state is recorded with rank {rank}",
                shape.len()
            ));
        }
    }
    for tensor in reader.into_tensors().map_err(|e| e.to_string())? {
        let id = tensor
            .param_id
            .ok_or_else(|| format!("state tensor {:?} carries no parameter id", tensor.name))?;
        let (shape, dtype) = parameter(id)?;
        if tensor.shape.as_slice() != shape.as_slice() || tensor.dtype != *dtype {
            return Err(format!(
                "state tensor {:?} is {:?} {:?}, but its parameter is {:?} {:?}",
                tensor.name,
                tensor.dtype,
                tensor.shape.as_slice(),
                dtype,
                shape
            ));
        }
    }
    Ok(())
}
