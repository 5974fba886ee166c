//! Where a run is: everything besides the weights and the optimiser's momentum that resuming
//! needs to continue exactly as if it had not stopped.

use serde::{Deserialize, Serialize};

use super::metrics::{EpochRecord, EpochSums};

/// The position and history of a run. The random state is not stored as such: the data order,
/// the augmentation and dropout are drawn from generators seeded by the run's seed and these
/// counters, so the counters are the random state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Index (0-based) of the epoch in progress, or of the next one when `batch` is 0.
    pub epoch: usize,
    /// Batches of `epoch` already trained on.
    pub batch: usize,
    /// Optimiser steps over the whole run.
    pub step: u64,
    /// Updates folded into the Polyak average.
    pub polyak_updates: u64,
    /// Training figures of the epoch in progress (empty at an epoch boundary).
    pub partial: EpochSums,
    /// Seconds spent training in the epoch in progress, for its images/s.
    pub partial_seconds: f64,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The best validation top-1 so far and its checkpoint's folder name.
    pub best: Option<Best>,
}

/// The best epoch so far by validation top-1, and its checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// 1-based.
    pub epoch: usize,
    /// Its validation top-1 accuracy.
    pub val_top1: f64,
    /// Name of its checkpoint folder.
    pub checkpoint: String,
}

impl TrainState {
    /// Whether the last finished epoch has the best validation top-1 so far, updating `best`.
    pub fn record_epoch(&mut self, record: EpochRecord, checkpoint: &str) -> bool {
        self.history.push(record);
        let top1 = record.val.main.top1;
        let better = top1.is_finite() && self.best.as_ref().is_none_or(|b| top1 > b.val_top1);
        if better {
            self.best = Some(Best {
                epoch: record.epoch,
                val_top1: top1,
                checkpoint: checkpoint.to_string(),
            });
        }
        better
    }
}
