//! sessman's API under `/sessman`, as the pluginserver plugin answers it.
//!
//! `/sessman/new`, `/sessman/update` and `/sessman/get` take GET or POST. Their parameters
//! are the keys of a POST's JSON body (parsed whatever the Content-Type says: sessman's
//! own client sends `text/javascript`), overridden by the query string's, as the original merged
//! them. The user is `userid` (the document's name) or `user` (its client's); the session is
//! `sessionid` or `session_id`, else the `PS_SESSID` cookie that `new` sets. A session's
//! `data` is its attributes, so sessions made through `/v1` or `/a01` read here too.
//!
//! Every answer is `{"session_id", "data"}`; every error is `{"error": "<text>"}`, 403
//! `{"error": "unauthorized"}` for a missing or wrong API key. The original said 400 for every
//! failure; here an unknown session is 404, a malformed request 400.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{FromRequest, Query, Request, State},
    http::{HeaderMap, Method, Uri, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use serde::Serialize;
use serde_json::{Map, Value};
use sessanger_core::{Attributes, NewSession, Permission, Replacement, Session, SessionId, SessionManager, UserId};

use super::{CompatError, ErrorShape, Gate, LooseJson, session_id};
use crate::{AppState, SESSMAN_DEFAULT_TTL, error::ApiError};

/// sessman's error body: `{"error": "<text>"}`.
#[derive(Debug)]
pub(crate) struct FlatShape;

impl ErrorShape for FlatShape {
    fn body(error: &ApiError) -> Value {
        serde_json::json!({ "error": error.to_string() })
    }
}

type Error = CompatError<FlatShape>;

/// The parameters that name the user, in the order they are looked for.
const USER_PARAMS: [&str; 3] = ["userid", "user", "user_id"];

/// The cookie `new` sets and the other commands read when no session id is sent.
const COOKIE: &str = "PS_SESSID";

/// The user of a session created without one, as in the original.
const DEFAULT_USER: &str = "sessman";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessman/new", get(new).post(new))
        .route("/sessman/update", get(update).post(update))
        .route("/sessman/get", get(read).post(read))
        .route("/sessman/{command}", any(unknown_command))
}

/// A request's parameters: a POST's JSON body keys overridden by the query string's.
#[derive(Debug)]
pub(crate) struct Params {
    values: Map<String, Value>,
    headers: HeaderMap,
}

impl FromRequest<AppState> for Params {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let Query(query) = Query::<HashMap<String, String>>::try_from_uri(req.uri()).map_err(ApiError::from)?;
        let headers = req.headers().clone();
        // Only a POST's body was read by the original.
        let mut values = if *req.method() == Method::POST {
            LooseJson::<Map<String, Value>>::from_request(req, state).await?.0.unwrap_or_default()
        } else {
            Map::new()
        };
        values.extend(query.into_iter().map(|(key, value)| (key, Value::String(value))));
        Ok(Params { values, headers })
    }
}

impl Params {
    /// The first of `names` that is set, as text (numbers are fine).
    fn text(&self, names: &[&str]) -> Result<Option<String>, ApiError> {
        let Some((name, value)) = names.iter().find_map(|name| Some((name, self.values.get(*name)?))) else {
            return Ok(None);
        };
        match value {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            Value::Number(number) => Ok(Some(number.to_string())),
            _ => Err(ApiError::InvalidRequest(format!("`{name}` must be text"))),
        }
    }

    fn user(&self) -> Result<UserId, ApiError> {
        let user = self.text(&USER_PARAMS)?.unwrap_or_else(|| DEFAULT_USER.to_owned());
        user.parse().map_err(|e: sessanger_core::IdError| ApiError::InvalidRequest(e.to_string()))
    }

    fn session_id(&self) -> Result<SessionId, ApiError> {
        let sent = self.text(&["sessionid", "session_id"])?.or_else(|| self.cookie());
        let missing = || {
            ApiError::InvalidRequest(format!(
                "no session id: send `session_id` (or `sessionid`) or the {COOKIE} cookie"
            ))
        };
        session_id(&sent.ok_or_else(missing)?)
    }

    fn cookie(&self) -> Option<String> {
        let pairs = self.headers.get_all(header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
        pairs.flat_map(|line| line.split(';')).find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.trim_matches('"').to_owned())
        })
    }

    /// The session data: a JSON object, sent as such or as its text (a query parameter);
    /// absent means empty, as in the original.
    fn data(&self) -> Result<Attributes, ApiError> {
        let not_an_object = || ApiError::InvalidRequest("`data` must be a JSON object".into());
        match self.values.get("data") {
            None | Some(Value::Null) => Ok(Attributes::new()),
            Some(Value::Object(data)) => Ok(data.clone()),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|_| not_an_object()),
            Some(_) => Err(not_an_object()),
        }
    }

    /// The manager for this request, if it may do what needs `permission`.
    async fn admit(&self, state: &AppState, permission: Permission) -> Result<SessionManager, ApiError> {
        let config = &state.options.compat.sessman;
        let gate = Gate {
            auth: config.auth,
            service: &config.service,
            permissions: &config.permissions,
            api_key: config.api_key.as_deref(),
        };
        gate.admit(state, &self.headers, self.text(&["apikey"])?.as_deref(), permission).await
    }
}

