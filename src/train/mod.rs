//! Training GoogLeNet: the paper's recipe (section 6), the seed's Keras settings and BVLC's quick
//! solver, with resumable checkpoints, metrics and curves.

pub mod checkpoint;
pub mod checkpoint_schedule;
pub mod config;
pub mod curves;
pub mod data_parallel;
pub mod distributed;
pub mod error;
pub mod evaluate;
pub mod folders;
pub mod init;
pub mod loss;
pub mod metrics;
mod optimizer_record_check;
mod optimizer_step;
pub mod outcome;
pub mod output;
pub mod polyak;
mod progress;
mod run_outputs;
mod run_start;
pub mod schedule;
mod seeds;
pub mod session;
pub mod sgd;
pub mod small_batch;
pub mod source;
pub mod state;
pub mod step;
pub mod trainer;

pub use config::{Overrides, Recipe, TrainConfig};
pub use error::TrainError;
pub use outcome::Outcome;
pub use session::Session;
pub use source::{HostBatch, Split, Synthetic, TrainData};
pub use trainer::{TrainOptions, train, train_session};
