//! What a training run does: the recipe's hyperparameters, any overrides, and the run's own
//! settings, saved as `OUT/config.json` so that a run can be resumed and reported exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::init::Init;
use super::loss::{LossKind, LossWeighting};
use super::schedule::Schedule;
use crate::model::Variant;

/// A named set of hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// Section 6 of the paper: SGD with momentum 0.9, learning rate decreased by 4% every 8
    /// epochs, auxiliary losses weighted 0.3 (section 5), Polyak averaging of the weights for the
    /// final model. The paper gives no base learning rate, weight decay, batch size or
    /// initialisation; the first three come from BVLC's Caffe GoogLeNet solver (0.01, 2e-4, 32),
    /// the initialisation is He's (`--init he`) so that training starts on small datasets.
    Paper,
    /// The seed's Keras settings: `SGD(learning_rate=0.01)` without momentum, one categorical
    /// cross-entropy applied to all three outputs with weight 1, 10 epochs, Keras' batch of 32,
    /// the variant's reference initialisation (glorot_uniform for `keras-seed`).
    Seed,
    /// BVLC's `quick_solver.prototxt`: base lr 0.01, "poly" policy with power 0.5, momentum 0.9,
    /// weight decay 2e-4, batch 32, auxiliary losses weighted 0.3 (`train_val.prototxt`), the
    /// variant's reference initialisation.
    CaffeQuick,
}

impl Recipe {
    /// The recipe's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Paper => "paper",
            Recipe::Seed => "seed",
            Recipe::CaffeQuick => "caffe-quick",
        }
    }
}

/// Every hyperparameter of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The ImageNet-layout folder trained on; `None` for the embedded synthetic shapes.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Which GoogLeNet is trained.
    pub variant: Variant,
    /// The recipe these settings came from.
    pub recipe: Recipe,
    /// Side of the square training and validation images.
    pub input_size: usize,
    /// Number of classes of the classifiers.
    pub num_classes: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Learning rate before the schedule acts.
    pub base_lr: f64,
    /// SGD momentum (0 = plain SGD). Dampening is always 0, as in PyTorch and Caffe.
    pub momentum: f64,
    /// L2 penalty added to the gradient of every parameter (PyTorch's `weight_decay`).
    pub weight_decay: f64,
    /// How the learning rate changes over the run (section 6: 4% less every 8 epochs).
    pub schedule: Schedule,
    /// The loss and the weight of the auxiliary classifiers' losses (0.3 in section 5).
    pub loss: LossWeighting,
    /// Decay of the exponential moving average of the weights that is evaluated and saved
    /// (Polyak averaging, section 6); `None` evaluates the raw weights.
    pub polyak_decay: Option<f64>,
    /// Dropout as the variant defines it; off only for comparisons with references made without.
    pub dropout: bool,
    /// Initial weights when no weight file is given (see [`Init`]).
    #[serde(default = "reference_init")]
    pub init: Init,
    /// Seeds the initial weights, the data order, the augmentation and dropout.
    pub seed: u64,
    /// Checkpoints kept besides the best one.
    pub keep_last: usize,
}

fn reference_init() -> Init {
    Init::Reference
}

/// Values that replace a recipe's; `None` keeps the recipe's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Replaces the number of epochs.
    pub epochs: Option<usize>,
    /// Replaces the batch size.
    pub batch_size: Option<usize>,
    /// Replaces the base learning rate.
    pub base_lr: Option<f64>,
    /// Replaces the momentum (0.9 in section 6).
    pub momentum: Option<f64>,
    /// Replaces the weight decay.
    pub weight_decay: Option<f64>,
    /// Replaces the learning-rate schedule.
    pub schedule: Option<Schedule>,
    /// Replaces the weight of each auxiliary loss (0.3 in section 5).
    pub aux_weight: Option<f64>,
    /// Replaces the kind of loss.
    pub loss_kind: Option<LossKind>,
    /// `Some(None)` switches averaging off.
    pub polyak_decay: Option<Option<f64>>,
    /// Replaces whether dropout is on.
    pub dropout: Option<bool>,
    /// Replaces the initialisation.
    pub init: Option<Init>,
    /// Replaces the seed.
    pub seed: Option<u64>,
    /// Replaces the number of checkpoints kept besides the best.
    pub keep_last: Option<usize>,
}

/// The default seed of every run.
pub const DEFAULT_SEED: u64 = 1234;