/// Every successful answer.
#[derive(Debug, Serialize)]
pub(crate) struct Reply {
    session_id: SessionId,
    data: Attributes,
}

impl From<Session> for Reply {
    fn from(session: Session) -> Self {
        Reply { session_id: session.id, data: session.attributes }
    }
}

/// Creates a session with `data` for the user; sets the `PS_SESSID` cookie.
#[utoipa::path(
    method(get, post), path = "/sessman/new", tag = "sessman (compat)", operation_id = "sessman_new", security((), ("bearer" = [])),
    params(("userid" = Option<String>, Query, description = "The user (also `user`, `user_id`); default `PS_USER`"), ("data" = Option<String>, Query, description = "The session's data as JSON text (or `data` in the body)")),
    request_body(content = Object, description = "`{\"userid\": …, \"data\": {…}}`; any Content-Type"),
    responses((status = 200, description = "`{\"session_id\", \"data\"}`; `Set-Cookie: PS_SESSID` for `session_ttl`", body = Object), (status = 400, description = "`{\"error\": \"…\"}`: a malformed parameter", body = Object), (status = 403, description = "`{\"error\": \"…\"}`: a wrong API key, or the service lacks `write`", body = Object)),
)]
pub(crate) async fn new(State(state): State<AppState>, params: Params) -> Result<Response, Error> {
    let manager = params.admit(&state, Permission::Write).await?;
    let (user, data) = (params.user()?, params.data()?);
    let ttl = state.options.compat.sessman.session_ttl.unwrap_or(SESSMAN_DEFAULT_TTL);
    let new = NewSession { attributes: data, ttl: Some(ttl), ..NewSession::default() };
    let session = manager.create_session(&user, new).await?;
    // HttpOnly: page scripts never need the id, the browser sends it back by itself. It lives
    // as long as the session would without use, as the original's cookie did.
    let cookie = format!("{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax", session.id, ttl.as_secs());
    Ok(([(header::SET_COOKIE, cookie)], Json(Reply::from(session))).into_response())
}

/// Replaces the session's data and renews its lifetime.
#[utoipa::path(
    method(get, post), path = "/sessman/update", tag = "sessman (compat)", operation_id = "sessman_update", security((), ("bearer" = [])),
    params(("session_id" = Option<String>, Query, description = "The session (also `sessionid`, else the `PS_SESSID` cookie)"), ("data" = Option<String>, Query, description = "The new data as JSON text (or `data` in the body)")),
    request_body(content = Object, description = "`{\"session_id\": …, \"data\": {…}}`; any Content-Type"),
    responses((status = 200, description = "`{\"session_id\", \"data\"}`", body = Object), (status = 400, description = "`{\"error\": \"…\"}`: no or a malformed session id", body = Object), (status = 404, description = "`{\"error\": \"session not found\"}`", body = Object)),
)]
pub(crate) async fn update(State(state): State<AppState>, params: Params) -> Result<Json<Reply>, Error> {
    let manager = params.admit(&state, Permission::Write).await?;
    let (id, data) = (params.session_id()?, params.data()?);
    // One store step, whatever the version: concurrent updates never fail for one another,
    // the last one wins, as in the original.
    manager.replace_session(&id, Replacement::attributes(&data)).await?;
    Ok(Json(manager.refresh_session(&id).await?.into()))
}

#[utoipa::path(
    method(get, post), path = "/sessman/get", tag = "sessman (compat)", operation_id = "sessman_read", security((), ("bearer" = [])),
    params(("session_id" = Option<String>, Query, description = "The session (also `sessionid`, else the `PS_SESSID` cookie)"), ("userid" = Option<String>, Query, description = "If sent, the session must be this user's")),
    responses((status = 200, description = "`{\"session_id\", \"data\"}`", body = Object), (status = 404, description = "`{\"error\": \"session not found\"}`: unknown, or another user's", body = Object)),
)]
/// Reads the session; with a user named, only that user's session (another's is 404, as
/// the original's lookup by user and id found nothing).
pub(crate) async fn read(State(state): State<AppState>, params: Params) -> Result<Json<Reply>, Error> {
    let manager = params.admit(&state, Permission::Read).await?;
    let id = params.session_id()?;
    let named = params.text(&USER_PARAMS)?;
    let session = manager.get_session(&id).await?;
    if named.is_some_and(|user| user != session.user_id.as_ref()) {
        return Err(ApiError::SessionNotFound.into());
    }
    Ok(Json(Arc::unwrap_or_clone(session).into()))
}

/// Any other command, answered as the original did.
async fn unknown_command(uri: Uri) -> Error {
    let command = uri.path().trim_start_matches("/sessman/");
    ApiError::InvalidRequest(format!("{command} is not a valid endpoint")).into()
}
