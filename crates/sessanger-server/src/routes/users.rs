//! `/v1/users/{user_id}/sessions`: all sessions of one user.

use axum::{Json, Router, routing::get};
use sessanger_core::{
    UserId,
    wire::{Deleted, ErrorBody, SessionBody, SessionList},
};

use crate::{
    AppState,
    auth::{Caller, Read, Write},
    error::ApiError,
    extract::PathId,
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/users/{user_id}/sessions", get(list_user_sessions).delete(revoke_user_sessions))
}

/// List a user's live sessions, oldest first.
#[utoipa::path(
    get, path = "/v1/users/{user_id}/sessions", tag = "users",
    params(("user_id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The user's sessions", body = SessionList),
        (status = 400, description = "`invalid_request`: not a valid user id", body = ErrorBody),
    )
)]
pub(crate) async fn list_user_sessions(
    caller: Caller<Read>,
    PathId(user): PathId<UserId>,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = caller.manager.list_user_sessions(&user).await?;
    Ok(Json(SessionList { sessions: sessions.into_iter().map(SessionBody::from).collect() }))
}

/// Delete every session of a user ("sign out everywhere").
#[utoipa::path(
    delete, path = "/v1/users/{user_id}/sessions", tag = "users",
    params(("user_id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "How many sessions were deleted", body = Deleted),
        (status = 400, description = "`invalid_request`: not a valid user id", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_user_sessions(
    caller: Caller<Write>,
    PathId(user): PathId<UserId>,
) -> Result<Json<Deleted>, ApiError> {
    Ok(Json(Deleted { deleted: caller.manager.delete_user_sessions(&user).await? }))
}
