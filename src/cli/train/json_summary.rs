//! What `googlenet train --json` prints when a run ends.

use serde::Serialize;

use crate::device::DeviceSpec;
use crate::model::Variant;
use crate::model::precision::Precision;
use crate::train::step::TrainEngine;
use crate::train::{Outcome, Session, TrainConfig};

/// `train --json`'s output.
#[derive(Serialize)]
pub(super) struct Summary {
    /// `finished`, `interrupted` (Ctrl-C) or `max_steps`.
    outcome: &'static str,
    /// The epoch (1-based) the run stopped in, or the number of epochs when finished.
    epoch: usize,
    /// Optimiser steps of the whole run, resumed ones included.
    global_step: Option<u64>,
    checkpoint: Option<String>,
    devices: Vec<String>,
    precision: Precision,
    /// `fast` or `burn` (see `--engine`).
    engine: Option<TrainEngine>,
    batch: usize,
    variant: Variant,
    input_size: usize,
    /// Steps of this invocation and their images, seconds and losses.
    steps: u64,
    images: u64,
    seconds: f64,
    /// Training images/s of this invocation, its first step left out when there are others.
    images_per_second: f64,
    /// Steps averaged by `first_mean_loss` and `last_mean_loss`: a quarter, 1 to 10.
    window: usize,
    first_loss: Option<f64>,
    last_loss: Option<f64>,
    first_mean_loss: Option<f64>,
    last_mean_loss: Option<f64>,
    losses: Vec<f64>,
    /// Processes of the job (1 without MPI); each took its share of every batch.
    pub(super) world_size: usize,
    /// Each step's seconds waiting for the gradients' all-reduce over the ranks after its
    /// backward pass (empty on one process).
    allreduce_seconds: Vec<f64>,
    /// Each step's seconds of all-reduces, those hidden behind the backward pass included.
    allreduce_busy_seconds: Vec<f64>,
    /// Batches left out as too small for BatchNorm, and their images.
    dropped: crate::train::small_batch::Dropped,
}

impl Summary {
    pub(super) fn new(
        outcome: &Outcome,
        session: &Session,
        devices: &[DeviceSpec],
        precision: Precision,
        config: &TrainConfig,
    ) -> Summary {
        let (name, epoch, global_step, checkpoint) = match outcome {
            Outcome::Finished { epochs, .. } => ("finished", *epochs, None, None),
            Outcome::Interrupted {
                checkpoint,
                epoch,
                step,
                ..
            } => ("interrupted", *epoch, Some(*step), Some(checkpoint)),
            Outcome::ReachedMaxSteps {
                checkpoint,
                epoch,
                step,
                ..
            } => ("max_steps", *epoch, Some(*step), Some(checkpoint)),
        };
        Summary {
            outcome: name,
            epoch,
            global_step,
            checkpoint: checkpoint.map(|c| c.display().to_string()),
            devices: devices.iter().map(ToString::to_string).collect(),
            precision,
            engine: session.engine,
            batch: config.batch_size,
            variant: config.variant,
            input_size: config.input_size,
            steps: session.steps,
            images: session.images,
            seconds: session.seconds,
            images_per_second: session.images_per_second(),
            window: session.window(),
            first_loss: session.losses.first().copied(),
            last_loss: session.losses.last().copied(),
            first_mean_loss: session.first_mean_loss(),
            last_mean_loss: session.last_mean_loss(),
            losses: session.losses.clone(),
            world_size: 1,
            allreduce_seconds: session.allreduce_seconds.clone(),
            allreduce_busy_seconds: session.allreduce_busy_seconds.clone(),
            dropped: session.dropped,
        }
    }
}
