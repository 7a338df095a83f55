//! back-session's API under `/a01`, as its Go original answers it.
//!
//! The original kept a session as a Redis hash of strings: `user_id`, `device_id`,
//! `auth_code`, `access_token`, `refresh_token`, `user_email`, `create_date`, `update_date`.
//! Here `device_id` is the session's device, the tokens and `user_email` (and the README's
//! `exiration_time`, which the original dropped) are attributes, and the dates are the
//! session's own. Statuses are the original's: 400 for a create without `user_id` and for
//! every failed update, 422 for an undecodable update, 404 for an unknown session on read
//! and delete. The original answered errors with an empty body; here they carry the native
//! JSON error.
//!
//! Extensions the README promised and the original never served: `PATCH /a01/session/{id}`,
//! `GET`/`DELETE /a01/session?user_id=`, and `DELETE /a01/session/user/{user_id}`.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sessanger_core::{
    Attributes, Device, NewSession, Patch, PatchOptions, Permission, Session, SessionId, SessionManager, Timestamp,
    UserId,
    wire::{Deleted, ErrorBody},
};

use super::{CompatError, Gate, LooseJson, NativeShape, session_id};
use crate::{AppState, error::ApiError, extract::PathId};

type Error = CompatError<NativeShape>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/a01/session", post(create).patch(update_named_in_body).get(list_by_query).delete(revoke_by_query))
        .route("/a01/session/{id}", get(read).patch(update_at_path).delete(remove))
        .route("/a01/session/user/{user_id}", get(list_user).delete(revoke_user))
}

/// The manager for a request that needs `permission`.
async fn admit(state: &AppState, headers: &HeaderMap, permission: Permission) -> Result<SessionManager, Error> {
    let config = &state.options.compat.back_session;
    let gate = Gate { auth: config.auth, service: &config.service, permissions: &config.permissions, api_key: None };
    Ok(gate.admit(state, headers, None, permission).await?)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(message.into())
}

/// The body of `POST /a01/session`: back-session's attributes, spelling included. Unknown keys
/// are ignored, as the original's decoder did.
#[derive(Debug, Deserialize)]
pub(crate) struct NewSessionBody {
    user_id: Option<String>,
    device_id: Option<String>,
    auth_code: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    user_email: Option<String>,
    /// The README's "expiration time in seconds for the access token"; kept as sent.
    exiration_time: Option<Value>,
}

/// The attributes kept as strings, in the original's order.
const TEXT_ATTRIBUTES: [&str; 4] = ["auth_code", "access_token", "refresh_token", "user_email"];

/// The fields `GET` names; every other attribute follows them.
const SHOWN: [&str; 7] =
    ["user_id", "device_id", "auth_code", "access_token", "refresh_token", "user_email", "exiration_time"];

/// Creates a session: 200 `{"session_id"}`, or 400 without a `user_id`.
#[utoipa::path(
    post, path = "/a01/session", tag = "back-session (compat)", operation_id = "back_session_create", security((), ("bearer" = [])),
    request_body(content = Object, description = "`user_id` (required), `device_id`, `auth_code`, `access_token`, `refresh_token`, `user_email`, `exiration_time`; any Content-Type"),
    responses((status = 200, description = "`{\"session_id\"}`", body = Object), (status = 400, description = "`invalid_request`: no `user_id`", body = ErrorBody)),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    LooseJson(body): LooseJson<NewSessionBody>,
) -> Result<Json<Value>, Error> {
    let manager = admit(&state, &headers, Permission::Write).await?;
    let body = body.ok_or_else(|| invalid("the body must be a JSON object with a user_id"))?;
    let user = body.user_id.filter(|user| !user.is_empty()).ok_or_else(|| invalid("user_id is required"))?;
    let user: UserId = user.parse().map_err(|e: sessanger_core::IdError| invalid(e.to_string()))?;
    let texts = [body.auth_code, body.access_token, body.refresh_token, body.user_email];
    let mut attributes: Attributes =
        TEXT_ATTRIBUTES.iter().zip(texts).filter_map(|(key, value)| Some(((*key).to_owned(), value?.into()))).collect();
    match body.exiration_time {
        None | Some(Value::Null) => {}
        Some(seconds @ (Value::Number(_) | Value::String(_))) => {
            attributes.insert("exiration_time".into(), seconds);
        }
        Some(_) => return Err(invalid("exiration_time must be a number of seconds").into()),
    }
    let new = NewSession {
        device: Device { device_id: body.device_id, ..Device::default() },
        attributes,
        ttl: state.options.compat.back_session.session_ttl,
        ..NewSession::default()
    };
    let session = manager.create_session(&user, new).await?;
    Ok(Json(serde_json::json!({ "session_id": session.id })))
}

