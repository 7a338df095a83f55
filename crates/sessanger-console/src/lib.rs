//! The admin console: operators find a user's sessions and revoke them, sign a user out
//! everywhere, and register services, change their permissions and remove them, in the browser. `sessanger serve` serves it
//! under `/admin` when it is enabled (`console.enabled: true` or `--admin-console`), on the
//! API's own port: no other process, nothing built or loaded at run time.
//!
//! # Signing in
//! An operator signs in with a service token. A service with `admin` may do everything; one
//! with only `read` sees everything and changes nothing (its pages have no buttons, and its
//! posts are refused). The console keeps the operator's session in sessanger itself, through
//! `sessanger-tower` (an `HttpOnly`, `SameSite=Strict` cookie scoped to `/admin`, `Secure`
//! unless configured off for plain-HTTP development, ended after the idle timeout); the token
//! is never kept. Each request checks that the operator's service is still registered, so a
//! service removed anywhere signs its operators out. Every change is made by the manager
//! acting for the operator's service, so the audit trail names it.
//!
//! # What a page can never do
//! - Forge a change: every form carries the session's anti-forgery token, compared in constant
//!   time; the cookie is `SameSite=Strict` besides.
//! - Run injected markup: maud escapes every value it writes; the pages load one stylesheet and
//!   one script of their own, and `Content-Security-Policy` allows nothing else (no inline
//!   script, no frames, forms post only here).
//! - Leak a session: pages name sessions by fingerprint, never by id (an id is a bearer
//!   secret); a revoke names the user and the fingerprint.
//! - Show a sealed value: the attributes the store seals at rest ([`ConsoleOptions::sealed`])
//!   appear as sealed, with their names only; the manager opens them for its callers, the
//!   page never writes them.
//!
//! # Layout
//! - `lib.rs`: [`ConsoleOptions`], the router and the headers every page carries.
//! - `operator.rs`: who is signed in ([`Operator`](operator::Operator)), signing in and out,
//!   the anti-forgery check.
//! - `overview.rs`: the overview: the store's health, live sessions, the last hour's chart.
//! - `live.rs`: the latest events, whichever node made them, then each new one as a stream;
//!   a session's history.
//! - `actions.rs`: the pages' handlers: users, their sessions, one session's attributes and
//!   history, services.
//! - `throttle.rs`: failed sign-ins by address, and how long the next try waits.
//! - `pages.rs`: the HTML.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use sessanger_core::SessionManager;
use sessanger_store_encrypted::Selection;
use sessanger_tower::{SessangerStore, SessionOptions};
use tokio::sync::watch;
use tower_sessions::cookie::SameSite;

mod actions;
mod live;
mod operator;
mod overview;
mod pages;
mod throttle;

/// Where `sessanger serve` mounts the console; the pages' links and the cookie's path.
pub const MOUNT: &str = "/admin";

/// How the console keeps its operators' sessions.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sessanger_console::ConsoleOptions;
///
/// // Plain HTTP on a developer's machine: the cookie must not ask for HTTPS.
/// let options = ConsoleOptions { secure_cookie: false, ..ConsoleOptions::default() };
/// assert_eq!(options.idle_timeout, Duration::from_secs(15 * 60));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Whether the session cookie is `Secure` (sent over HTTPS only). Default `true`.
    pub secure_cookie: bool,
    /// How long an operator's session lives unused. Default 15 minutes.
    pub idle_timeout: Duration,
    /// The attributes the store seals at rest (`encryption.attributes`), if it seals any: a
    /// session's page shows them as sealed, without their values.
    pub sealed: Option<Selection>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions { secure_cookie: true, idle_timeout: Duration::from_secs(15 * 60), sealed: None }
    }
}

/// What every handler shares: the manager, the store of the console's own sessions, the
/// failed sign-ins by address, which attributes are sealed, and whether the server stops.
#[derive(Clone, Debug)]
struct Console {
    manager: SessionManager,
    store: SessangerStore,
    failures: Arc<throttle::Failures>,
    sealed: Option<Arc<Selection>>,
    stopping: watch::Receiver<bool>,
}

/// The console's routes, relative to where they are mounted ([`MOUNT`]). `stopping` turns
/// `true` when the server stops: the live page's streams end then.
pub fn router(manager: SessionManager, options: ConsoleOptions, stopping: watch::Receiver<bool>) -> Router {
    let store = SessangerStore::new(manager.clone());
    let sessions = SessionOptions::new()
        .with_cookie_name("sessanger_console")
        .with_secure(options.secure_cookie)
        .with_same_site(SameSite::Strict)
        .with_path(MOUNT)
        .with_max_lifetime(options.idle_timeout)
        .layer(store.clone());
    Router::new()
        .route("/", get(overview::overview))
        .route("/sign-in", get(operator::sign_in_page).post(operator::sign_in))
        .route("/sign-out", post(operator::sign_out))
        .route("/users", get(actions::users))
        .route("/users/session", get(actions::session))
        .route("/users/revoke", post(actions::revoke))
        .route("/users/sign-out-everywhere", post(actions::sign_out_everywhere))
        .route("/services", get(actions::services).post(actions::register))
        .route("/live", get(live::live))
        .route("/live/events", get(live::stream))
        .route("/services/permissions", post(actions::change_permissions))
        .route("/services/remove", post(actions::remove))
        .route("/static/console.css", get(|| async { asset("text/css", include_str!("../static/console.css")) }))
        .route("/static/console.js", get(|| async { asset("text/javascript", include_str!("../static/console.js")) }))
        .with_state(Console {
            manager,
            store,
            failures: Arc::default(),
            sealed: options.sealed.map(Arc::new),
            stopping,
        })
        .layer(sessions)
        .layer(axum::middleware::map_response(protect))
}

/// A form the console's pages post; a malformed one gets a page saying so, not axum's plain
/// text. A form a browser says comes from another site (`Sec-Fetch-Site`) is refused before
/// it is read: with the anti-forgery token this also covers the sign-in form, which has none
/// yet (a page elsewhere must not sign a browser in as its own service).
#[derive(Debug)]
struct Posted<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let site = request.headers().get("sec-fetch-site").map(|site| site.as_bytes());
        // `same-origin`, or `none` (typed or bookmarked); absent from clients that are not browsers.
        if site.is_some_and(|site| site != b"same-origin" && site != b"none") {
            tracing::warn!("console: a form posted from another site");
            return Err(pages::refused(StatusCode::FORBIDDEN, "This form was sent from another site."));
        }
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(form)) => Ok(Posted(form)),
            Err(rejection) => Err(pages::refused(rejection.status(), "The form was incomplete or malformed.")),
        }
    }
}

/// `303 See Other` to the console's page at `path` (relative to [`MOUNT`]): after a post, the
/// browser asks for it with `GET`.
fn see(path: &str) -> Response {
    axum::response::Redirect::to(&format!("{MOUNT}{path}")).into_response()
}

/// A file of the console's own, compiled in.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

/// What a browser must not do with a console page: run or load anything but the console's own
/// files, post anywhere else, show it in a frame, or send its address elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
