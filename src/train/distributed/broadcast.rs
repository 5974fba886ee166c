//! What every rank starts from: rank 0's configuration (when resuming) and rank 0's initial
//! weights.

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;

use super::collective::Collective;
use super::error::DistributedError;
use crate::model::GoogLeNet;
use crate::train::config::TrainConfig;

/// The configuration as rank 0 reads it, on every rank: rank 0 runs `read` and sends the result.
pub fn broadcast_config(
    world: &Collective,
    read: impl FnOnce() -> anyhow::Result<TrainConfig>,
) -> anyhow::Result<TrainConfig> {
    if !world.is_distributed() {
        return read();
    }
    let mut bytes = Vec::new();
    if world.is_root() {
        let config = read()?;
        bytes = serde_json::to_vec(&config)?;
    }
    world.broadcast_bytes(&mut bytes);
    Ok(serde_json::from_slice(&bytes)?)
}

/// `model` with rank 0's weights and running statistics on every rank.
pub fn broadcast_model(
    world: &Collective,
    model: GoogLeNet,
) -> Result<GoogLeNet, DistributedError> {
    if !world.is_distributed() {
        return Ok(model);
    }
    let transfer = |action, reason: String| DistributedError::Transfer {
        what: "initial weights",
        action,
        reason,
    };
    let mut bytes = Vec::new();
    if world.is_root() {
        let mut store = BurnpackStore::from_bytes(None);
        model
            .save_into(&mut store)
            .map_err(|e| transfer("packed", e.to_string()))?;
        bytes = store
            .get_bytes()
            .map_err(|e| transfer("packed", e.to_string()))?
            .to_vec();
    }
    world.broadcast_bytes(&mut bytes);
    if world.is_root() {
        return Ok(model);
    }
    let mut model = model;
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
    let result = model
        .load_from(&mut store)
        .map_err(|e| transfer("loaded", e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(transfer(
            "loaded",
            format!(
                "missing tensors {:?}, errors {:?}",
                result.missing, result.errors
            ),
        ));
    }
    Ok(model)
}
