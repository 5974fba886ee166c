//! The figures of a model on the validation split (inference mode), and the recording of one
//! batch's figures into an epoch's sums, shared with the training steps.

use burn::prelude::*;

use super::config::TrainConfig;
use super::error::TrainError;
use super::metrics::{EpochSums, HeadBatch, SplitStats};
use super::source::{Split, TrainData};
use super::step::{StepValues, host_logits};
use crate::model::GoogLeNet;

/// Loss, top-1 and top-5 of every classifier of `model` on the validation split (inference
/// mode: BatchNorm running statistics, no dropout).
pub fn evaluate(
    model: &GoogLeNet,
    config: &TrainConfig,
    data: &dyn TrainData,
    device: &Device,
) -> Result<SplitStats, TrainError> {
    let indices: Vec<usize> = (0..data.len(Split::Val)).collect();
    Ok(evaluate_images(model, config, data, device, &indices)?.stats())
}

/// The figures of `model` on the validation images `indices`, for [`evaluate`] and a rank's
/// share of the validation split.
pub fn evaluate_images(
    model: &GoogLeNet,
    config: &TrainConfig,
    data: &dyn TrainData,
    device: &Device,
    indices: &[usize],
) -> Result<EpochSums, TrainError> {
    let mut sums = EpochSums::default();
    for chunk in indices.chunks(config.batch_size) {
        let host = data.fetch(Split::Val, chunk, 0)?;
        let n = host.len();
        if n == 0 {
            continue;
        }
        let images = Tensor::<4>::from_data(
            TensorData::new(host.images, [n, 3, host.side, host.side]),
            device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(host.labels.clone(), [n]), device);
        let output = model.forward_with_aux(images);
        let parts = config.loss.loss(&output, labels);
        let value = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
        let values = StepValues {
            total: value(&parts.total),
            heads: [
                Some(value(&parts.main)),
                parts.aux1.as_ref().map(value),
                parts.aux2.as_ref().map(value),
            ],
            logits: [
                Some(host_logits(&output.main)),
                output.aux1.as_ref().map(host_logits),
                output.aux2.as_ref().map(host_logits),
            ],
        };
        record_batch(&mut sums, &host.labels, values);
    }
    Ok(sums)
}

/// Adds one batch's losses and logits to `sums`.
pub(super) fn record_batch(sums: &mut EpochSums, labels: &[i64], values: StepValues) {
    let heads = std::array::from_fn(|i| match (&values.logits[i], values.heads[i]) {
        (Some(logits), Some(loss)) => Some(HeadBatch { loss, logits }),
        _ => None,
    });
    sums.add(labels, values.total, heads);
}
