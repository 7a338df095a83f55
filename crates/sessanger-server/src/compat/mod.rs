//! The HTTP APIs of services sessanger replaces, so their clients work unchanged:
//! back-session under `/a01` ([`back_session`]) and sessman under `/sessman` ([`sessman`]).
//!
//! Both run on the state's manager, as `/v1` does. What they share lives here: the [`Gate`]
//! that decides who may call them, [`LooseJson`] bodies (parsed whatever their Content-Type,
//! as the originals did), [`CompatError`]s answered in each API's own error shape, and
//! [`rewrite`], the compare-and-set loop for changes the store has no single step for.
//!
//! Each API is off unless enabled. Under `auth: none` (the default, for clients that send no
//! sessanger token) a request acts as the API's configured service with its configured
//! permissions, and the audit trail names that service; under `auth: token` it needs a
//! sessanger service token exactly as `/v1` does.

use std::marker::PhantomData;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use sessanger_core::{ManagerError, Permission, ServiceId, SessionId, SessionManager};
use subtle::ConstantTimeEq;

use crate::{AppState, CompatAuth, CompatOptions, auth, error::ApiError};

pub(crate) mod back_session;
pub(crate) mod options;
pub(crate) mod sessman;

/// The routes of the enabled compat APIs.
pub(crate) fn routes(options: &CompatOptions) -> Router<AppState> {
    let mut router = Router::new();
    if options.back_session.enabled {
        router = router.merge(back_session::routes());
    }
    if options.sessman.enabled {
        router = router.merge(sessman::routes());
    }
    router
}

/// Who may call one compat API, from its options.
#[derive(Debug)]
pub(crate) struct Gate<'a> {
    pub(crate) auth: CompatAuth,
    pub(crate) service: &'a ServiceId,
    pub(crate) permissions: &'a [Permission],
    /// An API key of the API's own (sessman's), required under `auth: none` when set.
    pub(crate) api_key: Option<&'a str>,
}

impl Gate<'_> {
    /// The manager a request acts through, if it may do what needs `permission`.
    ///
    /// The API key is looked for where the original looked, in its order: the bearer
    /// credentials, `X-Custom-Auth`, then the request's `apikey` parameter (`param`).
    pub(crate) async fn admit(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        param: Option<&str>,
        permission: Permission,
    ) -> Result<SessionManager, ApiError> {
        if self.auth == CompatAuth::Token {
            return auth::authenticate(state, headers, permission).await;
        }
        if let Some(expected) = self.api_key {
            let custom = || headers.get("x-custom-auth").and_then(|v| v.to_str().ok()).map(str::trim);
            let given = auth::bearer(headers).or_else(custom).or(param);
            if !given.is_some_and(|given| same_secret(given, expected)) {
                return Err(ApiError::InvalidApiKey);
            }
        }
        if !self.permissions.contains(&permission) {
            return Err(ApiError::Forbidden(permission));
        }
        Ok(state.manager.for_service(self.service))
    }
}

/// Compares two secrets in time that depends on their lengths only, so response times do not
/// reveal how much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A JSON body, whatever its Content-Type says (the originals never looked: sessman's own
/// client sends `text/javascript`); `None` when the body is empty. The body limit applies.
#[derive(Debug)]
pub(crate) struct LooseJson<T>(pub(crate) Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for LooseJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(LooseJson(None));
        }
        serde_json::from_slice(&bytes).map(|value| LooseJson(Some(value))).map_err(|error| {
            let what = if error.is_data() { "the body has the wrong shape" } else { "the body is not JSON" };
            ApiError::InvalidRequest(format!("{what}: {error}"))
        })
    }
}

/// A session id as a compat client sends it; a malformed one names no session.
pub(crate) fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| ApiError::InvalidSessionId)
}

/// How a compat API writes an error body.
pub(crate) trait ErrorShape {
    /// The body for `error`.
    fn body(error: &ApiError) -> serde_json::Value;
}

/// An [`ApiError`] answered in an API's own error shape, with the status the original gave
/// for it where that differs from `/v1`'s.
#[derive(Debug)]
pub(crate) struct CompatError<S> {
    status: StatusCode,
    error: ApiError,
    shape: PhantomData<fn() -> S>,
}

impl<S> CompatError<S> {
    /// `error`, answered with `status` instead of its own.
    pub(crate) fn with_status(status: StatusCode, error: impl Into<ApiError>) -> Self {
        CompatError { status, error: error.into(), shape: PhantomData }
    }
}

impl<S> From<ApiError> for CompatError<S> {
    fn from(error: ApiError) -> Self {
        CompatError { status: error.status(), error, shape: PhantomData }
    }
}

impl<S> From<ManagerError> for CompatError<S> {
    fn from(error: ManagerError) -> Self {
        ApiError::from(error).into()
    }
}

impl<S: ErrorShape> IntoResponse for CompatError<S> {
    fn into_response(self) -> Response {
        let body = S::body(&self.error);
        self.error.respond(self.status, body)
    }
}

/// The native shape, `{"error": {"code", "message"}}`, for APIs whose original had no error
/// body of its own.
#[derive(Debug)]
pub(crate) struct NativeShape;

impl ErrorShape for NativeShape {
    fn body(error: &ApiError) -> serde_json::Value {
        serde_json::to_value(error.body()).expect("an error body is plain JSON")
    }
}
