//! `/v1/sessions/..` and `/v1/stats`: one session's life, from create to delete.

use std::{borrow::Cow, time::Duration};

use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, patch, post},
};
use serde::Deserialize;
use sessanger_core::{
    Device, NewSession, Patch, ServiceId, SessionId, SessionManager,
    wire::{CreateSession, ErrorBody, Regenerated, ReplaceSession, SessionBody, SessionScan, Stats},
};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Schema,
        schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type},
    },
};

use crate::{
    AppState,
    auth::{Caller, Read, Write},
    conditional::{IfMatch, IfNoneMatch},
    error::ApiError,
    extract::{JsonBody, Listing, PathId, Prefer},
    reply::{SessionReply, SharedAnswers, etag},
};

/// The route of one session, as the router names it (the metrics' `route` label); `App` serves
/// its reads ahead of the router.
pub(crate) const SESSION_ROUTE: &str = "/v1/sessions/{id}";

/// What the path of one session starts with: [`SESSION_ROUTE`] up to its parameter.
pub(crate) const SESSION_PATH_PREFIX: &str = "/v1/sessions/";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(create_session).get(list_sessions))
        .route(SESSION_ROUTE, get(get_session).put(replace_session).delete(delete_session))
        .route("/v1/sessions/{id}/attributes", patch(patch_attributes))
        .route("/v1/sessions/{id}/refresh", post(refresh_session))
        .route("/v1/sessions/{id}/regenerate", post(regenerate_session))
        .route("/v1/stats", get(stats))
}

/// Create a session. The device fields describe the end user's device as the calling service
/// saw it; they are never taken from this request, whose client is the service, not a browser.
#[utoipa::path(
    post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses(
        (status = 201, description = "The new session", body = SessionBody,
            headers(
                ("ETag" = String, description = "The session's version, for If-Match"),
                ("Location" = String, description = "`/v1/sessions/{id}`"),
            )),
        (status = 400, description = "`invalid_request` (also: a chosen `session_id` without the user's shard tag)", body = ErrorBody),
        (status = 409, description = "`too_many_sessions`: the user is at the session limit; `session_id_taken`: a live session has the chosen id", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 1 MiB; `session_too_large`: the \
            session would pass its cap (attributes or bytes), and nothing was written", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_patch`: a key or value breaks a size limit; `deadline_passed`: \
            `absolute_expires_at` is not in the future", body = ErrorBody),
    )
)]
pub(crate) async fn create_session(
    caller: Caller<Write>,
    State(answers): State<SharedAnswers>,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<SessionReply, ApiError> {
    if body.ttl_secs == Some(0) {
        return Err(ApiError::InvalidRequest("ttl_secs must be at least 1".into()));
    }
    let new = NewSession {
        device: Device { device_id: body.device_id, ip: body.ip, user_agent: body.user_agent },
        attributes: body.attributes,
        ttl: body.ttl_secs.map(Duration::from_secs),
        absolute_expires_at: body.absolute_expires_at,
    };
    let session = match &body.session_id {
        Some(id) => caller.manager.create_session_with_id(id, &body.user_id, new).await?,
        None => caller.manager.create_session(&body.user_id, new).await?,
    };
    Ok(SessionReply::created(session).reusing(answers))
}

/// The most store pages one `GET /v1/sessions` reads looking for sessions of the asked
/// creator: a request's work stays bounded however few sessions match.
const SCAN_PAGES: usize = 8;

/// The query of `GET /v1/sessions` beside `limit` and `cursor`.
#[derive(Debug, Deserialize)]
pub(crate) struct ScanQuery {
    created_by: Option<String>,
}

/// List every live session, a page at a time, in the store's own order; with `created_by`,
/// only those that service created (an app's own sessions, as an express-session store's
/// `all` lists them). For tools and rare listings, not per request: on Redis a page also
/// reads the live entries of the shards it visits.
#[utoipa::path(
    get, path = "/v1/sessions", tag = "sessions",
    params(
        ("limit" = Option<u32>, Query, description = "The most sessions in the page: 1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before; absent for the first"),
        ("created_by" = Option<String>, Query, description = "Only the sessions this service created"),
    ),
    responses(
        (status = 200, description = "One page of sessions, and where the next starts", body = SessionScan),
        (status = 400, description = "`invalid_request`: not a valid limit, cursor or service id", body = ErrorBody),
    )
)]
pub(crate) async fn list_sessions(
    caller: Caller<Read>,
    Listing { after, limit }: Listing<SessionId>,
    query: Result<Query<ScanQuery>, QueryRejection>,
) -> Result<Json<SessionScan>, ApiError> {
    let Query(query) = query?;
    let creator = query
        .created_by
        .map(|id| id.parse::<ServiceId>())
        .transpose()
        .map_err(|e| ApiError::InvalidRequest(format!("created_by: {e}")))?;
    let wanted = limit.get() as usize;
    let (mut sessions, mut cursor) = (Vec::new(), after);
    for _ in 0..SCAN_PAGES {
        let page = caller.manager.scan_sessions(cursor.as_ref(), limit).await?;
        let complete = page.len() < wanted;
        cursor = page.last().map(|s| s.id.clone()).or(cursor);
        for session in page {
            if creator.as_ref().is_none_or(|c| session.created_by.as_ref() == Some(c)) {
                let id = session.id.clone();
                sessions.push(SessionBody::from(session));
                if sessions.len() == wanted {
                    // The page is full here: the next one starts after this session.
                    return Ok(Json(SessionScan { sessions, next_cursor: Some(id) }));
                }
            }
        }
        if complete {
            return Ok(Json(SessionScan { sessions, next_cursor: None }));
        }
    }
    Ok(Json(SessionScan { sessions, next_cursor: cursor }))
}