/// A session as the original's `GET /session/{id}` shows it: every field a string, empty when
/// unset.
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    user_id: String,
    device_id: String,
    auth_code: String,
    access_token: String,
    refresh_token: String,
    user_email: String,
    /// Only when set: the original never returned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    exiration_time: Option<Value>,
    /// Every other attribute, as the original's hash kept any field an update set: as text.
    #[serde(flatten)]
    other: BTreeMap<String, String>,
}

/// An attribute as the original's string hash held it: strings as they are, other JSON as
/// its text, absent as empty.
fn text(attributes: &Attributes, key: &str) -> String {
    match attributes.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// One named field of the original's hash, read from a session.
fn field(session: &Session, key: &str) -> String {
    match key {
        "user_id" => session.user_id.to_string(),
        "device_id" => session.device.device_id.clone().unwrap_or_default(),
        _ => text(&session.attributes, key),
    }
}

/// Reads a session: 200 with its attributes, 404 when unknown.
#[utoipa::path(
    get, path = "/a01/session/{id}", tag = "back-session (compat)", operation_id = "back_session_read", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, description = "Every field as text: `user_id`, `device_id`, the tokens, `user_email`, and any other attribute", body = Object), (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody)),
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathId(id): PathId<SessionId>,
) -> Result<Json<SessionView>, Error> {
    let manager = admit(&state, &headers, Permission::Read).await?;
    let session = manager.get_session(&id).await?;
    let [auth_code, access_token, refresh_token, user_email] = TEXT_ATTRIBUTES.map(|key| field(&session, key));
    Ok(Json(SessionView {
        user_id: field(&session, "user_id"),
        device_id: field(&session, "device_id"),
        auth_code,
        access_token,
        refresh_token,
        user_email,
        exiration_time: session.attributes.get("exiration_time").filter(|v| !v.is_null()).cloned(),
        other: session
            .attributes
            .keys()
            .filter(|key| !SHOWN.contains(&key.as_str()))
            .map(|key| (key.clone(), text(&session.attributes, key)))
            .collect(),
    }))
}

/// The body of an update: the session (unless the path names it) and the attributes to set.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateBody {
    session_id: Option<String>,
    #[serde(default)]
    session_attributes: BTreeMap<String, String>,
}

/// `PATCH /a01/session`, the original's update: the session is named in the body.
#[utoipa::path(
    patch, path = "/a01/session", tag = "back-session (compat)", operation_id = "back_session_update_named_in_body", security((), ("bearer" = [])),
    request_body(content = Object, description = "`{\"session_id\": …, \"session_attributes\": {\"key\": \"text\", …}}`; any key is kept"),
    responses((status = 200, description = "The keys set, read back", body = Object), (status = 400, description = "`invalid_request`: no session id or attributes, an unknown session, a wrong `user_id`", body = ErrorBody), (status = 413, description = "`session_too_large`: the session would pass its cap", body = ErrorBody), (status = 422, description = "`invalid_request`: the body cannot be decoded", body = ErrorBody)),
)]
pub(crate) async fn update_named_in_body(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<LooseJson<UpdateBody>, ApiError>,
) -> Result<Json<BTreeMap<String, String>>, Error> {
    let manager = admit(&state, &headers, Permission::Write).await?;
    let body = decoded(body)?;
    let id = body.session_id.as_deref().filter(|id| !id.is_empty());
    let id = id.ok_or_else(|| invalid("Payload does not contain a session id"))?.to_owned();
    update(&manager, &id, body.session_attributes).await
}

/// `PATCH /a01/session/{id}`, as the README documents the update.
#[utoipa::path(
    patch, path = "/a01/session/{id}", tag = "back-session (compat)", operation_id = "back_session_update_at_path", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The session id")),
    request_body(content = Object, description = "`{\"session_attributes\": {\"key\": \"text\", …}}`; any key is kept"),
    responses((status = 200, description = "The keys set, read back", body = Object), (status = 400, description = "`invalid_request`", body = ErrorBody), (status = 413, description = "`session_too_large`: the session would pass its cap", body = ErrorBody), (status = 422, description = "`invalid_request`: the body cannot be decoded", body = ErrorBody)),
)]
pub(crate) async fn update_at_path(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathId(id): PathId<SessionId>,
    body: Result<LooseJson<UpdateBody>, ApiError>,
) -> Result<Json<BTreeMap<String, String>>, Error> {
    let manager = admit(&state, &headers, Permission::Write).await?;
    let body = decoded(body)?;
    if body.session_id.as_deref().is_some_and(|named| !named.is_empty() && named != id.as_ref()) {
        return Err(invalid("the body's session_id is not the one in the path").into());
    }
    update(&manager, id.as_ref(), body.session_attributes).await
}

