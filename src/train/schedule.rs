//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

/// How the learning rate changes during training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// The base rate times `factor` once every `every_epochs` epochs (the paper, section 6:
    /// "decreasing the learning rate by 4% every 8 epochs").
    Step {
        /// Epochs between two decreases (8 in the paper).
        every_epochs: usize,
        /// What each decrease multiplies the rate by (0.96 in the paper).
        factor: f64,
    },
    /// Caffe's "poly" policy: `base * (1 - iteration / max_iterations) ^ power`, where
    /// `max_iterations` is the whole run.
    Poly {
        /// The exponent of the decay (0.5 in BVLC's `quick_solver.prototxt`).
        power: f64,
    },
    /// The base rate throughout (Keras' SGD without a schedule).
    Constant,
}

/// Where training is, as a schedule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Epochs completed before the current one (0-based index of the current epoch).
    pub epoch: usize,
    /// Optimiser steps completed before the current one, over the whole run.
    pub iteration: u64,
    /// Optimiser steps of the whole run.
    pub total_iterations: u64,
}

impl Schedule {
    /// The paper's schedule: 4% less every 8 epochs.
    pub fn paper() -> Schedule {
        Schedule::Step {
            every_epochs: 8,
            factor: 0.96,
        }
    }

    /// The learning rate of the step taken at `progress`.
    pub fn learning_rate(&self, base_lr: f64, progress: Progress) -> f64 {
        match *self {
            Schedule::Step {
                every_epochs,
                factor,
            } => base_lr * factor.powi((progress.epoch / every_epochs) as i32),
            Schedule::Poly { power } => {
                let done = progress.iteration as f64 / progress.total_iterations.max(1) as f64;
                base_lr * (1.0 - done.min(1.0)).powf(power)
            }
            Schedule::Constant => base_lr,
        }
    }

    /// Says why the schedule's settings are out of range, if they are.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Schedule::Step {
                every_epochs,
                factor,
            } => {
                if every_epochs == 0 {
                    return Err("step schedule: the step must be at least one epoch".into());
                }
                if !(factor.is_finite() && factor > 0.0) {
                    return Err("step schedule: the factor must be positive".into());
                }
            }
            Schedule::Poly { power } => {
                if !(power.is_finite() && power >= 0.0) {
                    return Err("poly schedule: the power must be zero or positive".into());
                }
            }
            Schedule::Constant => {}
        }
        Ok(())
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Step {
                every_epochs,
                factor,
            } => write!(f, "x{factor} every {every_epochs} epochs"),
            Schedule::Poly { power } => write!(f, "poly, power {power}"),
            Schedule::Constant => f.write_str("constant"),
        }
    }
}
