//! `googlenet serve`: an HTTP classification service (axum on tokio).
//!
//! - [`routes`]: the page, `/healthz`, `/readyz`, `/metrics`, `/v1/model`, `/v1/classify`.
//! - [`classify`]: reading raw or multipart images and answering as `classify --json` does.
//! - [`batcher`]: the bounded queue and the inference thread that runs dynamic batches.
//! - [`image_input`]: the pixel budget and the decode and crop of each image.
//! - [`model`]: the weights loaded once; [`network`]: the fast CPU engine, or burn's model on
//!   another device or precision.
//! - [`metrics`], [`auth`], [`error`]: Prometheus metrics, the API key, the JSON error reply.
//! - [`listener`]: connections, header timeouts and graceful shutdown.

pub mod auth;
pub mod batcher;
pub mod classify;
pub mod config;
pub mod error;
pub mod image_input;
pub mod listener;
pub mod metrics;
pub mod model;
pub mod network;
pub mod routes;
pub mod state;

pub use config::ServeConfig;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use batcher::{BatchSettings, Batcher};
use listener::ConnectionLimits;
use state::{AppState, Ready};

/// Runs the service until Ctrl-C or SIGTERM (or until the model fails to load).
pub fn run(config: ServeConfig) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("googlenet-http")
        .build()
        .context("starting the async runtime")?
        .block_on(serve(config))
}

/// Binds, then loads the model while already answering `/healthz` (and 503 on `/readyz`), then
/// serves. Prints `listening on http://ADDR` on stdout once bound.
pub async fn serve(config: ServeConfig) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    let limits = ConnectionLimits {
        header_timeout: config.header_timeout,
        max_connections: config.max_connections,
    };
    let state = Arc::new(AppState::new(config));
    let router = routes::router(state.clone())?;

    let (failed, load_failure) = oneshot::channel();
    let loading = state.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(err) = load(&loading) {
            let _ = failed.send(err);
        }
    });
    let mut load_error = None;
    let stop = async {
        tokio::select! {
            () = listener::shutdown_signal() => eprintln!("googlenet serve: shutting down"),
            Ok(err) = load_failure => load_error = Some(err),
        }
    };
    listener::serve(listener, router, limits, stop).await;
    match load_error {
        Some(err) => Err(err.context("loading the model")),
        None => Ok(()),
    }
}

fn load(state: &AppState) -> Result<()> {
    let config = &state.config;
    let loaded = model::load(config)?;
    let settings = BatchSettings {
        max_batch: config.max_batch,
        max_delay: config.max_delay,
        queue: config.queue,
        threads: config.threads,
    };
    let batcher = Batcher::start(loaded.net, settings, state.metrics.clone())
        .context("starting the inference thread")?;
    let info = loaded.info;
    eprintln!(
        "googlenet serve: ready: {} {} on {} in {} ({} classes, {}x{} crops, weights sha256 {})",
        info.name,
        info.variant,
        info.device,
        info.precision,
        info.classes,
        info.input_size,
        info.input_size,
        info.weights.sha256
    );
    let ready = Ready {
        batcher,
        classes: loaded.classes,
        info,
    };
    let _ = state.ready.set(ready);
    Ok(())
}
