//! [`SessionOptions`]: beego's session options as a tower-sessions [`SessionManagerLayer`].

use std::time::Duration;

use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::{SessangerStore, Upstream};

/// The cookie and lifetime options of beego's `NewManager`, applied to tower-sessions'
/// [`SessionManagerLayer`] and to the [`SessangerStore`] behind it.
///
/// | beego | here | default |
/// |---|---|---|
/// | `cookieName` | [`with_cookie_name`](Self::with_cookie_name) | `sid` |
/// | `secure` | [`with_secure`](Self::with_secure) | `true` |
/// | (always on) | [`with_http_only`](Self::with_http_only) | `true` |
/// | | [`with_same_site`](Self::with_same_site) | `Lax` |
/// | `domain` | [`with_domain`](Self::with_domain) | host only |
/// | | [`with_path`](Self::with_path) | `/` |
/// | `cookieLifeTime` | [`with_cookie_lifetime`](Self::with_cookie_lifetime) | `None`: until the browser closes |
/// | `maxLifetime` | [`with_max_lifetime`](Self::with_max_lifetime) | 30 minutes idle, on the server |
/// | `gclifetime` | `SessionManager::spawn_reaper` | |
///
/// The cookie lifetime is what the browser keeps; the max lifetime is how long the server
/// keeps a session nobody uses. A browser-session cookie thus still dies on the server after
/// the max lifetime, and a long-lived cookie outlives nothing the server has deleted.
///
/// beego's `enableSetCookie: false` has no counterpart: tower-sessions always sends the
/// cookie when a session is saved.
///
/// # Examples
/// ```
/// use std::{sync::Arc, time::Duration};
/// use sessanger_core::{SessionManager, SessionPolicy};
/// use sessanger_store_memory::MemoryStore;
/// use sessanger_tower::{SessangerStore, SessionOptions};
/// use tower_sessions::cookie::SameSite;
///
/// let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
/// let layer = SessionOptions::new()
///     .with_cookie_name("gosessionid")
///     .with_same_site(SameSite::Strict)
///     .with_cookie_lifetime(Some(Duration::from_secs(3600)))
///     .with_max_lifetime(Duration::from_secs(3600))
///     .layer(SessangerStore::new(manager));
/// let app: axum::Router = axum::Router::new().layer(layer);
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct SessionOptions {
    cookie_name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    domain: Option<String>,
    path: String,
    cookie_lifetime: Option<Duration>,
    max_lifetime: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            cookie_name: "sid".into(),
            secure: true,
            http_only: true,
            // Lax, not Strict: a user following a link to the app from elsewhere arrives
            // logged in; cross-site POSTs still carry no cookie.
            same_site: SameSite::Lax,
            domain: None,
            path: "/".into(),
            cookie_lifetime: None,
            max_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

impl SessionOptions {
    /// The defaults of the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cookie's name.
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Whether the cookie is sent over HTTPS only. Turn off only for plain-HTTP development.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Whether page scripts are denied the cookie.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Which cross-site requests carry the cookie.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The domain the cookie is sent to, subdomains included; by default the host only.
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The path prefix the cookie is sent to.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// How long the browser keeps the cookie after the last response that set it; `None`
    /// until the browser closes.
    #[must_use]
    pub fn with_cookie_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.cookie_lifetime = lifetime;
        self
    }

    /// How long the server keeps a session without a request; [`layer`](Self::layer) sets it
    /// as the store's [`with_idle_ttl`](SessangerStore::with_idle_ttl).
    #[must_use]
    pub fn with_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// The layer to put on an axum `Router`, storing sessions in `store` (in process or
    /// remote).
    pub fn layer<U: Upstream>(self, store: SessangerStore<U>) -> SessionManagerLayer<SessangerStore<U>> {
        let expiry = match self.cookie_lifetime {
            None => Expiry::OnSessionEnd,
            // Out-of-range lifetimes (centuries) saturate rather than fail.
            Some(d) => Expiry::OnInactivity(time::Duration::try_from(d).unwrap_or(time::Duration::MAX)),
        };
        let layer = SessionManagerLayer::new(store.with_idle_ttl(self.max_lifetime))
            .with_name(self.cookie_name)
            .with_secure(self.secure)
            .with_http_only(self.http_only)
            .with_same_site(self.same_site)
            .with_path(self.path)
            .with_expiry(expiry);
        match self.domain {
            Some(domain) => layer.with_domain(domain),
            None => layer,
        }
    }
}
