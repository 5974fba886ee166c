//! One step of the training loop: forward, backward and the optimiser's update on this process's
//! batch, or on its share of a distributed job's batch; a non-finite loss updates nothing.

use burn::prelude::*;

use super::config::TrainConfig;
use super::distributed::buckets::Buckets;
use super::distributed::{self, Collective};
use super::error::TrainError;
use super::evaluate::record_batch;
use super::source::HostBatch;
use super::step::Stepper;
use super::trainer::Run;
use crate::model::precision::Precision;

/// A non-finite total loss and its parts, by head.
pub(super) type NonFiniteLoss = (f64, String);

/// One optimiser step on `host`: the step's total loss, or on a non-finite loss its value and
/// the parts, and no update.
pub(super) fn train_step(
    config: &TrainConfig,
    run: &mut Run,
    host: &HostBatch,
    lr: f64,
    device: &Device,
    stepper: &Stepper,
    precision: Precision,
) -> Result<Result<f64, NonFiniteLoss>, TrainError> {
    let (values, update) =
        stepper.forward_backward(&run.model, host, config.loss, precision, device)?;
    let total = values.total;
    if !total.is_finite() {
        return Ok(Err((total, non_finite_parts(values.heads))));
    }
    let model = run.model.clone();
    run.model = update.apply(lr, &mut run.optimizer, model);
    if let Some(p) = &mut run.polyak {
        p.update(&run.model);
    }
    record_batch(&mut run.state.partial, &host.labels, values);
    Ok(Ok(total))
}

/// [`train_step`] on this rank's share of the global batch in a distributed run: losses,
/// figures and gradients summed over the ranks ([`distributed::step`]; the fast engine's in
/// `buckets` during its backward pass, [`distributed::fast_step`]). Also gives the step's
/// all-reduce seconds: waited for after the backward pass, and in all.
pub(super) fn job_step(
    config: &TrainConfig,
    run: &mut Run,
    host: &HostBatch,
    images: usize,
    lr: f64,
    (device, stepper, precision, world, buckets): (
        &Device,
        &Stepper,
        Precision,
        &Collective,
        Buckets,
    ),
) -> Result<Result<(f64, [f64; 2]), NonFiniteLoss>, TrainError> {
    let aux = config.loss.aux;
    let fast = distributed::fast_step::fast_job_step(
        world, stepper, &run.model, host, images, aux, buckets,
    )?;
    let job = match fast {
        Some(job) => job,
        None => {
            let local = if host.is_empty() {
                None
            } else {
                Some(stepper.forward_backward(&run.model, host, config.loss, precision, device)?)
            };
            distributed::step::reduce(world, &run.model, local, &host.labels, images)
        }
    };
    let Some(update) = job.update else {
        return Ok(Err((job.total, non_finite_parts(job.heads))));
    };
    let model = run.model.clone();
    run.model = update.apply(lr, &mut run.optimizer, model);
    if let Some(p) = &mut run.polyak {
        p.update(&run.model);
    }
    distributed::sums::merge(&mut run.state.partial, &job.sums);
    Ok(Ok((
        job.total,
        [job.allreduce_seconds, job.allreduce_busy_seconds],
    )))
}

/// Each classifier's loss by name, for the message about a non-finite loss.
fn non_finite_parts(heads: [Option<f64>; 3]) -> String {
    let names = ["main", "aux1", "aux2"];
    names
        .iter()
        .zip(heads)
        .filter_map(|(name, l)| l.map(|l| format!("{name} {l}")))
        .collect::<Vec<_>>()
        .join(", ")
}