impl TrainConfig {
    /// The recipe's hyperparameters for `variant` at `input_size` with `num_classes` classes.
    pub fn recipe(
        recipe: Recipe,
        variant: Variant,
        input_size: usize,
        num_classes: usize,
    ) -> TrainConfig {
        let base = TrainConfig {
            data: None,
            variant,
            recipe,
            input_size,
            num_classes,
            epochs: 60,
            batch_size: 32,
            base_lr: 0.01,
            momentum: 0.9,
            weight_decay: 2e-4,
            schedule: Schedule::paper(),
            loss: LossWeighting::paper(),
            polyak_decay: Some(0.999),
            dropout: true,
            init: Init::He,
            seed: DEFAULT_SEED,
            keep_last: 3,
        };
        match recipe {
            Recipe::Paper => base,
            Recipe::Seed => TrainConfig {
                epochs: 10,
                momentum: 0.0,
                weight_decay: 0.0,
                schedule: Schedule::Constant,
                loss: LossWeighting::keras_seed(),
                polyak_decay: None,
                init: Init::Reference,
                ..base
            },
            Recipe::CaffeQuick => TrainConfig {
                schedule: Schedule::Poly { power: 0.5 },
                polyak_decay: None,
                init: Init::Reference,
                ..base
            },
        }
    }

    /// Replaces the values `overrides` sets.
    pub fn with_overrides(mut self, o: &Overrides) -> TrainConfig {
        self.epochs = o.epochs.unwrap_or(self.epochs);
        self.batch_size = o.batch_size.unwrap_or(self.batch_size);
        self.base_lr = o.base_lr.unwrap_or(self.base_lr);
        self.momentum = o.momentum.unwrap_or(self.momentum);
        self.weight_decay = o.weight_decay.unwrap_or(self.weight_decay);
        self.schedule = o.schedule.clone().unwrap_or(self.schedule);
        self.loss.aux = o.aux_weight.unwrap_or(self.loss.aux);
        self.loss.kind = o.loss_kind.unwrap_or(self.loss.kind);
        self.polyak_decay = o.polyak_decay.unwrap_or(self.polyak_decay);
        self.dropout = o.dropout.unwrap_or(self.dropout);
        self.init = o.init.unwrap_or(self.init);
        self.seed = o.seed.unwrap_or(self.seed);
        self.keep_last = o.keep_last.unwrap_or(self.keep_last);
        self
    }

    /// Says what is wrong with a configuration before any work starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, why: &str| Err(ConfigError::Invalid(format!("{what}: {why}")));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch size", "must be at least 1");
        }
        if !(self.base_lr.is_finite() && self.base_lr > 0.0) {
            return bad("learning rate", "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", "must be in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay", "must be zero or positive");
        }
        if !(self.loss.aux.is_finite() && self.loss.aux >= 0.0) {
            return bad("aux loss weight", "must be zero or positive");
        }
        if let Some(d) = self.polyak_decay
            && !(0.0..1.0).contains(&d)
        {
            return bad("Polyak decay", "must be in [0, 1)");
        }
        if self.num_classes < 2 {
            return bad("classes", "training needs at least 2 classes");
        }
        self.schedule.validate().map_err(ConfigError::Invalid)?;
        let min = crate::model::input_size::min_input_size(self.variant);
        if self.input_size < min {
            return bad(
                "input size",
                &format!(
                    "{} px is below the {} variant's minimum of {min} px",
                    self.input_size, self.variant
                ),
            );
        }
        Ok(())
    }

    /// The configuration as `key  value` lines, the way it is printed at the start of a run.
    pub fn describe(&self) -> String {
        let data = match &self.data {
            Some(root) => root.display().to_string(),
            None => "embedded synthetic shapes".to_string(),
        };
        let rows = [
            ("data", data),
            ("variant", self.variant.to_string()),
            ("recipe", self.recipe.name().to_string()),
            ("input size", format!("{} px", self.input_size)),
            ("classes", self.num_classes.to_string()),
            ("epochs", self.epochs.to_string()),
            ("batch size", self.batch_size.to_string()),
            (
                "learning rate",
                format!("{} ({})", self.base_lr, self.schedule),
            ),
            (
                "momentum",
                if self.momentum > 0.0 {
                    format!("{} (dampening 0)", self.momentum)
                } else {
                    "none".to_string()
                },
            ),
            ("weight decay", self.weight_decay.to_string()),
            ("loss", self.loss.to_string()),
            (
                "Polyak averaging",
                self.polyak_decay
                    .map_or("off".to_string(), |d| format!("EMA decay {d}")),
            ),
            (
                "dropout",
                if self.dropout { "on" } else { "off" }.to_string(),
            ),
            ("seed", self.seed.to_string()),
            (
                "keep checkpoints",
                format!("last {} + best", self.keep_last),
            ),
        ];
        rows.iter()
            .map(|(k, v)| format!("  {k:<18}{v}\n"))
            .collect()
    }

    /// Writes the configuration as pretty JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let json = serde_json::to_vec_pretty(self).expect("the configuration serialises");
        super::checkpoint::write_atomically(path, &json).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// Reads a configuration written as JSON, naming the file on error.
    pub fn load(path: &Path) -> Result<TrainConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

/// Why a training configuration is invalid or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The configuration file.
        path: String,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a training configuration.
    #[error("{path} is not a training configuration: {reason}")]
    Parse {
        /// The configuration file.
        path: String,
        /// What the parser reported.
        reason: String,
    },
}
