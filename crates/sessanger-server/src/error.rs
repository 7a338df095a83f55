//! [`ApiError`]: every failure the API reports, each with its status and stable code fixed in
//! one place, and the single [`IntoResponse`] that turns it into the JSON error shape (the
//! shared `sessanger_core::wire::ErrorBody`, which clients decode).
//!
//! Client errors say what was wrong. Server errors say nothing about their cause: the body is
//! generic, and the cause travels as a [`Fault`] response extension to the metrics middleware,
//! which logs and counts it. The conversion itself has no side effects.

use std::{error::Error, sync::Arc};

use axum::{
    Json,
    extract::rejection::{BytesRejection, JsonRejection, QueryRejection, RawPathParamsRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sessanger_core::{
    BoxError, ManagerError, PatchError, Permission, ServiceId, StoreError, Version,
    wire::{ErrorBody, ErrorCode, ErrorDetail},
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing, malformed or unknown bearer token")]
    Unauthorized,
    #[error("this service lacks the `{0}` permission")]
    Forbidden(Permission),
    /// A compat API's own API key is missing or wrong; the text is the original's.
    #[error("unauthorized")]
    InvalidApiKey,
    #[error("session not found")]
    SessionNotFound,
    #[error("service not found")]
    ServiceNotFound,
    #[error("no such route")]
    NotFound,
    #[error("this route does not take this method")]
    MethodNotAllowed,
    /// A malformed id names no session; it gets its own code so a client can tell a typo from
    /// an expired session.
    #[error("not a session id: a session id is 24 characters of base64url (43 from earlier versions)")]
    InvalidSessionId,
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    InvalidPatch(PatchError),
    #[error("the new deadline has passed already")]
    DeadlinePassed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is over the size limit")]
    PayloadTooLarge,
    #[error("the session is at version {}, not the one in If-Match", .0.0)]
    VersionMismatch(Version),
    #[error("this request needs an If-Match header naming the session's version")]
    PreconditionRequired,
    #[error("the user already holds the maximum number of sessions")]
    TooManySessions,
    #[error("a live session already has this session_id")]
    SessionIdTaken,
    #[error("service `{0}` already exists")]
    ServiceExists(ServiceId),
    #[error("the request did not complete in time")]
    Timeout,
    #[error("the session store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    #[error("this server's store keeps no event log")]
    EventsUnavailable,
    #[error("internal server error")]
    Internal(#[source] BoxError),
}

/// The cause of a server-side failure, attached to its response for the metrics middleware to
/// log and count; never part of the body.
#[derive(Clone, Debug)]
pub(crate) struct Fault(pub(crate) Arc<dyn Error + Send + Sync>);

impl ApiError {
    /// The status this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The body of this error in the native shape.
    pub(crate) fn body(&self) -> ErrorBody {
        let code = self.status_and_code().1;
        // For server errors `Display` is the generic text; the cause stays in `Fault`.
        ErrorBody { error: ErrorDetail { code, message: self.to_string() } }
    }

    /// Answers with `status` and `body` (the compat APIs have their own of both), keeping what
    /// belongs to the error whatever the shape: the `WWW-Authenticate` challenge and the cause
    /// of a server error as a [`Fault`].
    pub(crate) fn respond(self, status: StatusCode, body: impl Serialize) -> Response {
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::Unauthorized => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::StoreUnavailable(cause) => {
                response.extensions_mut().insert(Fault(Arc::new(cause)));
            }
            ApiError::Internal(cause) => {
                response.extensions_mut().insert(Fault(Arc::from(cause)));
            }
            _ => {}
        }
        response
    }

    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        use ErrorCode as C;
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, C::Unauthorized),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, C::Forbidden),
            ApiError::InvalidApiKey => (StatusCode::FORBIDDEN, C::Unauthorized),
            ApiError::SessionNotFound => (StatusCode::NOT_FOUND, C::SessionNotFound),
            ApiError::ServiceNotFound => (StatusCode::NOT_FOUND, C::ServiceNotFound),
            ApiError::NotFound => (StatusCode::NOT_FOUND, C::NotFound),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, C::MethodNotAllowed),
            ApiError::InvalidSessionId => (StatusCode::NOT_FOUND, C::InvalidSessionId),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, C::InvalidRequest),
            ApiError::InvalidPatch(PatchError::NotAnInteger(_)) => (StatusCode::UNPROCESSABLE_ENTITY, C::NotAnInteger),
            ApiError::InvalidPatch(PatchError::Encrypted(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, C::EncryptedAttribute)
            }
            ApiError::InvalidPatch(PatchError::TooManyAttributes(_) | PatchError::SessionTooLarge(_)) => {
                (StatusCode::PAYLOAD_TOO_LARGE, C::SessionTooLarge)
            }
            ApiError::InvalidPatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, C::InvalidPatch),
            ApiError::DeadlinePassed => (StatusCode::UNPROCESSABLE_ENTITY, C::DeadlinePassed),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, C::UnsupportedMediaType),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, C::PayloadTooLarge),
            ApiError::VersionMismatch(_) => (StatusCode::PRECONDITION_FAILED, C::VersionMismatch),
            ApiError::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, C::PreconditionRequired),
            ApiError::TooManySessions => (StatusCode::CONFLICT, C::TooManySessions),
            ApiError::SessionIdTaken => (StatusCode::CONFLICT, C::SessionIdTaken),
            ApiError::ServiceExists(_) => (StatusCode::CONFLICT, C::ServiceExists),
            ApiError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, C::RequestTimeout),
            ApiError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, C::StoreUnavailable),
            ApiError::EventsUnavailable => (StatusCode::NOT_IMPLEMENTED, C::EventsUnavailable),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, C::Internal),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = (self.status(), self.body());
        self.respond(status, body)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::StoreUnavailable(error),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<ManagerError> for ApiError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::NotFound => ApiError::SessionNotFound,
            ManagerError::VersionMismatch { current } => ApiError::VersionMismatch(current),
            ManagerError::LimitReached => ApiError::TooManySessions,
            ManagerError::IdTaken => ApiError::SessionIdTaken,
            error @ ManagerError::ForeignShard => ApiError::InvalidRequest(error.to_string()),
            ManagerError::DeadlinePassed => ApiError::DeadlinePassed,
            ManagerError::InvalidPatch(e) => ApiError::InvalidPatch(e),
            ManagerError::InvalidCredentials => ApiError::Unauthorized,
            ManagerError::ServiceExists(id) => ApiError::ServiceExists(id),
            ManagerError::ServiceNotFound(_) => ApiError::ServiceNotFound,
            ManagerError::Store(e) => e.into(),
            // A variant added to the core later is a server-side surprise until mapped here.
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// Bodies that are too large, of the wrong type, or not the expected JSON.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(rejection.body_text()),
            // axum says 422 for well-formed JSON of the wrong shape; to the client it is just
            // as much an invalid request as a syntax error, so both are 400.
            status if status.is_client_error() => ApiError::InvalidRequest(rejection.body_text()),
            _ => ApiError::Internal(Box::new(rejection)),
        }
    }
}

/// Bodies read as bytes (the compat APIs parse them whatever their Content-Type).
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            status if status.is_client_error() => ApiError::InvalidRequest(rejection.body_text()),
            _ => ApiError::Internal(Box::new(rejection)),
        }
    }
}

impl From<RawPathParamsRejection> for ApiError {
    fn from(rejection: RawPathParamsRejection) -> Self {
        match rejection {
            RawPathParamsRejection::InvalidUtf8InPathParam(e) => ApiError::InvalidRequest(e.body_text()),
            // A handler asking for a parameter its route lacks: our bug, not the client's.
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_increment_of_an_encrypted_attribute_is_a_422_with_its_own_code() {
        let error = ApiError::InvalidPatch(PatchError::Encrypted("access_token".into()));
        assert_eq!(error.status_and_code(), (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::EncryptedAttribute));
        assert_eq!(serde_json::to_value(error.body()).unwrap()["error"]["code"], "encrypted_attribute");
    }
}
