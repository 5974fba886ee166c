//! `GET /metrics`: Prometheus text exposition (the `prometheus-client` crate) of requests by
//! route and status, request latency, batch sizes, inference time, images classified (their
//! rate is the images/s) and the depth of the inference queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::error::ApiError;
use super::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

type LatencyFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

/// The service's counters, histograms and gauges, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    batch_size: Histogram,
    inference_seconds: Histogram,
    images: Counter,
    queue_depth: Gauge,
}

/// Request latency buckets: 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// Empty counters and histograms, registered under the `googlenet` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("googlenet");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's headers to its response, by route",
            latency.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "batch_size",
            "Images per network pass (dynamic batching)",
            batch_size.clone(),
        );
        let inference_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "inference_duration_seconds",
            "Time of one network pass over a batch",
            inference_seconds.clone(),
        );
        let images = Counter::default();
        registry.register(
            "images_classified",
            "Images run through the network (rate() of it is images/s)",
            images.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Images admitted and not yet answered (bounded by --queue)",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            batch_size,
            inference_seconds,
            images,
            queue_depth,
        }
    }

    /// One network pass over `images` images that took `took`.
    pub fn record_batch(&self, images: usize, took: Duration) {
        self.batch_size.observe(images as f64);
        self.inference_seconds.observe(took.as_secs_f64());
        self.images.inc_by(images as u64);
    }

    /// The exposition text, with the queue depth as it is now.
    pub fn render(&self, queue_depth: usize) -> Result<String, std::fmt::Error> {
        self.queue_depth.set(queue_depth as i64);
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: counts every response by route (the route's pattern, never the raw path) and
/// status, and times it.
pub async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn handler(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.render(state.queue_depth()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => ApiError::internal(format!("encoding the metrics: {err}")).into_response(),
    }
}
