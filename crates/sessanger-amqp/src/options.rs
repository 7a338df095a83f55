//! [`BrokerOptions`]: the broker and how sessanger uses it, as plain values. Whoever reads a
//! configuration (the binary) fills them in; everything else in this crate is built from them.

use std::{collections::BTreeMap, fmt};

use lapin::uri::{AMQPUri, AMQPUserInfo};

/// The RabbitMQ broker sessanger takes requests on and provisions users' accounts in.
///
/// # Examples
/// ```
/// use sessanger_amqp::BrokerOptions;
///
/// let mut options = BrokerOptions::new("amqp://rabbit.internal:5672", "sessanger", "s3cret");
/// options.routing_keys.insert("sessanger1".into(), vec!["*".into()]);
/// assert_eq!(options.management_url(), "http://rabbit.internal:15672");
/// assert!(!format!("{options:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerOptions {
    /// The broker's `amqp://` or `amqps://` URL. Each connection puts its own credentials and
    /// vhost in, replacing any the URL holds.
    pub url: String,
    /// The account the session managers connect and provision with; their requests arrive in
    /// the vhost of the same name.
    pub login: String,
    /// That account's password.
    pub password: String,
    /// The password every user's broker account gets; `None`: the user's login password.
    pub user_password: Option<String>,
    /// Which session manager serves which users: routing key → user names, where
    /// [`WILDCARD`](crate::routing::WILDCARD) stands for every user listed under no other key.
    /// Empty: a session manager serves every user.
    pub routing_keys: BTreeMap<String, Vec<String>>,
    /// The PAM service users authenticate against.
    pub pam_service: String,
    /// The base URL of RabbitMQ's management HTTP API; `None`: see
    /// [`BrokerOptions::management_url`].
    pub management_url: Option<String>,
    /// Whether a user's broker account outlives its last session (only its connections are
    /// closed then).
    pub keep_user: bool,
    /// Whether a user's vhost, and the messages in it, go with its last session.
    pub remove_vhost: bool,
}

impl fmt::Debug for BrokerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user_password = self.user_password.as_ref().map(|_| "<redacted>");
        let mut out = f.debug_struct("BrokerOptions");
        out.field("url", &self.url).field("login", &self.login).field("password", &"<redacted>");
        out.field("user_password", &user_password).field("routing_keys", &self.routing_keys);
        out.field("pam_service", &self.pam_service).field("management_url", &self.management_url);
        out.field("keep_user", &self.keep_user).field("remove_vhost", &self.remove_vhost).finish()
    }
}

impl BrokerOptions {
    /// The PAM service users authenticate against unless told otherwise.
    pub const DEFAULT_PAM_SERVICE: &'static str = "sessanger";

    /// The broker at `url`, used as `login`: no routing table, users' broker passwords are
    /// their login passwords, PAM service [`BrokerOptions::DEFAULT_PAM_SERVICE`], and a user's
    /// account goes with its last session while its vhost stays.
    pub fn new(url: impl Into<String>, login: impl Into<String>, password: impl Into<String>) -> BrokerOptions {
        BrokerOptions {
            url: url.into(),
            login: login.into(),
            password: password.into(),
            user_password: None,
            routing_keys: BTreeMap::new(),
            pam_service: Self::DEFAULT_PAM_SERVICE.to_owned(),
            management_url: None,
            keep_user: false,
            remove_vhost: false,
        }
    }

    /// The management API's base URL: `management_url` without a trailing `/`, else
    /// RabbitMQ's default, port 15672 on the broker's host.
    pub fn management_url(&self) -> String {
        if let Some(url) = &self.management_url {
            return url.trim_end_matches('/').to_owned();
        }
        let url = self.url.trim();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
        let host = match host_port.rsplit_once(':') {
            Some((host, _)) if !host_port.ends_with(']') => host,
            _ => host_port,
        };
        format!("http://{host}:15672")
    }

    /// The AMQP URI of [`url`](Self::url) with `login`/`password` and `vhost` put in.
    pub fn uri(&self, login: &str, password: &str, vhost: &str) -> Result<AMQPUri, String> {
        let mut uri: AMQPUri = self.url.trim().parse()?;
        uri.authority.userinfo = AMQPUserInfo { username: login.to_owned(), password: password.to_owned() };
        uri.vhost = vhost.to_owned();
        Ok(uri)
    }

    /// The URI the session managers' own account connects with: its vhost is named after it.
    pub fn manager_uri(&self) -> Result<AMQPUri, String> {
        self.uri(&self.login, &self.password, &self.login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_management_api_defaults_to_port_15672_of_the_broker_host() {
        let at = |url: &str| BrokerOptions::new(url, "s", "p").management_url();
        assert_eq!(at("amqp://rabbit:5672/tsup"), "http://rabbit:15672");
        assert_eq!(at("amqp://u:p@10.0.0.1"), "http://10.0.0.1:15672");
        assert_eq!(at("amqps://[::1]:5671/vhost"), "http://[::1]:15672");
        let mut options = BrokerOptions::new("amqp://rabbit:5672", "s", "p");
        options.management_url = Some("https://mgmt.internal/".into());
        assert_eq!(options.management_url(), "https://mgmt.internal");
    }

    #[test]
    fn connections_put_their_own_credentials_and_vhost_in() {
        let options = BrokerOptions::new("amqp://x:y@rabbit:5673/other", "sessanger", "pw");
        let uri = options.manager_uri().unwrap();
        assert_eq!(
            (uri.authority.userinfo.username.as_str(), uri.authority.userinfo.password.as_str()),
            ("sessanger", "pw")
        );
        assert_eq!(
            (uri.authority.host.as_str(), uri.authority.port, uri.vhost.as_str()),
            ("rabbit", 5673, "sessanger")
        );
    }
}
