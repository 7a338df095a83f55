//! The HTTP API of sessanger: an axum router over a [`SessionManager`].
//!
//! [`app`] builds it (tests drive it with `tower::ServiceExt::oneshot`, no socket
//! needed); [`serve`] runs it on a listener until a shutdown future resolves; [`openapi`] is the
//! API description, generated from the handlers and also served at `/openapi.json`.
//!
//! Every `/v1` route needs `Authorization: Bearer <service token>`; the request then acts as
//! that service (`SessionManager::for_service`), so the audit trail names the caller. Every
//! failure is one JSON shape, `{"error": {"code": "<stable_snake_case>", "message": "..."}}`.
//!
//! # Layout
//! - `compat/`: the foreign APIs: `compat/back_session.rs`, `compat/sessman.rs`, and in
//!   `compat/mod.rs` what they share: who may call them, bodies parsed whatever their
//!   Content-Type, errors in each API's own shape, compare-and-set rewrites; `compat/options.rs`:
//!   [`CompatOptions`], which of them to serve and how they authenticate.
//! - `routes/`: one file per resource, each a `routes()` router and its handlers:
//!   `routes/sessions.rs` (`/v1/sessions/..`, `/v1/stats`), `routes/users.rs`
//!   (`/v1/users/{user_id}/sessions`), `routes/services.rs` (the service registry),
//!   `routes/events.rs` (`/v1/events`, the event log as Server-Sent Events),
//!   `routes/ops.rs` (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, the fallbacks).
//! - `auth.rs`: the `Caller<P>` extractor: bearer token, verified service, permission `P`.
//! - `extract.rs`: extractors whose failures are `ApiError`s: JSON bodies, ids in the path,
//!   `If-Match`.
//! - `reply.rs`: session responses: the shared wire body (`sessanger_core::wire`, which
//!   clients decode too) with its `ETag` and `Location` headers.
//! - `error.rs`: `ApiError`, its single `IntoResponse`, and the mapping of manager errors and
//!   axum rejections.
//! - `listen.rs`: the accept loop: hyper's HTTP/1 connections with header-read and idle
//!   timeouts and a cap on how many are open ([`ConnectionOptions`]).
//! - `app.rs`: [`App`], the router with the session read served ahead of it.
//! - `edge.rs`: the one middleware every request goes through: its timeout, its metrics and
//!   log line, `Cache-Control: no-store`.
//! - `metrics.rs`: the Prometheus recorder of an [`AppState`] and what it records per request.
//! - `openapi.rs`: the OpenAPI document.

use std::{future::Future, num::NonZeroUsize, sync::Arc, time::Duration};

use sessanger_core::SessionManager;
use tokio::{net::TcpListener, sync::watch};

mod app;
mod auth;
mod compat;
mod conditional;
mod edge;
mod error;
mod extract;
mod listen;
mod metrics;
mod openapi;
mod reply;
mod routes;

pub use app::{App, AppFuture};
pub use compat::options::{BackSessionOptions, CompatAuth, CompatOptions, SESSMAN_DEFAULT_TTL, SessmanOptions};
pub use listen::ConnectionOptions;
pub use openapi::openapi;
pub use routes::events::EventOptions;

/// How often histogram samples are folded into buckets when nobody scrapes `/metrics`;
/// without it, samples would pile up in memory between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Tunables of the HTTP layer.
///
/// # Examples
/// ```
/// use sessanger_server::ServerOptions;
///
/// let options = ServerOptions { body_limit: 64 * 1024, ..ServerOptions::default() };
/// assert_eq!(options.request_timeout.as_secs(), 30);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Largest request body accepted, in bytes; a larger one gets 413 `payload_too_large`.
    /// Default 1 MiB.
    pub body_limit: usize,
    /// Longest a request may take, reading its body included; a slower one gets 503
    /// `request_timeout`. Bounds what a hung store or a trickling client can hold. Default 30 s.
    pub request_timeout: Duration,
    /// Limits on connections: header-read and idle timeouts, how many at once.
    pub connections: ConnectionOptions,
    /// Which foreign APIs to serve, and how they authenticate; all off by default.
    pub compat: CompatOptions,
    /// How `GET /v1/events` streams.
    pub events: EventOptions,
    /// How many bytes of session answers to keep as written, so that a session read again
    /// unchanged is not written again (`reply.rs`, `Answers`); 0 keeps none. Default 16 MiB.
    pub json_cache_size: usize,
    /// The admin console under [`sessanger_console::MOUNT`] (`/admin`), if served. Off by
    /// default.
    pub console: Option<sessanger_console::ConsoleOptions>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            connections: ConnectionOptions::default(),
            compat: CompatOptions::default(),
            events: EventOptions::default(),
            json_cache_size: 16 << 20,
            console: None,
        }
    }
}