/// Read a session.
#[utoipa::path(
    get, path = "/v1/sessions/{id}", tag = "sessions",
    params(
        ("id" = String, Path, description = "The session id"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds (`\"7\"`, `W/\"7\"`, `*`): 304 if one is current"),
    ),
    responses(
        (status = 200, description = "The session", body = SessionBody,
            headers(("ETag" = String, description = "The session's version, for If-Match"))),
        (status = 304, description = "The client's copy is current (`If-None-Match`)",
            headers(("ETag" = String, description = "The session's version"))),
        (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody),
    )
)]
pub(crate) async fn get_session(
    caller: Caller<Read>,
    State(answers): State<SharedAnswers>,
    PathId(id): PathId<SessionId>,
    if_none_match: IfNoneMatch,
) -> Result<SessionReply, ApiError> {
    read_session(&caller.manager, answers, &id, &if_none_match).await
}

/// The answer to `GET /v1/sessions/{id}`, once the caller is known: the route's handler, and
/// `App`, which serves this route ahead of the router (`app.rs`).
pub(crate) async fn read_session(
    manager: &SessionManager,
    answers: SharedAnswers,
    id: &SessionId,
    if_none_match: &IfNoneMatch,
) -> Result<SessionReply, ApiError> {
    let session = manager.get_session(id).await?;
    if if_none_match.holds(session.version) {
        return Ok(SessionReply::not_modified(session));
    }
    Ok(SessionReply::ok(session).reusing(answers))
}

/// The body of `PATCH /v1/sessions/{id}/attributes`: exactly the core [`Patch`], which is what
/// clients send, so the two cannot drift; only its schema is written out here.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct PatchBody(Patch);

impl PartialSchema for PatchBody {
    fn schema() -> RefOr<Schema> {
        let keys = ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
        let integers = ObjectBuilder::new().additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
            ObjectBuilder::new().schema_type(Type::Integer).build().into(),
        ))));
        ObjectBuilder::new()
            .description(Some(
                "Attribute changes, applied in one atomic step; a key may appear in only one of the three.",
            ))
            .property(
                "set",
                ObjectBuilder::new()
                    .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
                    .description(Some("Keys to set, with their new values (any JSON).")),
            )
            .property("remove", keys.description(Some("Keys to remove; absent keys are ignored.")))
            .property("incr", integers.description(Some("Integers to add; an absent key counts from 0.")))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .build()
            .into()
    }
}

impl ToSchema for PatchBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Patch")
    }
}

/// Change some attributes atomically.
///
/// Keys the patch does not name are never touched, so concurrent patches of different keys
/// never lose each other's writes. With `If-Match`, applies only to that version.
#[utoipa::path(
    patch, path = "/v1/sessions/{id}/attributes", tag = "sessions", request_body = PatchBody,
    params(
        ("id" = String, Path, description = "The session id"),
        ("If-Match" = Option<String>, Header, description = "Apply only at one of these versions (`\"7\"`, `\"7\", \"8\"`, `*`); weak tags never match"),
        ("Prefer" = Option<String>, Header, description = "`return=minimal`: answer 204 with the ETag, no body"),
    ),
    responses(
        (status = 200, description = "The changed session", body = SessionBody,
            headers(("ETag" = String, description = "The session's new version"))),
        (status = 204, description = "Changed; `Prefer: return=minimal` asked for no body",
            headers(("ETag" = String, description = "The session's new version"))),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody),
        (status = 412, description = "`version_mismatch`: the session changed since that version", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 1 MiB; `session_too_large`: the \
            session would pass its cap (attributes or bytes), and nothing was written", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_patch`, or `not_an_integer` for an increment", body = ErrorBody),
    )
)]
pub(crate) async fn patch_attributes(
    caller: Caller<Write>,
    State(answers): State<SharedAnswers>,
    PathId(id): PathId<SessionId>,
    if_match: IfMatch,
    prefer: Prefer,
    JsonBody(PatchBody(patch)): JsonBody<PatchBody>,
) -> Result<SessionReply, ApiError> {
    let session = match if_match.single() {
        Some(expected) => caller.manager.patch_session(&id, &patch, expected).await?,
        None => if_match.write(|expected| caller.manager.patch_session(&id, &patch, Some(expected))).await?,
    };
    Ok(SessionReply::changed(session, prefer).reusing(answers))
}

