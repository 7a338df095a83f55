//! What every request goes through on its way in and out: its deadline, its metrics and log
//! line, and `Cache-Control: no-store`.
//!
//! One middleware rather than three: axum wraps each route in every layer added to the router,
//! and a request clones each wrapping box on its way in, so every layer is paid per request
//! (the profile of a session read showed five such clones).

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{AppState, error::ApiError, metrics};

/// Runs the request under the server's timeout, then stamps and records its response.
///
/// - A handler that takes longer than `request_timeout` (body reading included) is dropped and
///   the client gets 503 `request_timeout`.
/// - Session data and service tokens must never sit in a shared cache; health and metrics are
///   live readings too, so every response says `no-store`.
/// - The metrics see every response, timeouts and fallbacks included.
pub(crate) async fn around_every_request(State(state): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    // The template (`/v1/sessions/{id}`), never the raw path: ids would make every session a
    // new time series, and unmatched paths are whatever a scanner invents.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = metrics::method_label(request.method());
    let started = Instant::now();
    let mut response = match tokio::time::timeout(state.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit = ?state.timeout, "request timed out");
            ApiError::Timeout.into_response()
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state.metrics.observe(route, method, started.elapsed(), &response);
    response
}

/// The middleware's share of [`AppState`], behind one `Arc`: axum clones it per request.
#[derive(Debug)]
pub(crate) struct Edge {
    timeout: std::time::Duration,
    metrics: metrics::Metrics,
}

impl Edge {
    pub(crate) fn new(state: &AppState) -> Arc<Edge> {
        Arc::new(Edge { timeout: state.options.request_timeout, metrics: state.metrics.clone() })
    }
}
