//! Who is calling: the [`Caller`] extractor checks the bearer token and one permission, and
//! hands the handler a manager acting for that service.
//!
//! An extractor rather than a middleware because the permission belongs to the handler: its
//! signature (`Caller<Write>`) states what it needs, and a handler without a `Caller` is
//! visibly public.

use std::marker::PhantomData;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use sessanger_core::{Permission, ServiceToken, SessionManager};

use crate::{AppState, error::ApiError};

/// A permission a handler needs, as a type.
pub(crate) trait Needs {
    const PERMISSION: Permission;
}

/// Read sessions and statistics.
#[derive(Debug)]
pub(crate) struct Read;
/// Create, change and delete sessions.
#[derive(Debug)]
pub(crate) struct Write;
/// Manage services.
#[derive(Debug)]
pub(crate) struct Admin;

impl Needs for Read {
    const PERMISSION: Permission = Permission::Read;
}
impl Needs for Write {
    const PERMISSION: Permission = Permission::Write;
}
impl Needs for Admin {
    const PERMISSION: Permission = Permission::Admin;
}

/// An authenticated service holding permission `P`.
///
/// Rejects with 401 `unauthorized` when the token is missing, malformed or wrong, and with 403
/// `forbidden` when the service lacks `P`.
#[derive(Debug)]
pub(crate) struct Caller<P> {
    /// The manager acting for the caller, so the audit trail names it.
    pub(crate) manager: SessionManager,
    needs: PhantomData<fn() -> P>,
}

impl<P: Needs> FromRequestParts<AppState> for Caller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let manager = authenticate(state, &parts.headers, P::PERMISSION).await?;
        Ok(Caller { manager, needs: PhantomData })
    }
}

/// The manager acting for the service whose bearer token `headers` carry, if that service
/// holds `permission`.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<SessionManager, ApiError> {
    let token = bearer(headers).and_then(|token| token.parse::<ServiceToken>().ok()).ok_or(ApiError::Unauthorized)?;
    let service = state.manager.verify_service(&token).await?;
    if !service.allows(permission) {
        return Err(ApiError::Forbidden(permission));
    }
    Ok(state.manager.for_service(&service.id))
}

/// The credentials of `Authorization: Bearer <credentials>`; the scheme is case-insensitive
/// (RFC 9110).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}
