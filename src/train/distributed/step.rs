//! One optimiser step over the job: each rank ran forward and backward on its share of the
//! global batch; here their losses and figures are summed (one small all-reduce), and their
//! gradients, each weighted by its rank's share of the images, summed with one all-reduce of a
//! flat f32 vector. Every rank then holds the same gradients, the gradient of the mean loss over
//! the whole global batch, and applies the same optimiser step, so their weights stay
//! bit-identical.

use std::time::Instant;

use super::collective::Collective;
use super::{flat, sums};
use crate::engine::DropoutSeed;
use crate::model::GoogLeNet;
use crate::train::metrics::{EpochSums, HeadBatch};
use crate::train::step::{StepValues, Update};

/// A step's outcome over every rank.
pub struct JobStep {
    /// The recipe's loss, mean over the global batch.
    pub total: f64,
    /// Each classifier's loss (main, aux1, aux2), mean over the global batch.
    pub heads: [Option<f64>; 3],
    /// The global batch's figures, for the epoch's training metrics.
    pub sums: EpochSums,
    /// The summed gradients; `None` when the loss was not finite on some rank (no step then).
    pub update: Option<Update>,
    /// Seconds this rank waited for the gradients' all-reduce after its backward pass (waiting
    /// for the slowest rank included).
    pub allreduce_seconds: f64,
    /// Seconds the gradients' all-reduces took, hidden behind the backward pass or not.
    pub allreduce_busy_seconds: f64,
}

/// Images of the global batch over all ranks, from each rank's count of the images it fetched
/// (a file that could not be decoded is skipped by the rank that owns it).
pub fn global_images(world: &Collective, local: usize) -> usize {
    let mut count = [local as f64];
    world.all_reduce_sum_f64(&mut count);
    count[0] as usize
}

/// The dropout seed of this rank for a step whose global batch holds `global_batch` images:
/// the step's `seed` on every rank, with the position of the rank's first image in the global
/// batch, so that each image draws the masks it would draw on one process (on the fast path;
/// see [`crate::train::step::Stepper::seed`] for burn's).
pub fn dropout_seed(world: &Collective, seed: u64, global_batch: usize) -> DropoutSeed {
    let share = super::shard::share(global_batch, world.world_size(), world.rank());
    DropoutSeed {
        seed,
        first_image: share.start as u64,
    }
}

/// The step's losses and figures over every rank.
pub struct JobFigures {
    /// The recipe's loss, mean over the global batch.
    pub total: f64,
    /// Each classifier's loss (main, aux1, aux2), mean over the global batch.
    pub heads: [Option<f64>; 3],
    /// The global batch's figures, for the epoch's training metrics.
    pub sums: EpochSums,
    /// Whether the loss was finite on every rank (only then is there a step).
    pub finite: bool,
}

/// Sums this rank's losses and figures (`None` when its share was empty) on the images with
/// `labels` with every other rank's, in one small all-reduce.
pub fn reduce_figures(
    world: &Collective,
    local: Option<&StepValues>,
    labels: &[i64],
) -> JobFigures {
    let mut local_sums = EpochSums::default();
    let mut non_finite = false;
    if let Some(values) = local {
        non_finite = !values.total.is_finite();
        let heads = std::array::from_fn(|i| match (&values.logits[i], values.heads[i]) {
            (Some(logits), Some(loss)) => Some(HeadBatch { loss, logits }),
            _ => None,
        });
        local_sums.add(labels, values.total, heads);
    }
    let mut figures = [0.0; sums::LEN + 1];
    figures[..sums::LEN].copy_from_slice(&sums::to_values(&local_sums));
    figures[sums::LEN] = f64::from(u8::from(non_finite));
    world.all_reduce_sum_f64(&mut figures);
    let global = sums::from_values(&figures[..sums::LEN]);
    let images = global.images.max(1) as f64;
    let total = global.total_loss_sum / images;
    let finite = figures[sums::LEN] == 0.0;
    JobFigures {
        total: if finite || !total.is_finite() {
            total
        } else {
            f64::NAN
        },
        heads: std::array::from_fn(|i| {
            let head = &global.heads[i];
            (head.images > 0).then(|| head.loss_sum / head.images as f64)
        }),
        sums: global,
        finite,
    }
}

/// The weight of this rank's gradients: its share of the global batch's images.
pub fn share_weight(local_images: usize, global_images: usize) -> f32 {
    (local_images as f64 / global_images.max(1) as f64) as f32
}

/// Combines this rank's forward and backward pass (`None` when its share was empty) on the
/// images with `labels` with every other rank's, the gradients in one all-reduce after the
/// backward pass; `global_images` is [`global_images`]'s count.
pub fn reduce(
    world: &Collective,
    model: &GoogLeNet,
    local: Option<(StepValues, Update)>,
    labels: &[i64],
    global_images: usize,
) -> JobStep {
    let figures = reduce_figures(world, local.as_ref().map(|(values, _)| values), labels);
    if !figures.finite {
        return JobStep::without_update(figures);
    }
    let values = flat::trainable_len(model);
    let tensors = flat::trainable_tensors(model);
    let mut buffer = vec![0.0f32; values + tensors];
    if let Some((_, update)) = &local {
        let (gradients, present) = buffer.split_at_mut(values);
        let weight = share_weight(labels.len(), global_images);
        match update {
            Update::Single(grads) => flat::add_gradients(model, grads, weight, gradients, present),
            Update::Multi(multi) => {
                for (grads, _) in &multi.grads {
                    flat::add_gradients(model, grads, weight, gradients, present);
                }
            }
        }
    }
    let started = Instant::now();
    world.all_reduce_sum_f32(&mut buffer);
    let seconds = started.elapsed().as_secs_f64();
    let (gradients, present) = buffer.split_at(values);
    JobStep {
        total: figures.total,
        heads: figures.heads,
        sums: figures.sums,
        update: Some(Update::Single(flat::gradients_from_flat(
            model, gradients, present,
        ))),
        allreduce_seconds: seconds,
        allreduce_busy_seconds: seconds,
    }
}

impl JobStep {
    /// The step of a non-finite loss: its figures, no update.
    pub fn without_update(figures: JobFigures) -> JobStep {
        JobStep {
            total: figures.total,
            heads: figures.heads,
            sums: figures.sums,
            update: None,
            allreduce_seconds: 0.0,
            allreduce_busy_seconds: 0.0,
        }
    }
}
