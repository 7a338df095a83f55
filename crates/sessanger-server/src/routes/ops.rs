//! What operators and tooling read without a token: liveness, readiness, metrics, the API
//! description; and the answers for paths and methods no route serves.

use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use serde::Serialize;
use utoipa::ToSchema;

use sessanger_core::wire::ErrorBody;

use crate::{AppState, error::ApiError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(HEALTH_ROUTE, get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The liveness probe's path: `App` answers it ahead of the router too (`app.rs`).
pub(crate) const HEALTH_ROUTE: &str = "/healthz";

/// Liveness: the process answers. Never touches the store, so a store outage does not get the
/// process restarted.
#[utoipa::path(
    get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "Alive", body = Status))
)]
pub(crate) async fn healthz() -> impl IntoResponse {
    alive()
}

/// `/healthz`'s answer, routed or not.
pub(crate) fn alive() -> impl IntoResponse {
    // Written once: the answer never changes, and serialising it each time was a twentieth of
    // what a probe cost (callgrind).
    ([(header::CONTENT_TYPE, "application/json")], ALIVE)
}

/// `/healthz`'s answer, `Status { status: "ok" }` as JSON.
const ALIVE: &str = r#"{"status":"ok"}"#;

/// Readiness: the store answers a ping.
#[utoipa::path(
    get, path = "/readyz", tag = "ops", security(()),
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    // Any failure means "do not send traffic here", whatever its kind.
    state.manager.store().ping().await.map_err(ApiError::StoreUnavailable)?;
    Ok(Json(Status { status: "ready" }))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(stats) = state.manager.store().cache_stats() {
        state.metrics.observe_cache(&stats);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "The OpenAPI description of this API", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi())
}

/// Any path no route serves.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A path served, but not for this method (axum still sets `Allow`).
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_liveness_answer_is_the_status_it_documents() {
        assert_eq!(serde_json::to_string(&Status { status: "ok" }).unwrap(), ALIVE);
    }
}
