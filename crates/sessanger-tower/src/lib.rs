//! sessanger as the session store of axum and tower apps.
//!
//! axum apps keep sessions with [tower-sessions](tower_sessions); [`SessangerStore`] is a
//! tower-sessions store, so an app keeps its `Session` extractor and gains what tower-sessions
//! lacks: each session is indexed by its user, so the app can list a user's devices and sign
//! them all out, and every other service sees the same sessions through sessanger's `/v1` API
//! (`/v1/users/{user_id}/sessions` lists a session logged in through the web app).
//!
//! # Layout
//! - `store.rs`: [`SessangerStore`], the `tower_sessions::SessionStore` over a sessanger
//!   `SessionManager` (any sessanger store, in process): the contract, users, expiry.
//! - `ids.rs`: how the 128-bit tower-sessions id in the cookie names a sessanger session id
//!   ([`session_id_of`]), and the anonymous users of sessions nobody has logged in to.
//! - `login.rs`: log in with a fresh id (fixation defence), the current user, sign out
//!   everywhere.
//! - `options.rs`: [`SessionOptions`], beego's cookie and lifetime options as a
//!   tower-sessions `SessionManagerLayer`.
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
//!     let backend = Arc::new(EmbeddedStore::open("sessions")?);
//!     let manager = SessionManager::new(backend, "web".parse()?, Duration::from_secs(30 * 60));
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

mod ids;
mod login;
mod options;
mod store;

pub use ids::{ANONYMOUS_PREFIX, session_id_of};
pub use login::SignOutError;
pub use options::SessionOptions;
pub use store::{DEVICE_KEY, SessangerStore};
