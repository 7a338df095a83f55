//! sessanger as the session store of axum and tower apps.
//!
//! axum apps keep sessions with [tower-sessions](tower_sessions); [`SessangerStore`] is a
//! tower-sessions store, so an app keeps its `Session` extractor and gains what tower-sessions
//! lacks: each session is indexed by its user, so the app can list a user's devices and sign
//! them all out, and every other service sees the same sessions through sessanger's `/v1` API
//! (`/v1/users/{user_id}/sessions` lists a session logged in through the web app).
//!
//! # Two modes
//! - **In process**: [`SessangerStore::new`] over a `SessionManager` on any sessanger store
//!   (embedded, Redis, SQL, …): no extra service to run (the example below).
//! - **Remote**: [`SessangerStore::remote`] over a `sessanger_client::Client` of a running
//!   `sessanger serve`, authenticated as a service with the `read` and `write` permissions:
//!   several app instances, and every other service, share the sessions. Only the
//!   constructor changes:
//!
//! ```no_run
//! # use std::time::Duration;
//! use sessanger_client::Client;
//! use sessanger_tower::{SessangerStore, SessionOptions};
//!
//! # fn main() -> Result<(), sessanger_client::ClientError> {
//! let client = Client::builder("http://sessanger:8090", "web.s3cret").timeout(Duration::from_secs(2)).build()?;
//! let store = SessangerStore::remote(client);
//! let layer = SessionOptions::new().layer(store.clone());
//! # let _: axum::Router = axum::Router::new().layer(layer);
//! # Ok(()) }
//! ```
//!
//! `SessangerStore` alone names the in-process store (the example below); handlers of a remote
//! one take `State<SessangerStore<Client>>`, and code for both is generic over
//! `U: Upstream`, as `examples/web-app` is (`--remote URL --token T` picks the mode).
//!
//! Both modes create sessions the way every sessanger session is created (under the id the
//! cookie names, `SessionManager::create_session_with_id` or `POST /v1/sessions` with a
//! `session_id`), so they are announced, audited and counted against per-user limits alike.
//!
//! # Layout
//! - `store.rs`: [`SessangerStore`], the `tower_sessions::SessionStore`, written once over an
//!   [`Upstream`]: the contract, users, expiry.
//! - `upstream.rs`: the two upstreams, a `SessionManager` in process and a remote sessanger's
//!   `sessanger_client::Client`, each operation translated to one manager call or one `/v1`
//!   request, and their errors ([`UpstreamError`]) to what the contract needs.
//! - `ids.rs`: how the 128-bit tower-sessions id in the cookie names a sessanger session id
//!   ([`session_id_of`]), and the anonymous users of sessions nobody has logged in to.
//! - `login.rs`: log in with a fresh id (fixation defence), the current user, sign out
//!   everywhere.
//! - `options.rs`: [`SessionOptions`], beego's cookie and lifetime options as a
//!   tower-sessions `SessionManagerLayer`.
//! - `express.rs`: [`ExpressSignatureLayer`], the cookie signed as express-session signs it,
//!   so an Express app on `sessanger/express` (the TypeScript package) shares the sessions.
//!
//! # Use sessanger from an axum app
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//!
//! use axum::{Router, extract::State, routing::{get, post}};
//! use sessanger_core::{Device, SessionManager};
//! use sessanger_store_embedded::EmbeddedStore;
//! use sessanger_tower::{SessangerStore, SessionOptions};
//! use tower_sessions::Session;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Sessions persist in ./sessions; the embedded store is one process's at a time.
//!     let embedded = Arc::new(EmbeddedStore::open("sessions")?);
//!     let manager = SessionManager::new(embedded, "web".parse()?, Duration::from_secs(30 * 60));
//!     let store = SessangerStore::new(manager);
//!     let _reaper = store.manager().spawn_reaper(Duration::from_secs(60));
//!
//!     let app = Router::new()
//!         .route("/", get(count))
//!         .route("/login", post(login))
//!         .route("/sign-out-everywhere", post(sign_out_everywhere))
//!         .with_state(store.clone())
//!         .layer(SessionOptions::new().with_secure(false).layer(store));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//!
//! async fn count(session: Session) -> String {
//!     let visits: u64 = session.get("visits").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("visits", visits).await;
//!     format!("visit {visits}")
//! }
//!
//! // Check a password first; then the session moves to a fresh id, stored under the user.
//! async fn login(State(store): State<SessangerStore>, session: Session) -> &'static str {
//!     let user = "alice".parse().expect("a valid user id");
//!     match store.log_in(&session, &user, Device::default()).await {
//!         Ok(()) => "welcome",
//!         Err(_) => "try again",
//!     }
//! }
//!
//! async fn sign_out_everywhere(State(store): State<SessangerStore>, session: Session) -> String {
//!     match store.sign_out_everywhere(&session).await {
//!         Ok(n) => format!("{n} sessions signed out"),
//!         Err(_) => "try again".into(),
//!     }
//! }
//! ```

mod express;
mod ids;
mod login;
mod options;
mod store;
mod upstream;

pub use express::{ExpressSignature, ExpressSignatureLayer};
pub use ids::{ANONYMOUS_PREFIX, session_id_of};
pub use login::SignOutError;
pub use options::SessionOptions;
pub use store::{DEVICE_KEY, SessangerStore};
pub use upstream::{Upstream, UpstreamError};
