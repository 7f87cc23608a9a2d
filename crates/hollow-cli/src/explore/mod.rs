//! `hollow explore`: a read-only web explorer of a dataset. It is a consumer: it follows new
//! announcements as they come; pages of other versions load them on demand (by deltas from
//! the live state where they lead there). Pages are rendered on the server, carry no script,
//! and are served with a Content-Security-Policy that allows none: record contents are
//! untrusted, and every text from them is escaped.

mod html;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hollow_consumer::{Consumer, ConsumerBuilder};
use hollow_core::{ReadState, StateId};
use serde::Deserialize;

use crate::dataset::Dataset;
use html::{escape, page};

/// States of other versions kept loaded.
const KEPT_VERSIONS: usize = 4;

/// What every page reads from.
struct Explorer {
    dataset: Dataset,
    consumer: Consumer,
    /// States of recent pages: other versions loaded on demand, and states with the hash
    /// indexes searches built.
    versions: Mutex<HashMap<StateId, ReadState>>,
}

/// An error page: a status and an escaped message.
struct PageError(StatusCode, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = page("Error", &format!("<p>{}</p>", escape(&self.1)));
        (self.0, headers(), body).into_response()
    }
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        PageError(StatusCode::BAD_REQUEST, format!("{e:#}"))
    }
}

impl From<hollow_core::Error> for PageError {
    fn from(e: hollow_core::Error) -> Self {
        let status = match e {
            hollow_core::Error::UnknownType(_) | hollow_core::Error::NoSuchOrdinal { .. } => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::BAD_REQUEST,
        };
        PageError(status, e.to_string())
    }
}

type PageResult = Result<Response, PageError>;

/// The headers of every page: HTML, no scripts, no framing, no sniffing.
fn headers() -> [(header::HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

fn respond(title: &str, body: &str) -> PageResult {
    Ok((headers(), page(title, body)).into_response())
}

/// Serves the explorer on `listen` until interrupted.
pub async fn serve(dataset: Dataset, listen: SocketAddr) -> anyhow::Result<()> {
    let consumer = ConsumerBuilder::from_blob_store(dataset.store.clone())
        .build()
        .await
        .context("following the announcement")?;
    let explorer = Arc::new(Explorer {
        dataset,
        consumer,
        versions: Mutex::new(HashMap::new()),
    });
    let app = pages::routes(explorer);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!(
        "hollow explorer on http://{} (read-only; Ctrl-C stops it)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The `v` query parameter: a version to look at instead of the live one.
#[derive(Deserialize, Default)]
struct At {
    v: Option<u64>,
}

impl At {
    /// The query string that keeps this version in links (`?v=40`, or nothing for live).
    fn query(&self) -> String {
        self.v.map(|v| format!("?v={v}")).unwrap_or_default()
    }
}

impl Explorer {
    /// The state to show: the live one, or version `v`. A state kept from an earlier page
    /// (with the hash indexes its searches built) is used again.
    async fn state(&self, at: &At) -> Result<ReadState, PageError> {
        let live = self.consumer.current();
        let target = match (at.v, &live) {
            (None, Some(s)) => s.id(),
            (None, None) => {
                let health = self.consumer.health();
                return Err(PageError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "no state loaded yet: {}",
                        health
                            .last_error
                            .unwrap_or_else(|| "nothing announced".into())
                    ),
                ));
            }
            (Some(v), Some(s)) if s.version() == v => s.id(),
            (Some(v), _) => {
                // A version kept from an earlier page needs no request to the store.
                if let Some(kept) = self.kept_version(v) {
                    return Ok(kept);
                }
                self.dataset
                    .resolve(Some(v))
                    .await
                    .map_err(|e| PageError(StatusCode::NOT_FOUND, format!("{e:#}")))?
            }
        };
        if let Some(s) = self.versions.lock().expect("versions").get(&target) {
            return Ok(s.clone());
        }
        let state = match live.filter(|s| s.id() == target) {
            Some(s) => (*s).clone(),
            None => {
                let live = self.consumer.current();
                self.dataset.load(live.as_deref(), target).await?.0
            }
        };
        self.keep(&state);
        Ok(state)
    }

    /// The kept state of version `v`, if a page loaded it.
    fn kept_version(&self, v: u64) -> Option<ReadState> {
        let kept = self.versions.lock().expect("versions");
        kept.values().find(|s| s.version() == v).cloned()
    }

    /// Keeps `state` for the next pages (replacing an earlier copy of the same state).
    fn keep(&self, state: &ReadState) {
        let mut kept = self.versions.lock().expect("versions");
        if kept.len() >= KEPT_VERSIONS && !kept.contains_key(&state.id()) {
            kept.clear();
        }
        kept.insert(state.id(), state.clone());
    }
}