/// An update's body; one that cannot be decoded is 422, as in the original.
fn decoded(body: Result<LooseJson<UpdateBody>, ApiError>) -> Result<UpdateBody, Error> {
    match body {
        Ok(LooseJson(Some(body))) => Ok(body),
        Ok(LooseJson(None)) => {
            Err(CompatError::with_status(StatusCode::UNPROCESSABLE_ENTITY, invalid("the body is empty")))
        }
        Err(error @ ApiError::InvalidRequest(_)) => {
            Err(CompatError::with_status(StatusCode::UNPROCESSABLE_ENTITY, error))
        }
        Err(error) => Err(error.into()),
    }
}

/// Sets the given attributes only, and answers them with their stored values. Any key is
/// kept, as the original's hash kept any field. `user_id` may be sent but must match the
/// session's (it is never changed); every failure the client caused is 400, as the original
/// answered any failed update, but a write past the session cap (413 `session_too_large`). The write counts as use: it moves `update_date`.
///
/// Attributes and a `device_id` (the session's device, not an attribute) change in one atomic
/// store step, so concurrent updates of one session never fail for one another.
async fn update(
    manager: &SessionManager,
    id: &str,
    changes: BTreeMap<String, String>,
) -> Result<Json<BTreeMap<String, String>>, Error> {
    if changes.is_empty() {
        return Err(invalid("Payload does not contain session attributes to set").into());
    }
    // A write past the session cap keeps its 413: a client must tell "too large" apart.
    let as_400 = |error: ApiError| {
        if error.status().is_client_error() && error.status() != StatusCode::PAYLOAD_TOO_LARGE {
            CompatError::with_status(StatusCode::BAD_REQUEST, error)
        } else {
            error.into()
        }
    };
    let id = session_id(id).map_err(as_400)?;
    // A session's user never changes, so one read decides this check for good.
    if let Some(user) = changes.get("user_id") {
        let session = manager.get_session(&id).await.map_err(|e| as_400(e.into()))?;
        if user != session.user_id.as_ref() {
            return Err(as_400(invalid(format!("user_id \"{user}\" does not match the session's user"))));
        }
    }
    let mut patch = Patch::default();
    for (key, value) in &changes {
        if !matches!(key.as_str(), "user_id" | "device_id") {
            patch = patch.set(key.clone(), Value::String(value.clone()));
        }
    }
    let device = changes.get("device_id").map(|id| Device { device_id: Some(id.clone()), ..Device::default() });
    let options = PatchOptions::new().with_touch(true).with_device(device.as_ref());
    let session = manager.patch_session_with(&id, &patch, options).await.map_err(|error| as_400(error.into()))?;
    Ok(Json(
        changes
            .into_keys()
            .map(|key| {
                let value = field(&session, &key);
                (key, value)
            })
            .collect(),
    ))
}

/// Deletes a session: 200, or 404 when unknown.
#[utoipa::path(
    delete, path = "/a01/session/{id}", tag = "back-session (compat)", operation_id = "back_session_remove", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The session id")),
    responses((status = 200, description = "`{\"session_id\"}`", body = Object), (status = 404, description = "`session_not_found`, or `invalid_session_id`", body = ErrorBody)),
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathId(id): PathId<SessionId>,
) -> Result<Json<Value>, Error> {
    let manager = admit(&state, &headers, Permission::Write).await?;
    let session = manager.delete_session(&id).await?;
    Ok(Json(serde_json::json!({ "session_id": session.id })))
}

/// One session in a user's listing; the original's keys, sorted as Go sorts a map's.
#[derive(Debug, Serialize)]
pub(crate) struct SessionShort {
    create_date: String,
    device_id: String,
    update_date: String,
}

