//! What every request handler shares: the settings, the metrics, and the model once it is loaded.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::ServeConfig;
use super::batcher::Batcher;
use super::error::ApiError;
use super::metrics::Metrics;
use super::model::ModelInfo;
use crate::data::ClassTable;

/// The loaded model behind its batching queue.
pub struct Ready {
    /// The queue the inference thread takes batches from.
    pub batcher: Batcher,
    /// The class names.
    pub classes: ClassTable,
    /// What `/v1/model` reports about the model.
    pub info: ModelInfo,
}

/// What every request handler shares: settings, metrics and, once loaded, the model.
pub struct AppState {
    /// The service's settings.
    pub config: ServeConfig,
    /// Prometheus counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Set once, when the model has loaded (`/readyz` answers 200 from then on).
    pub ready: OnceLock<Ready>,
    /// Images being decoded at once (a decoded image can be large; crops are small).
    pub decoding: Arc<Semaphore>,
}

impl AppState {
    /// The state before the model has loaded, with the decoding limit from `config.threads`.
    pub fn new(config: ServeConfig) -> Self {
        let decoders = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.threads
        };
        AppState {
            config,
            metrics: Arc::new(Metrics::new()),
            ready: OnceLock::new(),
            decoding: Arc::new(Semaphore::new(decoders)),
        }
    }

    /// The loaded model, or 503 while it is loading.
    pub fn model(&self) -> Result<&Ready, ApiError> {
        self.ready.get().ok_or_else(ApiError::not_ready)
    }

    /// Images admitted and not yet answered (0 while loading).
    pub fn queue_depth(&self) -> usize {
        self.ready.get().map_or(0, |ready| ready.batcher.depth())
    }
}
