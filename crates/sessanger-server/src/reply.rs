//! Session responses: the shared wire body (`sessanger_core::wire::SessionBody`) with the
//! headers that belong to it.

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sessanger_core::{Session, Version, wire::SessionBody};

/// A session response: the JSON with an `ETag` of its version, so the client can send it back
/// in `If-Match`, and a `Location` when it was just created.
#[derive(Debug)]
pub(crate) struct SessionReply {
    status: StatusCode,
    session: Session,
}

impl SessionReply {
    pub(crate) fn ok(session: Session) -> Self {
        SessionReply { status: StatusCode::OK, session }
    }

    pub(crate) fn created(session: Session) -> Self {
        SessionReply { status: StatusCode::CREATED, session }
    }
}

impl IntoResponse for SessionReply {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, etag(self.session.version));
        if self.status == StatusCode::CREATED {
            let location = format!("/v1/sessions/{}", self.session.id);
            headers.insert(header::LOCATION, HeaderValue::try_from(location).expect("a session id is URL-safe"));
        }
        (self.status, headers, Json(SessionBody::from(self.session))).into_response()
    }
}

/// The strong entity tag of a version: `"7"`.
pub(crate) fn etag(version: Version) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", version.0)).expect("digits and quotes are a valid header value")
}