/// What every handler shares: the manager, the metrics recorder and the options.
///
/// Each `AppState` owns its own Prometheus recorder instead of installing a global one, so
/// any number of states (one per test) coexist and `/metrics` shows only this server's numbers.
/// Cheap to clone.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use sessanger_core::{SessionManager, SessionPolicy};
/// use sessanger_server::{AppState, ServerOptions};
/// use sessanger_store_memory::MemoryStore;
///
/// let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
/// let app = sessanger_server::app(AppState::new(manager, ServerOptions::default()));
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct AppState {
    manager: SessionManager,
    metrics: metrics::Metrics,
    // Shared, not copied: axum clones the state for every request, and the compat settings
    // hold strings.
    options: Arc<ServerOptions>,
    /// Turns true when the server stops: event streams, which never end by themselves, end.
    closing: Arc<watch::Sender<bool>>,
    answers: reply::SharedAnswers,
}

impl AppState {
    /// A state serving `manager`'s sessions. Requests act as the service their token names,
    /// whatever service `manager` itself acts for.
    pub fn new(manager: SessionManager, options: ServerOptions) -> Self {
        let answers = NonZeroUsize::new(options.json_cache_size).map(|budget| Arc::new(reply::Answers::new(budget)));
        AppState {
            manager,
            metrics: metrics::Metrics::new(),
            options: Arc::new(options),
            closing: Arc::new(watch::Sender::new(false)),
            answers: reply::SharedAnswers(answers),
        }
    }
}

/// The whole API, ready for `axum::serve` or `oneshot` in tests.
pub fn app(state: AppState) -> App {
    let mut router = routes::router(&state.options.compat);
    if let Some(console) = state.options.console.clone() {
        let console = sessanger_console::router(state.manager.clone(), console, state.closing.subscribe());
        router = router.nest_service(sessanger_console::MOUNT, console);
    }
    let edge = edge::EdgeLayer::new(&state);
    App::new(router.layer(edge.clone()).with_state(state.clone()), state, edge)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then stops accepting connections
/// and returns once the requests in flight have been answered. Connections are bounded as
/// [`ServerOptions::connections`] says.
///
/// # Examples
/// ```no_run
/// # use std::sync::Arc;
/// # use sessanger_core::{SessionManager, SessionPolicy};
/// # use sessanger_server::{AppState, ServerOptions};
/// # use sessanger_store_memory::MemoryStore;
/// # async fn run() -> std::io::Result<()> {
/// # let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
/// let state = AppState::new(manager, ServerOptions::default());
/// sessanger_server::serve(listener, state, async { /* e.g. wait for SIGTERM */ }).await
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.metrics.clone();
    let connections = state.options.connections;
    let closing = Arc::clone(&state.closing);
    let shutdown = async move {
        shutdown.await;
        closing.send_replace(true);
    };
    // Only the console reads the client's address (it slows down failing sign-ins): telling
    // every request would cost each API request an extension, and a resize of the map.
    let told_the_client = state.options.console.as_ref().map(|_| sessanger_console::MOUNT);
    let server = listen::accept_loop(listener, app(state), &connections, told_the_client, shutdown);
    // Upkeep runs inside this future rather than as a spawned task, so it stops with the
    // server, and also when the caller drops `serve` instead of shutting it down.
    tokio::select! {
        served = server => served,
        never = metrics.run_upkeep(METRICS_UPKEEP) => match never {},
    }
}
