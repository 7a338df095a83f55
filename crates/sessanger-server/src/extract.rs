//! Extractors whose failures are [`ApiError`]s, so no axum plain-text rejection ever reaches a
//! client.

use std::{num::NonZeroU32, str::FromStr};

use axum::{
    extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request},
    http::request::Parts,
};
use serde::de::DeserializeOwned;
use sessanger_core::{IdError, Page, ServiceId, SessionId, UserId};

use crate::error::ApiError;

/// A JSON request body; axum's `Json` with its rejections mapped to [`ApiError`].
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

/// An identifier that can appear as the single parameter of a route.
pub(crate) trait PathSegment: FromStr<Err = IdError> + Send {
    /// What a malformed value means to the client.
    fn malformed(error: IdError) -> ApiError;
}

impl PathSegment for SessionId {
    fn malformed(_: IdError) -> ApiError {
        ApiError::InvalidSessionId
    }
}

impl PathSegment for UserId {
    fn malformed(error: IdError) -> ApiError {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl PathSegment for ServiceId {
    // No service can have a malformed id, so there is none to find.
    fn malformed(_: IdError) -> ApiError {
        ApiError::ServiceNotFound
    }
}

/// The route's single parameter, parsed as a `T`.
#[derive(Debug)]
pub(crate) struct PathId<T>(pub(crate) T);

impl<S: Send + Sync, T: PathSegment> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // The parameter as axum decoded it, borrowed: `Path<String>` would copy it through serde
        // first, on every request that names a session.
        let params = RawPathParams::from_request_parts(parts, state).await?;
        let (_, raw) = params.iter().next().ok_or_else(|| ApiError::Internal("the route has no parameter".into()))?;
        raw.parse().map(PathId).map_err(T::malformed)
    }
}

/// `?limit=&cursor=` of a listing: `limit` defaults to [`Page::DEFAULT_LIMIT`] and may be at
/// most [`Page::MAX_LIMIT`]; `cursor` is the listing's `next_cursor`, handed back unchanged,
/// read as a `P` (where the page before ended).
#[derive(Debug)]
pub(crate) struct Listing<P> {
    pub(crate) after: Option<P>,
    pub(crate) limit: NonZeroU32,
}

impl<S: Send + Sync, P: FromStr<Err: std::fmt::Display>> FromRequestParts<S> for Listing<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            limit: Option<String>,
            cursor: Option<String>,
        }
        let Query(raw) = Query::<Raw>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))?;
        let limit = match raw.limit {
            None => Page::DEFAULT_LIMIT,
            Some(text) => text
                .parse::<NonZeroU32>()
                .ok()
                .filter(|limit| *limit <= Page::MAX_LIMIT)
                .ok_or_else(|| ApiError::InvalidRequest(format!("limit must be 1 to {}", Page::MAX_LIMIT)))?,
        };
        let after = raw
            .cursor
            .map(|cursor| cursor.parse::<P>())
            .transpose()
            .map_err(|e| ApiError::InvalidRequest(format!("cursor: {e}")))?;
        Ok(Listing { after, limit })
    }
}

/// `Prefer: return=minimal` (RFC 7240): the client does not need the changed session back, only
/// its new version, so the answer is `204 No Content` with the `ETag`. Any other preference, or
/// none, gets the whole session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefer {
    pub(crate) minimal: bool,
}

impl Prefer {
    /// Whether one `Prefer` header value asks for `return=minimal` among its preferences.
    fn asks_minimal(value: &str) -> bool {
        value.split(',').any(|preference| {
            // A preference's own parameters follow `;` and do not change what it asks.
            let token = preference.split(';').next().unwrap_or_default();
            token.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("return")
                    && value.trim().trim_matches('"').eq_ignore_ascii_case("minimal")
            })
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Prefer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let values = parts.headers.get_all(PREFER).iter().filter_map(|v| v.to_str().ok());
        Ok(Prefer { minimal: values.into_iter().any(Prefer::asks_minimal) })
    }
}

/// RFC 7240's request header; the `http` crate has no constant for it.
const PREFER: &str = "prefer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_return_minimal_is_found_among_other_preferences() {
        for value in
            ["return=minimal", "Return = \"minimal\"", "respond-async, return=minimal; x=1", "wait=5,return=MINIMAL"]
        {
            assert!(Prefer::asks_minimal(value), "{value}");
        }
        for value in ["", "return=representation", "return", "minimal", "returnx=minimal", "handling=lenient"] {
            assert!(!Prefer::asks_minimal(value), "{value}");
        }
    }
}