/// `2019-11-03 12:34:56.789 +0000 UTC`: Go's `time.Time.String()` of a UTC time, the format
/// the original stored its dates in (trailing zeros of the fraction dropped, as Go does).
fn go_time(at: Timestamp) -> String {
    let rfc3339 = at.to_string();
    let text = rfc3339.trim_end_matches('Z').replacen('T', " ", 1);
    let text = match text.split_once('.') {
        Some((whole, fraction)) if fraction.trim_end_matches('0').is_empty() => whole.to_owned(),
        Some((whole, fraction)) => format!("{whole}.{}", fraction.trim_end_matches('0')),
        None => text,
    };
    format!("{text} +0000 UTC")
}

/// A user's sessions keyed by id, from the user's index (never a scan of all sessions).
/// `update_date` is the last refresh: sessanger renews a session on use, where the original
/// never changed the date after creation.
async fn listing(manager: &SessionManager, user: &UserId) -> Result<Json<BTreeMap<String, SessionShort>>, Error> {
    let sessions = manager.all_user_sessions(user).await?;
    let short = |session: Session| SessionShort {
        create_date: go_time(session.created_at),
        device_id: field(&session, "device_id"),
        update_date: go_time(session.last_access_at),
    };
    Ok(Json(sessions.into_iter().map(|session| (session.id.to_string(), short(session))).collect()))
}

/// The `user_id` query parameter of the README's `GET`/`DELETE /session`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserQuery {
    user_id: Option<String>,
}

fn queried_user(query: Result<Query<UserQuery>, QueryRejection>) -> Result<UserId, Error> {
    let Query(query) = query.map_err(ApiError::from)?;
    let user = query.user_id.filter(|user| !user.is_empty()).ok_or_else(|| invalid("user_id is required"))?;
    Ok(user.parse().map_err(|e: sessanger_core::IdError| invalid(e.to_string()))?)
}

/// `GET /a01/session/user/{user_id}`: the user's sessions.
#[utoipa::path(
    get, path = "/a01/session/user/{user_id}", tag = "back-session (compat)", operation_id = "back_session_list_user", security((), ("bearer" = [])),
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, description = "Session id → `{create_date, device_id, update_date}`", body = Object)),
)]
pub(crate) async fn list_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathId(user): PathId<UserId>,
) -> Result<Json<BTreeMap<String, SessionShort>>, Error> {
    listing(&admit(&state, &headers, Permission::Read).await?, &user).await
}

/// `GET /a01/session?user_id=`, as the README's table has it.
#[utoipa::path(
    get, path = "/a01/session", tag = "back-session (compat)", operation_id = "back_session_list_by_query", security((), ("bearer" = [])),
    params(("user_id" = String, Query, description = "The user")),
    responses((status = 200, description = "Session id → `{create_date, device_id, update_date}`", body = Object), (status = 400, description = "`invalid_request`: no `user_id`", body = ErrorBody)),
)]
pub(crate) async fn list_by_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<BTreeMap<String, SessionShort>>, Error> {
    let manager = admit(&state, &headers, Permission::Read).await?;
    listing(&manager, &queried_user(query)?).await
}

/// `DELETE /a01/session/user/{user_id}`: signs the user out everywhere.
#[utoipa::path(
    delete, path = "/a01/session/user/{user_id}", tag = "back-session (compat)", operation_id = "back_session_revoke_user", security((), ("bearer" = [])),
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, description = "`{\"deleted\": n}`", body = Object)),
)]
pub(crate) async fn revoke_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathId(user): PathId<UserId>,
) -> Result<Json<Deleted>, Error> {
    let manager = admit(&state, &headers, Permission::Write).await?;
    Ok(Json(Deleted { deleted: manager.delete_user_sessions(&user).await? }))
}

/// `DELETE /a01/session?user_id=`, as the README's table has it.
#[utoipa::path(
    delete, path = "/a01/session", tag = "back-session (compat)", operation_id = "back_session_revoke_by_query", security((), ("bearer" = [])),
    params(("user_id" = String, Query, description = "The user")),
    responses((status = 200, description = "`{\"deleted\": n}`", body = Object), (status = 400, description = "`invalid_request`: no `user_id`", body = ErrorBody)),
)]
pub(crate) async fn revoke_by_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<Deleted>, Error> {
    let manager = admit(&state, &headers, Permission::Write).await?;
    let user = queried_user(query)?;
    Ok(Json(Deleted { deleted: manager.delete_user_sessions(&user).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_go_prints_a_utc_time() {
        assert_eq!(go_time(Timestamp::from_millis(1_572_784_496_780)), "2019-11-03 12:34:56.78 +0000 UTC");
        assert_eq!(go_time(Timestamp::from_millis(1_572_784_496_000)), "2019-11-03 12:34:56 +0000 UTC");
    }
}
