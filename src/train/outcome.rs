//! How a training run ended without error: every epoch done, or stopped (on request or at the
//! step limit) with the checkpoint that continues it.

use std::path::PathBuf;

use super::state::Best;
#[cfg(doc)]
use super::trainer::TrainOptions;

/// How a run ended without error.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every epoch has run.
    Finished {
        /// The number of epochs trained.
        epochs: usize,
        /// The epoch with the best validation top-1, when a validation split was evaluated.
        best: Option<Best>,
        /// The evaluated weights (Polyak average when it is on) after the last epoch.
        model: PathBuf,
    },
    /// Stopped on request after a step; the checkpoint continues it.
    Interrupted {
        /// The checkpoint folder the run continues from (`--resume`).
        checkpoint: PathBuf,
        /// The epoch it continues in, 1-based.
        epoch: usize,
        /// The batches of that epoch already trained.
        batch: usize,
        /// The optimiser steps taken so far.
        step: u64,
    },
    /// Stopped after [`TrainOptions::max_steps`] steps; the checkpoint continues it.
    ReachedMaxSteps {
        /// The checkpoint folder the run continues from (`--resume`).
        checkpoint: PathBuf,
        /// The epoch it continues in, 1-based.
        epoch: usize,
        /// The batches of that epoch already trained.
        batch: usize,
        /// The optimiser steps taken so far.
        step: u64,
    },
}

impl Outcome {
    /// A run that stops before its last epoch, at `epoch`/`batch` (the next to train) after
    /// `step` steps: on request (Ctrl-C) or at [`TrainOptions::max_steps`].
    pub(super) fn stopped(
        interrupted: bool,
        checkpoint: PathBuf,
        epoch: usize,
        batch: usize,
        step: u64,
    ) -> Outcome {
        if interrupted {
            Outcome::Interrupted {
                checkpoint,
                epoch,
                batch,
                step,
            }
        } else {
            Outcome::ReachedMaxSteps {
                checkpoint,
                epoch,
                batch,
                step,
            }
        }
    }
}
