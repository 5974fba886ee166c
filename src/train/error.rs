//! Why a training run stopped with an error, each error saying what the run kept.

use std::path::Path;

use super::checkpoint::CheckpointError;
use super::config::ConfigError;
use super::curves::CurvesError;
use super::data_parallel::DataParallelError;
use super::distributed::DistributedError;
use super::output::OutputError;
use super::step::StepError;
use crate::data::DataError;
use crate::model::precision::PrecisionError;
use crate::model::summary::SummaryError;
use crate::weights::WeightsError;

/// Why a training run stopped with an error, with what it kept.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration is invalid or cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The output folder cannot be written to.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The output folder already holds a run that was not asked to be resumed.
    #[error(
        "{0} already holds a training run (config.json); continue it with --resume {0} or choose \
         another --out"
    )]
    AlreadyARun(String),
    /// The configuration does not fit the data (classes, image size) or its batch is too small.
    #[error("{0}")]
    Mismatch(String),
    /// The model cannot be built for the configuration.
    #[error(transparent)]
    Model(#[from] SummaryError),
    /// The initial weights cannot be read.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The training data cannot be read.
    #[error("reading training data: {0}")]
    Data(#[from] DataError),
    /// A checkpoint could not be written; what was kept is said.
    #[error("writing a checkpoint failed ({source}); {kept}")]
    Checkpoint {
        /// Why the checkpoint could not be written.
        #[source]
        source: CheckpointError,
        /// Which earlier checkpoint still holds the run, or that none does.
        kept: String,
    },
    /// The checkpoint to resume from could not be loaded.
    #[error("loading checkpoint: {0}")]
    Resume(CheckpointError),
    /// The loss became NaN or infinite; the run stops rather than train on it.
    #[error(
        "the loss became {value} at step {step} (epoch {epoch}, batch {batch}): {parts}. \
         Training stopped; {kept}. A lower --lr usually helps."
    )]
    NonFinite {
        /// The total loss.
        value: f64,
        /// The step whose loss it is, 1-based.
        step: u64,
        /// Its epoch, 1-based.
        epoch: usize,
        /// Its batch within the epoch, 1-based.
        batch: usize,
        /// The loss of each head (main and auxiliary classifiers).
        parts: String,
        /// Which checkpoint still holds the run, or that none does.
        kept: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The curves could not be drawn.
    #[error(transparent)]
    Curves(#[from] CurvesError),
    /// A data-parallel step failed.
    #[error(transparent)]
    DataParallel(#[from] DataParallelError),
    /// A training step failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The device cannot train in the precision asked for.
    #[error(transparent)]
    Precision(#[from] PrecisionError),
    /// The ranks of a distributed run could not agree or communicate.
    #[error(transparent)]
    Distributed(#[from] DistributedError),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}
