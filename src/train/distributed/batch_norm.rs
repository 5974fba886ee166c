//! BatchNorm over ranks: each rank normalises over its own share of the batch (as PyTorch's
//! DistributedDataParallel without SyncBatchNorm), and the running statistics are averaged
//! over the ranks before every validation and checkpoint. The running averages are linear in
//! the batches' statistics, so averaging them at any step gives the same mean later on.

use super::collective::Collective;
use super::flat;
use crate::model::GoogLeNet;
use crate::train::polyak::Polyak;

/// `model` (and the Polyak average) with each BatchNorm running mean and variance replaced by
/// its mean over the ranks. A network without BatchNorm (the paper's) is returned as it is.
pub fn average_running_stats(
    world: &Collective,
    model: GoogLeNet,
    polyak: Option<&mut Polyak>,
) -> GoogLeNet {
    if !world.is_distributed() {
        return model;
    }
    let trained = flat::trained_mask(&model);
    if trained.iter().all(|&t| t) {
        return model;
    }
    let scale = 1.0 / world.world_size() as f32;
    let mean = |values: &mut Vec<f32>| {
        world.all_reduce_sum_f32(values);
        values.iter_mut().for_each(|v| *v *= scale);
    };
    let mut stats = flat::running_stats(&model, &trained);
    mean(&mut stats);
    let model = flat::with_running_stats(model, &trained, &stats);
    if let Some(polyak) = polyak {
        let mut stats = flat::running_stats(polyak.model(), &trained);
        mean(&mut stats);
        polyak.map_model(|average| flat::with_running_stats(average, &trained, &stats));
    }
    model
}
