//! The lookup service's HTTP routes over a consumer: `GET /movies/{id}`, `GET /health`,
//! `GET /metrics`. (Shared by the service example and its test.)

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hollow::consumer::Consumer;
use hollow::movies::Movie;
use metrics_exporter_prometheus::PrometheusHandle;

/// What the handlers share.
#[derive(Clone)]
pub struct Service {
    pub consumer: Arc<Consumer>,
    pub metrics: PrometheusHandle,
}

/// The routes.
pub fn router(service: Service) -> Router {
    Router::new()
        .route("/movies/{id}", get(movie))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(service)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The movie with primary key `id`, as JSON, from one consistent version (in the
/// `x-hollow-version` header). 400 for an id that is not a number, 404 for a missing movie, 503
/// before the first version is loaded.
async fn movie(State(s): State<Service>, Path(id): Path<String>) -> Response {
    metrics::counter!("hollow_service_requests_total", "route" => "movie").increment(1);
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("movie id must be an integer, got {id:?}"),
        );
    };
    let Some(state) = s.consumer.current() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no version loaded yet");
    };
    let found = state.find::<Movie, _>(&id);
    let mut headers = HeaderMap::new();
    headers.insert("x-hollow-version", HeaderValue::from(state.version()));
    match found {
        Ok(Some(movie)) => (headers, Json(movie)).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            headers,
            Json(serde_json::json!({ "error": format!("no movie {id}") })),
        )
            .into_response(),
    }
}

/// Current and announced versions, lag and the last error. 200 while a version is served and
/// the last refresh succeeded; 503 otherwise (nothing served yet, or the store, the
/// announcement or a blob is failing: `last_error` says which, with the path involved, and
/// `serving` whether lookups are still answered from the last good version).
async fn health(State(s): State<Service>) -> Response {
    let h = s.consumer.health();
    let body = Json(serde_json::json!({
        "serving": h.current.is_some(),
        "current_version": h.current,
        "announced_version": h.announced,
        "pinned_version": h.pinned,
        "versions_behind": h.versions_behind(),
        "last_error": h.last_error,
        "consecutive_failures": h.consecutive_failures,
    }));
    let status = if h.current.is_some() && h.last_error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// Every metric (consumer refreshes, requests...) in the Prometheus text format.
async fn metrics_text(State(s): State<Service>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
