//! `POST /v1/classify`: one image as the raw body (an `image/*` content type), or one or more
//! `image` fields of a `multipart/form-data` form. The answer is what `googlenet classify --json`
//! prints for the same image and transform: one `{path, top}` object for a raw body, the list for
//! a form.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use super::image_input::prepare;
use super::state::AppState;
use crate::data::EvalTransform;
use crate::eval::predict::{Prediction, top_predictions};

/// The query string: `?top=K&resize=R&crop=C&name=N`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyQuery {
    /// Classes per image (default 5, as `classify --top`).
    top: Option<usize>,
    /// Shorter side after resizing (default: the server's --resize).
    resize: Option<u32>,
    /// Side of the center crop; only the server's --crop is available (the network is built
    /// for it).
    crop: Option<u32>,
    /// The `path` to answer with for a raw body (a form's file names are used for a form).
    name: Option<String>,
}

/// One image's answer, in the shape of one element of `classify --json`.
#[derive(Serialize)]
struct ImageResult {
    path: String,
    top: Vec<Prediction>,
}

/// One received image, with its place in the queue.
struct Upload {
    name: String,
    bytes: Bytes,
    place: OwnedSemaphorePermit,
}

enum Shape {
    Raw,
    Form,
}

/// `POST /v1/classify`: the top predictions for one image sent raw or for the images of a form upload, or an
/// [`ApiError`].
pub async fn handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match classify(state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn classify(state: Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let ready = state.model()?;
    let Query(query) = Query::<ClassifyQuery>::try_from_uri(request.uri())
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let config = &state.config;
    let top = query.top.unwrap_or(5);
    if top == 0 || top > ready.classes.len() {
        return Err(ApiError::bad_request(format!(
            "top={top}: ask for 1 to {} classes",
            ready.classes.len()
        )));
    }
    if let Some(crop) = query.crop.filter(|&c| c != config.crop) {
        return Err(ApiError::bad_request(format!(
            "crop={crop}: this server classifies {0}x{0} crops (the network is built for them; \
             start it with --crop {crop} for others)",
            config.crop
        )));
    }
    let transform = EvalTransform::new(query.resize.unwrap_or(config.resize), config.crop);
    let shape = request_shape(&request)?;
    if let Some(length) = declared_length(&request)
        && length > config.max_body
    {
        return Err(ApiError::body_too_large(config.max_body));
    }
    let first_place = ready.batcher.admit()?;
    let reading = async {
        match shape {
            Shape::Raw => {
                let name = query.name.clone().unwrap_or_else(|| "image".to_string());
                read_raw(request, config.max_body, name, first_place)
                    .await
                    .map(|upload| vec![upload])
            }
            Shape::Form => read_form(&state, request, first_place).await,
        }
    };
    let uploads = tokio::time::timeout(config.body_timeout, reading)
        .await
        .map_err(|_| body_timeout(config.body_timeout))??;
    let tasks: Vec<_> = uploads
        .into_iter()
        .map(|upload| {
            let state = state.clone();
            tokio::spawn(async move { classify_one(&state, upload, transform, top).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task
            .await
            .map_err(|err| ApiError::internal(format!("classifying an image failed: {err}")))?;
        results.push(result.map_err(|err| match shape {
            Shape::Raw => err,
            Shape::Form => ApiError {
                message: format!("image {}: {}", i + 1, err.message),
                ..err
            },
        })?);
    }
    Ok(match shape {
        Shape::Raw => Json(results.pop().expect("one image")).into_response(),
        Shape::Form => Json(results).into_response(),
    })
}

/// Decodes and crops one image off the runtime (a few at a time), then waits for its batch.
async fn classify_one(
    state: &AppState,
    upload: Upload,
    transform: EvalTransform,
    top: usize,
) -> Result<ImageResult, ApiError> {
    let ready = state.model()?;
    let max_pixels = state.config.max_image_pixels;
    let decoder = state
        .decoding
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("the decoders are closed"))?;
    let name = upload.name.clone();
    let bytes = upload.bytes;
    let image = tokio::task::spawn_blocking(move || {
        let image = prepare(&bytes, transform, max_pixels);
        drop(decoder);
        image
    })
    .await
    .map_err(|err| ApiError::internal(format!("decoding {name} failed: {err}")))?
    .map_err(|err| ApiError {
        message: format!("{name}: {}", err.message),
        ..err
    })?;
    let probs = ready.batcher.classify(image, upload.place).await?;
    Ok(ImageResult {
        path: upload.name,
        top: top_predictions(&probs, top, &ready.classes),
    })
}

/// Raw image bytes or a form, from the content type; anything else is 415.
fn request_shape(request: &Request) -> Result<Shape, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("image/") {
        Ok(Shape::Raw)
    } else if essence == "multipart/form-data" {
        Ok(Shape::Form)
    } else {
        let got = if content_type.is_empty() {
            "no Content-Type".to_string()
        } else {
            format!("Content-Type {content_type:?}")
        };
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "{got} is not accepted: send the image bytes with an image/* type \
                 (image/jpeg, image/png, ...) or multipart/form-data with `image` fields"
            ),
        ))
    }
}

fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn body_timeout(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {} s (--body-timeout)",
            limit.as_secs_f64()
        ),
    )
}

async fn read_raw(
    request: Request,
    max_body: u64,
    name: String,
    place: OwnedSemaphorePermit,
) -> Result<Upload, ApiError> {
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let body: Body = request.into_body();
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|err| {
            if err.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::body_too_large(max_body)
            } else {
                ApiError::bad_request(format!("the request body could not be read: {err}"))
            }
        })?
        .to_bytes();
    Ok(Upload { name, bytes, place })
}

async fn read_form(
    state: &AppState,
    request: Request,
    first_place: OwnedSemaphorePermit,
) -> Result<Vec<Upload>, ApiError> {
    let ready = state.model()?;
    let max_images = state.config.max_images;
    let max_body = state.config.max_body;
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let form_error = |err: axum::extract::multipart::MultipartError| {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large(max_body)
        } else {
            ApiError::bad_request(format!("the form could not be read: {}", err.body_text()))
        }
    };
    let mut first_place = Some(first_place);
    let mut uploads = Vec::new();
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        let field_name = field.name().unwrap_or("").to_string();
        if field_name != "image" {
            return Err(ApiError::bad_request(format!(
                "unexpected form field {field_name:?}: send each image in a field named \"image\""
            )));
        }
        if uploads.len() == max_images {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_images",
                format!("more than {max_images} images in one request (--max-images)"),
            ));
        }
        if let Some(kind) = field.content_type()
            && !kind.starts_with("image/")
            && kind != "application/octet-stream"
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "image {}: Content-Type {kind:?} is not an image type",
                    uploads.len() + 1
                ),
            ));
        }
        let place = match first_place.take() {
            Some(place) => place,
            None => ready.batcher.admit()?,
        };
        let name = field
            .file_name()
            .map_or_else(|| format!("image{}", uploads.len() + 1), str::to_string);
        let bytes = field.bytes().await.map_err(form_error)?;
        uploads.push(Upload { name, bytes, place });
    }
    if uploads.is_empty() {
        return Err(ApiError::bad_request(
            "the form has no \"image\" field".to_string(),
        ));
    }
    Ok(uploads)
}
