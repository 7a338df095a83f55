//! [`BrokerOptions`]: the broker and how sessanger uses it, as plain values. Whoever reads a
//! configuration (the binary) fills them in; everything else in this crate is built from them.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use lapin::uri::{AMQPUri, AMQPUserInfo};
use sessanger_tls::{LoadedTls, TlsOptions};

/// A broker account: a login, and its password where this process needs it. Debug hides the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The user name.
    pub login: String,
    /// The password; `None` where this process never connects as the account.
    pub password: Option<String>,
}

impl Account {
    /// `login` with `password`.
    pub fn new(login: impl Into<String>, password: impl Into<String>) -> Account {
        Account { login: login.into(), password: Some(password.into()) }
    }

    /// The password, or why there is none to connect with.
    pub fn password(&self) -> Result<&str, String> {
        self.password.as_deref().ok_or_else(|| format!("no password is configured for broker account `{}`", self.login))
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = self.password.as_ref().map(|_| "<redacted>");
        f.debug_struct("Account").field("login", &self.login).field("password", &password).finish()
    }
}

/// The RabbitMQ broker sessanger takes requests on and provisions users' accounts in.
///
/// Three kinds of broker accounts meet here: the session managers' own (`manager`, tagged
/// `administrator`: the management API demands it to create users and vhosts), the clients'
/// (`client`, which may only publish requests), and each logged-in user's.
///
/// # Examples
/// ```
/// use sessanger_amqp::{Account, BrokerOptions};
///
/// let mut options = BrokerOptions::new("amqp://rabbit.internal:5672", "sessanger", "s3cret");
/// options.client = Account::new("sessanger-client", "c0nnect");
/// options.routing_keys.insert("sessanger1".into(), vec!["*".into()]);
/// assert_eq!(options.management_url(), "http://rabbit.internal:15672");
/// assert_eq!(options.client_uri().unwrap().vhost, "sessanger");
/// assert!(!format!("{options:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerOptions {
    /// The broker's `amqp://` or `amqps://` URL. Each connection puts its own credentials and
    /// vhost in, replacing any the URL holds.
    pub url: String,
    /// The account the session managers connect and provision with; requests arrive in the
    /// vhost of the same name. Clients need only its login.
    pub manager: Account,
    /// The account clients send requests with: it may publish to [`EXCHANGE`](crate::EXCHANGE)
    /// and nothing else ([`BrokerAdmin::setup`](crate::broker::BrokerAdmin::setup)).
    pub client: Account,
    /// Accounts trusted with any user's sessions: their `list` and `revoke_all` need no user
    /// password and their `login` none either. The managers' own account always is.
    pub admins: BTreeSet<String>,
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
    /// For an `amqps://` URL and an `https://` management API: the CAs to trust instead of
    /// the system's, the certificate to show a broker that asks for one.
    pub tls: TlsOptions,
}

impl fmt::Debug for BrokerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user_password = self.user_password.as_ref().map(|_| "<redacted>");
        let mut out = f.debug_struct("BrokerOptions");
        out.field("url", &self.url).field("manager", &self.manager).field("client", &self.client);
        out.field("admins", &self.admins).field("user_password", &user_password);
        out.field("routing_keys", &self.routing_keys).field("pam_service", &self.pam_service);
        out.field("management_url", &self.management_url);
        out.field("keep_user", &self.keep_user).field("remove_vhost", &self.remove_vhost);
        out.field("tls", &self.tls).finish()
    }
}

impl BrokerOptions {
    /// The PAM service users authenticate against unless told otherwise.
    pub const DEFAULT_PAM_SERVICE: &'static str = "sessanger";

    /// The clients' account unless told otherwise.
    pub const DEFAULT_CLIENT_LOGIN: &'static str = "sessanger-client";

