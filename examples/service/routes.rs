//! The lookup service's HTTP routes over a consumer: `GET /movies/{id}[?after=TOKEN]`,
//! `GET /health`, `GET /metrics`; with a Kafka topic, the write path `PUT /movies/{id}` and
//! `DELETE /movies/{id}`, which return a token to read after. (Shared by the service example
//! and its tests.)

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hollow::consumer::Consumer;
use hollow::movies::Movie;
use hollow_kafka::{ReadYourWrites, TopicWriter, WriteToken};
use metrics_exporter_prometheus::PrometheusHandle;

/// What the handlers share.
#[derive(Clone)]
pub struct Service {
    pub consumer: Arc<Consumer>,
    pub metrics: PrometheusHandle,
    /// The topic the dataset is materialized from, for the write path (none: read-only).
    pub writes: Option<TopicWriter>,
}

/// The longest a read waits for a write to become visible (`?after=`).
const READ_AFTER_WAIT: Duration = Duration::from_secs(5);

/// The routes.
pub fn router(service: Service) -> Router {
    Router::new()
        .route(
            "/movies/{id}",
            get(movie).put(put_movie).delete(delete_movie),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(service)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn movie_id(id: &str) -> Result<i64, String> {
    id.parse::<i64>()
        .map_err(|_| format!("movie id must be an integer, got {id:?}"))
}

/// Why a write is refused by a read-only service.
const READ_ONLY: &str =
    "this service is read-only: start it with --kafka BOOTSTRAP to accept writes";

/// The query of a read: `after`, a token a write returned.
#[derive(serde::Deserialize)]
pub struct ReadQuery {
    after: Option<String>,
}

/// The movie with primary key `id`, as JSON, from one consistent version (in the
/// `x-hollow-version` header). With `?after=TOKEN` (what a write returned), from a version that
/// contains that write: the read waits up to 5 s for it, then answers 504. 400 for an id that
/// is not a number or a bad token, 404 for a missing movie, 503 before the first version is
/// loaded.
async fn movie(
    State(s): State<Service>,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Response {
    metrics::counter!("hollow_service_requests_total", "route" => "movie").increment(1);
    let id = match movie_id(&id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let state = match query.after {
        None => s.consumer.current(),
        Some(token) => {
            let Some(writes) = &s.writes else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "?after= needs a service started with --kafka",
                );
            };
            let token: WriteToken = match token.parse() {
                Ok(t) => t,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let waited = s
                .consumer
                .wait_for_write(writes.topic(), token, READ_AFTER_WAIT)
                .await;
            if waited.is_none() {
                let served = s.consumer.offsets(writes.topic()).unwrap_or_default();
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("the write {token} is not visible after {READ_AFTER_WAIT:?} (served offsets: {served})"),
                );
            }
            waited
        }
    };
    let Some(state) = state else {
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

/// A write's answer: 202 with the token to read after (also in `x-hollow-write-token`).
fn written(token: WriteToken) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&token.to_string()) {
        headers.insert("x-hollow-write-token", v);
    }
    let body = Json(serde_json::json!({ "token": token.to_string() }));
    (StatusCode::ACCEPTED, headers, body).into_response()
}

/// Writes the movie (JSON body, its `id` the path's) to the topic; 202 with a token that a
/// read passes as `?after=` to see it. 400 for a body that is not a movie or another id, 502
/// when the broker does not take it.
async fn put_movie(
    State(s): State<Service>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    metrics::counter!("hollow_service_requests_total", "route" => "put_movie").increment(1);
    let Some(writer) = &s.writes else {
        return error(StatusCode::METHOD_NOT_ALLOWED, READ_ONLY);
    };
    let id = match movie_id(&id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let movie: Movie = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a movie: {e}")),
    };
    if movie.id != id {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the body's id {} is not the path's {id}", movie.id),
        );
    }
    match writer.send_json(&id.to_string(), Some(&movie)).await {
        Ok(token) => written(token),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// Deletes the movie: a tombstone to the topic; 202 with a token, as a put.
async fn delete_movie(State(s): State<Service>, Path(id): Path<String>) -> Response {
    metrics::counter!("hollow_service_requests_total", "route" => "delete_movie").increment(1);
    let Some(writer) = &s.writes else {
        return error(StatusCode::METHOD_NOT_ALLOWED, READ_ONLY);
    };
    let id = match movie_id(&id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match writer.send_json::<Movie>(&id.to_string(), None).await {
        Ok(token) => written(token),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
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
        "announced_epoch": h.announced_epoch,
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
