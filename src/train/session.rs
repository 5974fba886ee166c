//! What one invocation of the training loop did, step by step: the summary `googlenet train
//! --json` prints (a resumed run's session counts only the steps taken since it resumed).

use serde::Serialize;

use super::small_batch::Dropped;
use super::step::TrainEngine;

/// Steps, images, time and losses of the optimiser steps taken in this invocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Session {
    /// The code that ran the steps (`None` before the first).
    pub engine: Option<TrainEngine>,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Training images those steps saw.
    pub images: u64,
    /// Seconds of those steps (fetching and augmenting the batch, forward, backward, update;
    /// validation and checkpoints excluded).
    pub seconds: f64,
    /// The first step's images and seconds (on a GPU it compiles the kernels).
    pub first_step_images: u64,
    /// Seconds of the first step.
    pub first_step_seconds: f64,
    /// Each step's total training loss, in order.
    pub losses: Vec<f64>,
    /// Each step's seconds waiting for the gradients' all-reduce over the ranks of a distributed
    /// run after its backward pass (empty on one process).
    pub allreduce_seconds: Vec<f64>,
    /// Each step's seconds of the gradients' all-reduces, those hidden behind the backward pass
    /// included (the fast engine's buckets, [`super::distributed::buckets`]).
    pub allreduce_busy_seconds: Vec<f64>,
    /// Batches left out as too small to train on ([`super::small_batch`]).
    pub dropped: Dropped,
}

impl Session {
    /// Counts a step of `images` images that took `seconds` and had total loss `loss`.
    pub fn record(&mut self, images: usize, seconds: f64, loss: f64) {
        if self.steps == 0 {
            self.first_step_images = images as u64;
            self.first_step_seconds = seconds;
        }
        self.steps += 1;
        self.images += images as u64;
        self.seconds += seconds;
        self.losses.push(loss);
    }

    /// Training images per second, the first step left out when there are others (a GPU's
    /// first step includes compiling its kernels).
    pub fn images_per_second(&self) -> f64 {
        let (images, seconds) = if self.steps > 1 {
            (
                self.images - self.first_step_images,
                self.seconds - self.first_step_seconds,
            )
        } else {
            (self.images, self.seconds)
        };
        images as f64 / seconds.max(1e-9)
    }

    /// How many steps [`Session::first_mean_loss`] and [`Session::last_mean_loss`] average: a
    /// quarter of the steps, at most 10, at least 1.
    pub fn window(&self) -> usize {
        (self.losses.len() / 4).clamp(1, 10)
    }

    /// Mean loss of the first [`Session::window`] steps (`None` before any step).
    pub fn first_mean_loss(&self) -> Option<f64> {
        let w = self.window().min(self.losses.len());
        (w > 0).then(|| self.losses[..w].iter().sum::<f64>() / w as f64)
    }

    /// Mean loss of the last [`Session::window`] steps (`None` before any step).
    pub fn last_mean_loss(&self) -> Option<f64> {
        let n = self.losses.len();
        let w = self.window().min(n);
        (w > 0).then(|| self.losses[n - w..].iter().sum::<f64>() / w as f64)
    }
}