    /// The broker at `url`, with the managers' account `login`: clients connect as
    /// [`BrokerOptions::DEFAULT_CLIENT_LOGIN`] (with no password yet), no admins, no routing
    /// table, users' broker passwords are their login passwords, PAM service
    /// [`BrokerOptions::DEFAULT_PAM_SERVICE`], and a user's account goes with its last
    /// session while its vhost stays.
    pub fn new(url: impl Into<String>, login: impl Into<String>, password: impl Into<String>) -> BrokerOptions {
        BrokerOptions {
            url: url.into(),
            manager: Account::new(login, password),
            client: Account { login: Self::DEFAULT_CLIENT_LOGIN.to_owned(), password: None },
            admins: BTreeSet::new(),
            user_password: None,
            routing_keys: BTreeMap::new(),
            pam_service: Self::DEFAULT_PAM_SERVICE.to_owned(),
            management_url: None,
            keep_user: false,
            remove_vhost: false,
            tls: TlsOptions::default(),
        }
    }

    /// [`tls`](Self::tls) with its files read and checked. `insecure` is refused for AMQP: the
    /// AMQP client cannot skip verification; trust the broker's CA with `ca_file` instead.
    ///
    /// # Errors
    /// A file that cannot be used, named; `insecure` with an `amqps://` URL.
    pub fn loaded_tls(&self) -> Result<LoadedTls, String> {
        if self.tls.insecure && self.url.trim().starts_with("amqps://") {
            return Err("broker.tls.insecure: the AMQP client always verifies the broker's certificate; \
                        give the broker's CA as broker.tls.ca_file"
                .to_owned());
        }
        self.tls.load().map_err(|e| format!("broker.tls: {e}"))
    }

    /// The vhost requests travel in: named after the managers' account.
    pub fn vhost(&self) -> &str {
        &self.manager.login
    }

    /// The management API's base URL: `management_url` without a trailing `/`, else
    /// RabbitMQ's default on the broker's host: `http://…:15672`, or `https://…:15671` for an
    /// `amqps://` broker.
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
        if url.starts_with("amqps://") { format!("https://{host}:15671") } else { format!("http://{host}:15672") }
    }

    /// The AMQP URI of [`url`](Self::url) with `login`/`password` and `vhost` put in.
    pub fn uri(&self, login: &str, password: &str, vhost: &str) -> Result<AMQPUri, String> {
        let mut uri: AMQPUri = self.url.trim().parse()?;
        uri.authority.userinfo = AMQPUserInfo { username: login.to_owned(), password: password.to_owned() };
        uri.vhost = vhost.to_owned();
        Ok(uri)
    }

    /// The URI the session managers connect with.
    pub fn manager_uri(&self) -> Result<AMQPUri, String> {
        self.uri(&self.manager.login, self.manager.password()?, self.vhost())
    }

    /// The URI clients connect with: the clients' account, in the managers' vhost.
    pub fn client_uri(&self) -> Result<AMQPUri, String> {
        self.uri(&self.client.login, self.client.password()?, self.vhost())
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
        assert_eq!(at("amqps://[::1]:5671/vhost"), "https://[::1]:15671");
        let mut options = BrokerOptions::new("amqp://rabbit:5672", "s", "p");
        options.management_url = Some("https://mgmt.internal/".into());
        assert_eq!(options.management_url(), "https://mgmt.internal");
    }

    #[test]
    fn connections_put_their_own_credentials_and_vhost_in() {
        let mut options = BrokerOptions::new("amqp://x:y@rabbit:5673/other", "sessanger", "pw");
        let uri = options.manager_uri().unwrap();
        assert_eq!(
            (uri.authority.userinfo.username.as_str(), uri.authority.userinfo.password.as_str()),
            ("sessanger", "pw")
        );
        assert_eq!(
            (uri.authority.host.as_str(), uri.authority.port, uri.vhost.as_str()),
            ("rabbit", 5673, "sessanger")
        );
        assert!(options.client_uri().unwrap_err().contains("`sessanger-client`"), "a client needs its password");
        options.client = Account::new("sessanger-client", "c");
        let uri = options.client_uri().unwrap();
        assert_eq!((uri.authority.userinfo.username.as_str(), uri.vhost.as_str()), ("sessanger-client", "sessanger"));
    }
}
