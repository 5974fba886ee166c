//! The routes: the page, health, metrics and model description, and classification; every other
//! path is a JSON 404. Layers, outermost first: CORS (only with `--cors`), metrics, the body
//! limit; the API key guards the `/v1` routes only.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use super::state::AppState;
use super::{auth, classify, metrics};

/// The web page: plain HTML and JavaScript, no external resources.
const PAGE: &str = include_str!("page.html");

/// The page may load nothing from elsewhere: scripts and styles are its own, images are the
/// user's own files.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src blob:; connect-src 'self'";

/// The service's routes on `state`: the page, classification, model information, health and
/// metrics.
pub fn router(state: Arc<AppState>) -> anyhow::Result<Router> {
    let max_body = usize::try_from(state.config.max_body).unwrap_or(usize::MAX);
    let inference = Router::new()
        .route("/v1/classify", post(classify::handler))
        .route("/v1/model", get(model))
        .route_layer(from_fn_with_state(state.clone(), auth::require_key));
    let mut router = Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::handler))
        .merge(inference)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(state.clone(), metrics::record));
    if let Some(origin) = &state.config.cors_origin {
        let origin = HeaderValue::from_str(origin)
            .map_err(|_| anyhow::anyhow!("--cors {origin:?} is not a valid origin"))?;
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list([origin]))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    Ok(router.with_state(state))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        PAGE,
    )
        .into_response()
}

/// Alive: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "alive"}))
}

/// Ready: the model is loaded and requests can be classified.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.model() {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn model(State(state): State<Arc<AppState>>) -> Response {
    match state.model() {
        Ok(ready) => Json(&ready.info).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {}: the routes are /, /healthz, /readyz, /metrics, /v1/model and POST /v1/classify",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