/// Replace attributes and device, only at the version in `If-Match` (sa-token's
/// `update_session`).
#[utoipa::path(
    put, path = "/v1/sessions/{id}", tag = "sessions", request_body = ReplaceSession,
    params(
        ("id" = String, Path, description = "The session id"),
        ("If-Match" = String, Header, description = "The versions it may replace (`\"7\"`, a list, or `*`); weak tags never match"),
        ("Prefer" = Option<String>, Header, description = "`return=minimal`: answer 204 with the ETag, no body"),
    ),
    responses(
        (status = 200, description = "The replaced session", body = SessionBody,
            headers(("ETag" = String, description = "The session's new version"))),
        (status = 204, description = "Replaced; `Prefer: return=minimal` asked for no body",
            headers(("ETag" = String, description = "The session's new version"))),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody),
        (status = 412, description = "`version_mismatch`: the session changed since that version", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 1 MiB; `session_too_large`: the \
            session would pass its cap (attributes or bytes), and nothing was written", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_patch`: a key or value breaks a size limit; `deadline_passed`: \
            `absolute_expires_at` is not in the future", body = ErrorBody),
        (status = 428, description = "`precondition_required`: no If-Match", body = ErrorBody),
    )
)]
pub(crate) async fn replace_session(
    caller: Caller<Write>,
    State(answers): State<SharedAnswers>,
    PathId(id): PathId<SessionId>,
    if_match: IfMatch,
    prefer: Prefer,
    JsonBody(body): JsonBody<ReplaceSession>,
) -> Result<SessionReply, ApiError> {
    // Without the header a client could lose, unknowingly, whatever another writer changed;
    // `*` says it means to overwrite any version.
    if !if_match.is_present() {
        return Err(ApiError::PreconditionRequired);
    }
    let session = if_match.write(|expected| caller.manager.replace_session(&id, body.replacement(expected))).await?;
    Ok(SessionReply::changed(session, prefer).reusing(answers))
}

/// Renew a session's idle deadline (never past its absolute one).
#[utoipa::path(
    post, path = "/v1/sessions/{id}/refresh", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 200, description = "The refreshed session", body = SessionBody,
            headers(("ETag" = String, description = "The session's version"))),
        (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody),
    )
)]
pub(crate) async fn refresh_session(
    caller: Caller<Write>,
    State(answers): State<SharedAnswers>,
    PathId(id): PathId<SessionId>,
) -> Result<SessionReply, ApiError> {
    Ok(SessionReply::ok(caller.manager.refresh_session(&id).await?).reusing(answers))
}

/// Move a session to a fresh id (do it at login, against session fixation); the old id stops
/// working at once.
#[utoipa::path(
    post, path = "/v1/sessions/{id}/regenerate", tag = "sessions",
    params(("id" = String, Path, description = "The session's current id")),
    responses(
        (status = 200, description = "The new id and the session", body = Regenerated,
            headers(("ETag" = String, description = "The session's new version"))),
        (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody),
    )
)]
pub(crate) async fn regenerate_session(
    caller: Caller<Write>,
    PathId(id): PathId<SessionId>,
) -> Result<impl IntoResponse, ApiError> {
    let session = caller.manager.regenerate_id(&id).await?;
    let etag = etag(session.version);
    let body = Regenerated { session_id: session.id.clone(), session: session.into() };
    Ok(([(header::ETAG, etag)], Json(body)))
}

/// Delete a session (a logout).
#[utoipa::path(
    delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody),
    )
)]
pub(crate) async fn delete_session(
    caller: Caller<Write>,
    PathId(id): PathId<SessionId>,
) -> Result<StatusCode, ApiError> {
    caller.manager.delete_session(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Count live sessions.
#[utoipa::path(get, path = "/v1/stats", tag = "sessions", responses((status = 200, description = "Counts", body = Stats)))]
pub(crate) async fn stats(caller: Caller<Read>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(Stats { active_sessions: caller.manager.count_active().await? }))
}
