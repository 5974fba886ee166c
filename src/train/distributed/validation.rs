//! Validation sharded over the ranks: each evaluates its contiguous share of the validation
//! images, and the figures are summed, so that every rank gets the whole split's.

use burn::prelude::*;

use super::collective::Collective;
use super::{shard, sums};
use crate::model::GoogLeNet;
use crate::train::config::TrainConfig;
use crate::train::error::TrainError;
use crate::train::evaluate::evaluate_images;
use crate::train::metrics::SplitStats;
use crate::train::source::{Split, TrainData};

/// Loss, top-1 and top-5 of every classifier of `model` on the whole validation split, each
/// rank evaluating its share.
pub fn evaluate(
    world: &Collective,
    model: &GoogLeNet,
    config: &TrainConfig,
    data: &dyn TrainData,
    device: &Device,
) -> Result<SplitStats, TrainError> {
    let range = shard::share(data.len(Split::Val), world.world_size(), world.rank());
    let indices: Vec<usize> = range.collect();
    let own = evaluate_images(model, config, data, device, &indices)?;
    Ok(sums::all_reduce(world, &own).stats())
}
