//! The routes, one file per resource, and the middleware that belongs to routing.

use std::time::Duration;

use axum::{
    Router,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use sessanger_core::config::CompatConfig;

use crate::{AppState, compat, error::ApiError};

pub(crate) mod ops;
pub(crate) mod services;
pub(crate) mod sessions;
pub(crate) mod users;

/// Every route, the enabled compat APIs included, with JSON answers for unknown paths and
/// methods.
pub(crate) fn router(compat: &CompatConfig) -> Router<AppState> {
    Router::new()
        .merge(compat::routes(compat))
        .merge(sessions::routes())
        .merge(users::routes())
        .merge(services::routes())
        .merge(ops::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
}

/// Answers 503 `request_timeout` when the handler, body reading included, takes longer than
/// the limit; the handler's future is dropped.
pub(crate) async fn enforce_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            ApiError::Timeout.into_response()
        }
    }
}
