//! Who is signed in: the operator's service, checked on every request, and the anti-forgery
//! token of their session.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sessanger_core::{
    Device, ManagerError, Permission, ServiceId, ServiceRecord, ServiceToken, SessionManager, UserId,
};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::{Console, Posted, pages};

/// The session key of [`SignedIn`].
const SIGNED_IN: &str = "console.operator";

/// Longest `User-Agent` kept with an operator's session.
const MAX_USER_AGENT: usize = 256;

/// What the console keeps in an operator's session: the service they signed in as, and the
/// token their forms must carry.
#[derive(Debug, Serialize, Deserialize)]
struct SignedIn {
    service: ServiceId,
    csrf: String,
}

/// The signed-in operator of a request. A request without one is sent to sign in.
#[derive(Debug)]
pub(crate) struct Operator {
    pub(crate) service: Arc<ServiceRecord>,
    /// The manager acting for the operator's service: the audit trail names it.
    pub(crate) manager: SessionManager,
    pub(crate) csrf: String,
}

impl Operator {
    /// Whether the operator may change anything (`admin`), not only look.
    pub(crate) fn may_change(&self) -> bool {
        self.service.allows(Permission::Admin)
    }

    /// `Ok` for a form posted by this session's own page: it carries the session's
    /// anti-forgery token (compared in constant time).
    pub(crate) fn check_form(&self, presented_csrf: &str) -> Result<(), Refusal> {
        if self.csrf.is_empty() || !bool::from(self.csrf.as_bytes().ct_eq(presented_csrf.as_bytes())) {
            tracing::warn!(service = %self.service.id, "console: a form without the session's anti-forgery token");
            return Err(Refusal::Forged);
        }
        Ok(())
    }

    /// `Ok` for a change the operator may make, posted by the console's own form.
    pub(crate) fn authorize(&self, presented_csrf: &str) -> Result<(), Refusal> {
        self.check_form(presented_csrf)?;
        if !self.may_change() {
            return Err(Refusal::ReadOnly);
        }
        Ok(())
    }
}

/// Why a posted change was refused.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal {
    /// The form did not carry the session's anti-forgery token.
    Forged,
    /// The operator's service may only read.
    ReadOnly,
    /// The form names no valid user id.
    NoSuchUser,
    /// The form names no valid service id.
    NoSuchService,
    /// The form would change or remove the operator's own service, ending the operator's own
    /// powers mid-page.
    OwnService,
    /// The form ticks no permission: a service that may do nothing is removed, not kept.
    NoPermissions,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Refusal::Forged => (
                StatusCode::FORBIDDEN,
                "This form was not sent by this console session. Reload the page and try again.",
            ),
            Refusal::ReadOnly => {
                (StatusCode::FORBIDDEN, "Your service may view sessions and services, not change them.")
            }
            Refusal::NoSuchUser => (StatusCode::BAD_REQUEST, "No such user."),
            Refusal::NoSuchService => (StatusCode::BAD_REQUEST, "No such service."),
            Refusal::OwnService => (
                StatusCode::CONFLICT,
                "You are signed in as this service: sign in as another admin service to change or remove it.",
            ),
            Refusal::NoPermissions => (StatusCode::BAD_REQUEST, "Give the service at least one permission."),
        };
        pages::refused(status, message)
    }
}

impl FromRequestParts<Console> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, console).await.map_err(IntoResponse::into_response)?;
        let signed_in: Option<SignedIn> = session.get(SIGNED_IN).await.map_err(|e| pages::unavailable(&e))?;
        let Some(SignedIn { service, csrf }) = signed_in else {
            return Err(crate::see("/sign-in"));
        };
        match console.manager.registered_service(&service).await {
            Ok(Some(record)) if record.allows(Permission::Read) => {
                Ok(Operator { manager: console.manager.for_service(&record.id), service: record, csrf })
            }
            // Removed, or its permissions taken away, since the operator signed in.
            Ok(_) => {
                let _ = session.flush().await;
                Err(pages::sign_in(
                    StatusCode::UNAUTHORIZED,
                    Some("Your service is no longer registered: sign in again."),
                ))
            }
            Err(e) => Err(pages::unavailable(&e)),
        }
    }
}

pub(crate) async fn sign_in_page() -> Response {
    pages::sign_in(StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    token: String,
}

pub(crate) async fn sign_in(
    State(console): State<Console>,
    ClientAddress(address): ClientAddress,
    session: Session,
    headers: HeaderMap,
    Posted(form): Posted<SignInForm>,
) -> Response {
    let wait = console.failures.delay(address);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let verified = match form.token.trim().parse::<ServiceToken>() {
        Ok(token) => console.manager.verify_service(&token).await,
        Err(_) => Err(ManagerError::InvalidCredentials),
    };
    if matches!(verified, Err(ManagerError::InvalidCredentials)) {
        console.failures.failed(address);
    }
    let service = match verified {
        Ok(service) if service.allows(Permission::Read) => service,
        Ok(service) => {
            tracing::warn!(service = %service.id, "console: sign-in by a service without the read permission");
            return pages::sign_in(StatusCode::FORBIDDEN, Some("This service may not read sessions."));
        }
        Err(ManagerError::InvalidCredentials) => {
            tracing::warn!(client = ?address, "console: sign-in with an invalid token");
            let message = if console.failures.delay(address).is_zero() {
                "That token is not valid."
            } else {
                "That token is not valid. Too many failed sign-ins from your address: each try now waits longer."
            };
            return pages::sign_in(StatusCode::UNAUTHORIZED, Some(message));
        }
        Err(e) => return pages::unavailable(&e),
    };
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|agent| {
        let mut end = agent.len().min(MAX_USER_AGENT);
        while !agent.is_char_boundary(end) {
            end -= 1;
        }
        agent[..end].to_owned()
    });
    let device = Device { user_agent, ..Device::default() };
    let signed_in = SignedIn { service: service.id.clone(), csrf: anti_forgery_token() };
    // A fresh session id at sign-in (`log_in` cycles it): an id planted before is worthless.
    let stored = async {
        console.store.log_in(&session, &operator_user(&service.id), device).await?;
        session.insert(SIGNED_IN, signed_in).await
    };
    if let Err(e) = stored.await {
        return pages::unavailable(&e);
    }
    console.failures.succeeded(address);
    tracing::info!(service = %service.id, "console: signed in");
    crate::see("/")
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    // Absent is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(operator: Operator, session: Session, Posted(form): Posted<CsrfForm>) -> Response {
    // Signing out changes nothing but the operator's own session: a `read` operator may.
    if let Err(refused) = operator.check_form(&form.csrf) {
        return refused.into_response();
    }
    if let Err(e) = session.flush().await {
        return pages::unavailable(&e);
    }
    crate::see("/sign-in")
}

/// The client's address, as the server's accept loop saw it (`ConnectInfo`); `None` for an app
/// driven without a socket.
#[derive(Debug)]
pub(crate) struct ClientAddress(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(client)| client.ip())))
    }
}

/// The sessanger user an operator's console sessions belong to, so `/v1` lists them apart
/// from any real user's.
fn operator_user(service: &ServiceId) -> UserId {
    format!("admin-console:{service}").parse().expect("a service id makes a valid user id")
}

/// 256 bits from the OS's CSPRNG, base64url.
fn anti_forgery_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    URL_SAFE_NO_PAD.encode(bytes)
}
