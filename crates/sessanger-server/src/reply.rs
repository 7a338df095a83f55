//! Session responses: the shared wire body (`sessanger_core::wire::SessionBody`) with the
//! headers that belong to it.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sessanger_core::{Session, Version, wire::SessionBody};

use crate::{error::ApiError, extract::Prefer};

/// RFC 7240's answer to `Prefer`; the `http` crate has no constant for it.
const PREFERENCE_APPLIED: &str = "preference-applied";

/// A session response: the JSON with an `ETag` of its version, so the client can send it back
/// in `If-Match`, and a `Location` when it was just created.
#[derive(Debug)]
pub(crate) struct SessionReply {
    status: StatusCode,
    session: Session,
    minimal: bool,
}

impl SessionReply {
    pub(crate) fn ok(session: Session) -> Self {
        SessionReply { status: StatusCode::OK, session, minimal: false }
    }

    pub(crate) fn created(session: Session) -> Self {
        SessionReply { status: StatusCode::CREATED, session, minimal: false }
    }

    /// `304 Not Modified`: the client's copy is current; only the `ETag` is sent.
    pub(crate) fn not_modified(session: Session) -> Self {
        SessionReply { status: StatusCode::NOT_MODIFIED, session, minimal: false }
    }

    /// The changed session as the client prefers it: with `return=minimal`, `204 No Content`
    /// and its `ETag` only.
    pub(crate) fn changed(session: Session, prefer: Prefer) -> Self {
        SessionReply { status: StatusCode::OK, session, minimal: prefer.minimal }
    }
}

impl IntoResponse for SessionReply {
    fn into_response(self) -> Response {
        // Headers go straight into the response: a separate `HeaderMap` merged in by axum's
        // tuple responses cost a map and a copy of every header per answer.
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag(self.session.version));
        if self.status == StatusCode::NOT_MODIFIED {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
        if self.minimal {
            headers.insert(PREFERENCE_APPLIED, HeaderValue::from_static("return=minimal"));
            *response.status_mut() = StatusCode::NO_CONTENT;
            return response;
        }
        if self.status == StatusCode::CREATED {
            let location = format!("/v1/sessions/{}", self.session.id);
            headers.insert(header::LOCATION, HeaderValue::try_from(location).expect("a session id is URL-safe"));
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Written once into a buffer of about the right size: a session with a few attributes
        // is ~400 bytes, which axum's `Json` reaches by growing from 128 twice.
        let mut body = Vec::with_capacity(BODY_CAPACITY);
        match serde_json::to_writer(&mut body, &SessionBody::from(self.session)) {
            Ok(()) => {
                *response.status_mut() = self.status;
                *response.body_mut() = Body::from(body);
                response
            }
            Err(e) => ApiError::Internal(e.into()).into_response(),
        }
    }
}

/// The starting size of a session response body.
const BODY_CAPACITY: usize = 512;

/// The strong entity tag of a version: `"7"`.
pub(crate) fn etag(version: Version) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", version.0)).expect("digits and quotes are a valid header value")
}
