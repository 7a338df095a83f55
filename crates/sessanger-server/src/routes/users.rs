//! `/v1/users/{user_id}/sessions`: the sessions of one user, listed a page at a time or
//! revoked all at once.

use axum::{Json, Router, routing::get};
use sessanger_core::{
    Page, Position, UserId,
    wire::{Deleted, ErrorBody, SessionBody, SessionList},
};

use crate::{
    AppState,
    auth::{Caller, Read, Write},
    error::ApiError,
    extract::{Listing, PathId},
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/users/{user_id}/sessions", get(list_user_sessions).delete(revoke_user_sessions))
}

/// List a user's live sessions, oldest first, a page at a time.
#[utoipa::path(
    get, path = "/v1/users/{user_id}/sessions", tag = "users",
    params(
        ("user_id" = String, Path, description = "The user id"),
        ("limit" = Option<u32>, Query, description = "The most sessions in the page: 1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before; absent for the first"),
    ),
    responses(
        (status = 200, description = "One page of the user's sessions, and where the next starts", body = SessionList),
        (status = 400, description = "`invalid_request`: not a valid user id, limit or cursor", body = ErrorBody),
    )
)]
pub(crate) async fn list_user_sessions(
    caller: Caller<Read>,
    PathId(user): PathId<UserId>,
    Listing { after, limit }: Listing<Position>,
) -> Result<Json<SessionList>, ApiError> {
    let page = Page { after, limit };
    let sessions = caller.manager.list_user_sessions(&user, &page).await?;
    let next_cursor = page.next(&sessions).and_then(|next| next.after);
    Ok(Json(SessionList { sessions: sessions.into_iter().map(SessionBody::from).collect(), next_cursor }))
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
