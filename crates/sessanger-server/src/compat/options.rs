//! [`CompatOptions`]: which foreign APIs the server also serves, and how each authenticates.
//!
//! Each API is off unless enabled. An enabled API is open by default ([`CompatAuth::None`]),
//! because the clients it replaces send no sessanger token; it then acts as its `service` (the
//! audit trail names it) with its `permissions`. [`CompatAuth::Token`] makes it demand a
//! sessanger service token, as `/v1` does.

use std::{fmt, time::Duration};

use sessanger_core::{Permission, ServiceId};

/// The foreign APIs to serve; all off by default.
///
/// # Examples
/// ```
/// use sessanger_server::{CompatAuth, CompatOptions, ServerOptions};
///
/// let mut compat = CompatOptions::default();
/// compat.sessman.enabled = true;
/// compat.sessman.auth = CompatAuth::Token;
/// let options = ServerOptions { compat, ..ServerOptions::default() };
/// assert!(!options.compat.back_session.enabled);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompatOptions {
    /// back-session's API under `/a01`.
    pub back_session: BackSessionOptions,
    /// sessman's API under `/sessman`.
    pub sessman: SessmanOptions,
}

impl Default for CompatOptions {
    /// Both off; once enabled, open ([`CompatAuth::None`]), each as its own service, which may
    /// read and write.
    fn default() -> Self {
        let service = |name: &str| name.parse::<ServiceId>().expect("a valid service id");
        let read_write = vec![Permission::Read, Permission::Write];
        CompatOptions {
            back_session: BackSessionOptions {
                enabled: false,
                auth: CompatAuth::None,
                service: service("back-session"),
                permissions: read_write.clone(),
                session_ttl: None,
            },
            sessman: SessmanOptions {
                enabled: false,
                auth: CompatAuth::None,
                api_key: None,
                service: service("sessman"),
                permissions: read_write,
                session_ttl: None,
            },
        }
    }
}

/// How a compat API authenticates its callers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CompatAuth {
    /// No sessanger token (the default): the API acts as its service, with its permissions.
    /// sessman may still demand its own API key ([`SessmanOptions::api_key`]).
    #[default]
    None,
    /// A sessanger service token as `Authorization: Bearer`, exactly as `/v1`.
    Token,
}

/// back-session's API, `/a01/session..`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackSessionOptions {
    /// Whether the API is served (default false).
    pub enabled: bool,
    /// How callers authenticate.
    pub auth: CompatAuth,
    /// The service requests act as under [`CompatAuth::None`] (default `back-session`).
    pub service: ServiceId,
    /// What requests may do under [`CompatAuth::None`] (default read and write).
    pub permissions: Vec<Permission>,
    /// Idle lifetime of sessions created here; `None`: the manager's policy.
    pub session_ttl: Option<Duration>,
}

/// sessman's API, `/sessman/{new,update,get}`. Debug hides the API key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessmanOptions {
    /// Whether the API is served (default false).
    pub enabled: bool,
    /// How callers authenticate.
    pub auth: CompatAuth,
    /// sessman's own API key: when set (with [`CompatAuth::None`]), every request must send it
    /// as `Authorization: Bearer`, `X-Custom-Auth` or an `apikey` parameter.
    pub api_key: Option<String>,
    /// The service requests act as under [`CompatAuth::None`] (default `sessman`).
    pub service: ServiceId,
    /// What requests may do under [`CompatAuth::None`] (default read and write).
    pub permissions: Vec<Permission>,
    /// Idle lifetime of sessions created or updated here; `None`: [`SESSMAN_DEFAULT_TTL`].
    pub session_ttl: Option<Duration>,
}

impl fmt::Debug for SessmanOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let api_key = self.api_key.as_ref().map(|_| "<redacted>");
        let mut out = f.debug_struct("SessmanOptions");
        out.field("enabled", &self.enabled).field("auth", &self.auth).field("api_key", &api_key);
        out.field("service", &self.service).field("permissions", &self.permissions);
        out.field("session_ttl", &self.session_ttl).finish()
    }
}

/// sessman's own session lifetime, used when nothing sets another.
pub const SESSMAN_DEFAULT_TTL: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_api_key() {
        let mut compat = CompatOptions::default();
        compat.sessman.api_key = Some("1234".into());
        let debug = format!("{compat:?}");
        assert!(!debug.contains("1234") && debug.contains("<redacted>"), "{debug}");
    }
}
