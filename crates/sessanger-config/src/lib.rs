//! The configuration file: its model, `${VAR}` interpolation, and errors that name file, line
//! and key.
//!
//! A file is YAML (`.yaml`, `.yml`) or JSON (`.json`); every section and key is optional, and an
//! unknown key is an error rather than a silently ignored typo. Loading runs in three steps:
//!
//! 1. [`${VAR}` interpolation](#interpolation) on the raw text;
//! 2. parsing into [`Config`], with the key path of any error ([`ConfigError::Parse`]);
//! 3. checks across keys ([`ConfigError::Invalid`]): routing keys, addresses, store URLs.
//!
//! # Interpolation
//! `${NAME}` is replaced by the environment variable `NAME`; `${NAME:-default}` by `default`
//! when `NAME` is unset or empty. It applies everywhere in the file, comments included; write
//! `$${` for a literal `${`. A missing variable without a default is an error naming it and its
//! line. Values are inserted verbatim, as a shell would: quote the placeholder
//! (`password: "${PASSWORD}"`) when a value may hold `#`, `: ` or quotes, and a value holding a
//! line break is refused, so that the lines of errors always match the file.
//!
//! # Scalars
//! - Durations: whole seconds (`90`, `"90"`) or text such as `30m`, `24h`, `1h 30m`.
//! - Sizes: bytes (`65536`) or a whole number with a unit: `512KiB`, `1MiB`, `1MB`.
//! - Names and secrets (`login`, `password`, user names, routing keys) may be written as
//!   numbers: `password: 123` is the text `"123"`. YAML rewrites some number forms before they
//!   are read (`0x1F` is 31, `+5` is 5): quote such values.
//!
//! # Who reads it
//! Only the binary. The model is the file's: the binary maps it onto the options each library
//! crate owns ([`SessionPolicy`] through [`Config::session_policy`], the AMQP crate's
//! `BrokerOptions`, the server's `CompatOptions`, the encrypted store's key ring and
//! selection), so no library depends on this crate, YAML or the file's layout.

mod compat;
mod de;
mod encryption;
mod error;
mod interpolate;
mod validate;

#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    fmt,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

pub use self::{
    compat::{BackSessionConfig, CompatAuth, CompatConfig, SessmanConfig, SessmanFile},
    encryption::{EncryptedAttributes, EncryptionConfig},
    error::ConfigError,
};
use sessanger_core::{BoxError, Limits, Retention, SessionCap, SessionPolicy, UserLimit};

/// The format of a config text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// YAML 1.2 (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a file name's extension names (case-insensitive), if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The whole configuration file. Every section is optional; [`Config::default`] is what an
/// empty file means.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of config sections")]
#[non_exhaustive]
pub struct Config {
    /// How sessions live: `session:`.
    #[serde(deserialize_with = "de::null_as_default")]
    pub session: SessionConfig,
    /// The RabbitMQ broker: `broker:`; absent when sessanger is not on a broker.
    pub broker: Option<BrokerConfig>,
    /// The HTTP service: `http:`.
    #[serde(deserialize_with = "de::null_as_default")]
    pub http: HttpConfig,
    /// Where sessions are kept: `store:`.
    #[serde(deserialize_with = "de::null_as_default")]
    pub store: StoreConfig,
    /// The foreign HTTP APIs sessanger also serves (`compat:`): back-session, sessman.
    #[serde(deserialize_with = "de::null_as_default")]
    pub compat: CompatConfig,
    /// Where the embedded store, the admin token and the running server's URL live
    /// (`data_dir:`); the command line decides when absent.
    #[serde(deserialize_with = "optional_path")]
    pub data_dir: Option<PathBuf>,
    /// Attribute encryption at rest (`encryption:`); absent means attributes are stored as
    /// sent.
    pub encryption: Option<EncryptionConfig>,
    /// The event log and its delivery (`events:`).
    #[serde(deserialize_with = "de::null_as_default")]
    pub events: EventsConfig,
    /// The admin console under `/admin` (`console:`).
    #[serde(deserialize_with = "de::null_as_default")]
    pub console: ConsoleConfig,
}

/// `console:`: the admin console `sessanger serve` serves under `/admin`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of console settings")]
#[non_exhaustive]
pub struct ConsoleConfig {
    /// Whether the console is served (`enabled`, default false; `serve --admin-console` too).
    pub enabled: bool,
    /// Whether its session cookie is `Secure`, sent over HTTPS only (`secure_cookie`, default
    /// true): false only for plain HTTP on a developer's machine.
    pub secure_cookie: bool,
    /// How long an operator's console session lives unused (`idle_timeout`, default 15m).
    #[serde(deserialize_with = "de::duration")]
    pub idle_timeout: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { enabled: false, secure_cookie: true, idle_timeout: Duration::from_secs(15 * 60) }
    }
}

/// `events:`: whether the store records events, how much of its log it keeps, and what
/// delivered events carry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of event settings")]
#[non_exhaustive]
pub struct EventsConfig {
    /// Whether the store records events (`record`, default true). A deployment that consumes
    /// none saves their cost (BENCHMARKS.md); `/v1/events` then answers 501 and nothing is
    /// relayed. Only the Redis store can stop recording: the others write events in the same
    /// transaction as sessions, by design of their schema.
    pub record: bool,
    /// The most events the log keeps (`max_events`, default 100000).
    pub max_events: NonZeroU64,
    /// The oldest an event grows before it is trimmed (`max_age`, default 24h).
    #[serde(deserialize_with = "de::duration")]
    pub max_age: Duration,
    /// Whether delivered events carry the session id itself (`session_ids`, default true):
    /// consumers can then act on the session (revoke it, read it), but whoever reads the
    /// stream holds live bearer ids. With false they carry only its fingerprint, which
    /// identifies a session in logs and matches `GET /v1/sessions/{id}` answers without
    /// letting anyone use it.
    pub session_ids: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        let retention = Retention::default();
        EventsConfig { record: true, max_events: retention.max_events, max_age: retention.max_age, session_ids: true }
    }
}

/// `session:`: lifetimes and per-user limits of sessions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of session settings")]
#[non_exhaustive]
pub struct SessionConfig {
    /// Idle lifetime: a session dies this long after its last refresh (`ttl`, default 30m).
    #[serde(deserialize_with = "de::duration")]
    pub ttl: Duration,
    /// Absolute lifetime, whatever the refreshes (`max_lifetime`, default 30 days).
    #[serde(deserialize_with = "de::duration")]
    pub max_lifetime: Duration,
    /// Whether reads renew the idle deadline (`refresh_on_access`, default false).
    pub refresh_on_access: bool,
    /// How much of the idle TTL, in percent, passes before a read renews a session again
    /// (`refresh_threshold_percent`, default 10; 0 renews at every read).
    pub refresh_threshold_percent: u8,
    /// Most live sessions one user may hold (`max_per_user`); absent means unlimited.
    pub max_per_user: Option<NonZeroU32>,
    /// What creating one more session than `max_per_user` does (`on_limit`).
    pub on_limit: OnLimit,
    /// Most attributes one session may hold (`max_attributes`, default 1000).
    pub max_attributes: NonZeroUsize,
    /// Largest size of one session's attributes as compact JSON, in bytes (`max_bytes`,
    /// default 512 KiB).
    pub max_bytes: NonZeroUsize,
    /// How often expired sessions are purged (`gc_interval`, default 5s).
    #[serde(deserialize_with = "de::duration")]
    pub gc_interval: Duration,
    /// The routing key this sessanger consumes on the broker (`routing_key`); when
    /// `broker.routing_keys` is set it must be one of its keys. Empty text means absent, so
    /// `${VAR:-}` can leave it unset.
    #[serde(deserialize_with = "de::optional_text")]
    pub routing_key: Option<String>,
    /// Whether new session ids take 43 characters, as versions before the 24-character ids
    /// made them (`long_ids`, default false): on while upgrading node by node from such a
    /// version, whose nodes would refuse the shorter ids.
    pub long_ids: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let policy = SessionPolicy::default();
        SessionConfig {
            ttl: policy.idle_ttl,
            max_lifetime: policy.max_lifetime,
            refresh_on_access: policy.refresh_on_access,
            refresh_threshold_percent: policy.refresh_threshold_percent,
            max_per_user: None,
            on_limit: OnLimit::default(),
            max_attributes: NonZeroUsize::new(policy.limits.session.max_attributes).unwrap_or(NonZeroUsize::MIN),
            max_bytes: NonZeroUsize::new(policy.limits.session.max_bytes).unwrap_or(NonZeroUsize::MIN),
            gc_interval: Duration::from_secs(5),
            routing_key: None,
            long_ids: policy.long_ids,
        }
    }
}

/// What happens when a user at `max_per_user` opens one more session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// The user's oldest sessions are deleted to make room (`evict_oldest`, the default), so a
    /// user who lost a device can always sign in again.
    #[default]
    EvictOldest,
    /// The new session is refused (`refuse`).
    Refuse,
}

/// `broker:`: the RabbitMQ broker sessanger takes requests from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of broker settings")]
#[non_exhaustive]
pub struct BrokerConfig {
    /// `host:port` or a full `amqp://host:port/vhost` URL (`url`); see
    /// [`amqp_url`](Self::amqp_url).
    #[serde(deserialize_with = "de::text")]
    pub url: String,
    /// The session managers' own account (`sessanger: {login, password}`); their requests
    /// arrive in the vhost named after it. Clients need only its `login`.
    pub sessanger: BrokerAccount,
    /// The account clients send requests with (`client: {login, password}`): `sessanger
    /// login`, `logout` and `pam-exec`. `broker setup` creates it with the least rights.
    #[serde(default, deserialize_with = "de::null_as_default")]
    pub client: ClientAccount,
    /// Broker accounts trusted with any user's sessions (`admins`): their `list` and
    /// `revoke_all` need no user password, and their `login` may open a session without one
    /// (a PAM session opened by an SSH key). The managers' own account always is.
    #[serde(default, deserialize_with = "de::texts")]
    pub admins: Vec<String>,
    /// Credentials for users' connections (`user: {password}`), if they need one.
    #[serde(default)]
    pub user: Option<UserAccount>,
    /// Which sessanger serves which users (`routing_keys`): routing key → user names, where
    /// `'*'` (alone in its list) stands for every user not listed elsewhere.
    #[serde(default, deserialize_with = "de::routing_keys")]
    pub routing_keys: BTreeMap<String, Vec<String>>,
    /// The PAM service users authenticate against (`pam_service`, default `sessanger`).
    #[serde(default = "default_pam_service", deserialize_with = "de::text")]
    pub pam_service: String,
    /// The RabbitMQ management HTTP API users are provisioned through (`management_url`);
    /// absent means `http://<broker host>:15672`.
    #[serde(default, deserialize_with = "de::optional_text")]
    pub management_url: Option<String>,
    /// Whether a user's broker account outlives its last session (`keep_user`, default
    /// false: the account is deleted, which also closes its connections).
    #[serde(default)]
    pub keep_user: bool,
    /// Whether a user's vhost, and the messages in it, go with its last session
    /// (`remove_vhost`, default false: kept for the next login).
    #[serde(default)]
    pub remove_vhost: bool,
    /// TLS to the broker (`tls`), for an `amqps://` URL and an `https://` management API.
    #[serde(default)]
    pub tls: TlsConfig,
}

fn default_pam_service() -> String {
    "sessanger".into()
}

impl BrokerConfig {
    /// The URL with its scheme: `127.0.0.1:5672` becomes `amqp://127.0.0.1:5672`; a URL that
    /// has a scheme is returned as written.
    ///
    /// ```
    /// # use sessanger_config::{Config, Format};
    /// let text = "broker: {url: 127.0.0.1:5672, sessanger: {login: s, password: p}}";
    /// let config = Config::parse(text, Format::Yaml, "inline.yaml").unwrap();
    /// assert_eq!(config.broker.unwrap().amqp_url(), "amqp://127.0.0.1:5672");
    /// ```
    pub fn amqp_url(&self) -> String {
        let url = self.url.trim();
        if url.contains("://") { url.to_owned() } else { format!("amqp://{url}") }
    }

    /// The routing key that serves `user`: the key listing it by name, else the key listing
    /// `'*'`, else none.
    pub fn routing_key_for(&self, user: &str) -> Option<&str> {
        let listing = |name: &str| self.routing_keys.iter().find(|(_, users)| users.iter().any(|u| u == name));
        listing(user).or_else(|| listing(WILDCARD)).map(|(key, _)| key.as_str())
    }
}

/// In `broker.routing_keys`, the user name standing for every user listed under no other key
/// (`sessanger_amqp::routing::WILDCARD`, which the session managers route by).
const WILDCARD: &str = "*";

/// The managers' broker account (`broker.sessanger`). Debug hides the password, so logging a
/// config leaks no secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `login` and `password`")]
#[non_exhaustive]
pub struct BrokerAccount {
    /// The user name (`login`), which also names the managers' vhost.
    #[serde(deserialize_with = "de::text")]
    pub login: String,
    /// The password (`password`): the managers and `broker setup` need it, clients do not.
    #[serde(default, deserialize_with = "de::optional_text")]
    pub password: Option<String>,
}

impl fmt::Debug for BrokerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAccount")
            .field("login", &self.login)
            .field("password", &redacted(&self.password))
            .finish()
    }
}

/// The clients' broker account (`broker.client`). Debug hides the password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `login` and `password`")]
#[non_exhaustive]
pub struct ClientAccount {
    /// The user name (`login`); absent: the AMQP crate's default, `sessanger-client`.
    #[serde(default, deserialize_with = "de::optional_text")]
    pub login: Option<String>,
    /// The password (`password`).
    #[serde(default, deserialize_with = "de::optional_text")]
    pub password: Option<String>,
}

impl fmt::Debug for ClientAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAccount")
            .field("login", &self.login)
            .field("password", &redacted(&self.password))
            .finish()
    }
}

/// What Debug shows of a secret: whether there is one.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

/// Credentials for users' broker connections (`broker.user`). Debug hides the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `password`")]
#[non_exhaustive]
pub struct UserAccount {
    /// The password (`password`).
    #[serde(deserialize_with = "de::text")]
    pub password: String,
}

impl fmt::Debug for UserAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAccount").field("password", &"<redacted>").finish()
    }
}

/// `http:`: the HTTP service.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of HTTP settings")]
#[non_exhaustive]
pub struct HttpConfig {
    /// The socket address to listen on (`listen`, default `127.0.0.1:8090`); checked to parse
    /// as a [`SocketAddr`](std::net::SocketAddr).
    #[serde(deserialize_with = "de::text")]
    pub listen: String,
    /// The largest request body accepted, in bytes (`body_limit`, default 1 MiB).
    #[serde(deserialize_with = "de::byte_size")]
    pub body_limit: usize,
    /// Longest a client may take to send a request's head (`header_read_timeout`); the
    /// connection is closed after it. Absent: the server's default (10s).
    #[serde(deserialize_with = "de::optional_duration")]
    pub header_read_timeout: Option<Duration>,
    /// Longest a keep-alive connection may sit idle (`idle_timeout`). Absent: the server's
    /// default (60s).
    #[serde(deserialize_with = "de::optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// Most connections open at once (`max_connections`); more wait until one closes.
    /// Absent: the server's default (4096).
    pub max_connections: Option<NonZeroU32>,
    /// How much memory session answers kept as written may take (`json_cache_size`, default
    /// 16 MiB): a session read again unchanged is answered with the same bytes; 0 keeps none.
    #[serde(deserialize_with = "de::byte_size")]
    pub json_cache_size: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8090".into(),
            body_limit: 1 << 20,
            header_read_timeout: None,
            idle_timeout: None,
            max_connections: None,
            json_cache_size: 16 << 20,
        }
    }
}

/// `store:`: where sessions are kept.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of store settings")]
#[non_exhaustive]
pub struct StoreConfig {
    /// The store URL (`url`): `memory://`, `embedded://PATH`, `redis://…`, `postgres://…`,
    /// `mysql://…`, `mongodb://…` ([`STORE_SCHEMES`] lists them all). Absent (or empty) means
    /// the embedded store in the data directory.
    #[serde(deserialize_with = "de::optional_text")]
    pub url: Option<String>,
    /// The key prefix (`key_prefix`) a shared server keeps this deployment's data under
    /// (Redis: `sessanger` by default), so several deployments can share one server.
    #[serde(deserialize_with = "de::optional_text")]
    pub key_prefix: Option<String>,
    /// Whether the node keeps read sessions and services in memory, coherent with the store
    /// (`cache`; Redis only, where it is on unless `false`). Absent means the store's default.
    pub cache: Option<bool>,
    /// How much memory the node cache may hold (`cache_size`, default 64 MiB).
    #[serde(deserialize_with = "de::byte_size")]
    pub cache_size: usize,
    /// TLS to the store (`tls`), for a URL that asks for it (`rediss://`, `sslmode=…`).
    pub tls: TlsConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            key_prefix: None,
            cache: None,
            cache_size: DEFAULT_CACHE_SIZE,
            tls: TlsConfig::default(),
        }
    }
}

/// `tls:` of a store or of the broker: whom to trust and what to show when the connection is
/// TLS.
///
/// ```yaml
/// store:
///   url: rediss://redis.internal:6380
///   tls:
///     ca_file: /etc/sessanger/ca.crt       # trust these CAs instead of the system's
///     cert_file: /etc/sessanger/client.crt # show this certificate, for servers that ask
///     key_file: /etc/sessanger/client.key
///     insecure: false                      # true: accept any certificate (test benches only)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of TLS settings")]
#[non_exhaustive]
pub struct TlsConfig {
    /// A PEM file of the CAs to trust instead of the system's (`ca_file`).
    #[serde(deserialize_with = "optional_path")]
    pub ca_file: Option<PathBuf>,
    /// A PEM file of the client certificate to show (`cert_file`), with `key_file`.
    #[serde(deserialize_with = "optional_path")]
    pub cert_file: Option<PathBuf>,
    /// The PEM file of the client certificate's key (`key_file`).
    #[serde(deserialize_with = "optional_path")]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (`insecure`): for test benches only.
    pub insecure: bool,
}

/// The node cache's memory unless `store.cache_size` says otherwise.
pub const DEFAULT_CACHE_SIZE: usize = 64 << 20;

/// The URL schemes `store.url` may use. A scheme listed here may still be missing from a given
/// build of the binary, which says so when it opens the store.
pub const STORE_SCHEMES: &[&str] = &[
    "memory",
    "embedded",
    "redis",
    "redis+cluster",
    "rediss",
    "rediss+cluster",
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
];

fn optional_path<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(de::optional_text(deserializer)?.map(PathBuf::from))
}

impl Config {
    /// Reads, expands and checks the config file at `path`; the format follows the extension
    /// (`.yaml`, `.yml`, `.json`), and `${VAR}` reads the process environment. A
    /// `compat.sessman.config` file is read too, relative to `path`, and merged in
    /// ([`SessmanConfig::merge_file`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let format = Format::from_path(path).ok_or_else(|| ConfigError::UnknownFormat { path: path.to_owned() })?;
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Config::parse(&text, format, &path.display().to_string())?;
        if let Some(file) = &config.compat.sessman.config {
            // Relative to the file that names it, as an operator reads the file.
            let file = SessmanFile::load(&path.parent().unwrap_or(Path::new("")).join(file))?;
            config.compat.sessman.merge_file(&file);
        }
        Ok(config)
    }

    /// Expands, parses and checks a config text, with `${VAR}` read from the process
    /// environment; `origin` names the text in error messages (usually its file name).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use sessanger_config::{Config, Format};
    ///
    /// let text = "
    /// session:
    ///   ttl: 1h 30m
    ///   max_per_user: 5
    /// broker:
    ///   url: 127.0.0.1:5672
    ///   sessanger: {login: sessanger, password: 123}
    ///   routing_keys:
    ///     sessanger1: ['*']
    /// ";
    /// let config = Config::parse(text, Format::Yaml, "config.yaml")?;
    /// assert_eq!(config.session.ttl, Duration::from_secs(5400));
    /// let broker = config.broker.as_ref().unwrap();
    /// assert_eq!(broker.sessanger.password.as_deref(), Some("123"));
    /// assert_eq!(broker.routing_key_for("alice"), Some("sessanger1"));
    ///
    /// let err = Config::parse("session:\n  ttl: abc\n", Format::Yaml, "config.yaml").unwrap_err();
    /// assert!(err.to_string().starts_with(r#"config.yaml:2:8: session.ttl: invalid duration "abc""#));
    /// # Ok::<(), sessanger_config::ConfigError>(())
    /// ```
    pub fn parse(text: &str, format: Format, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, format, origin, |name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with `${VAR}` read through `env` instead of the process environment
    /// (tests, or a caller with its own variables).
    pub fn parse_with_env(
        text: &str,
        format: Format,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let expanded = interpolate::expand(text, origin, &env)?;
        let config = match format {
            Format::Yaml => from_yaml(&expanded, origin)?,
            Format::Json => from_json(&expanded, origin)?,
        };
        validate::check(&config).map_err(|(path, message)| ConfigError::Invalid {
            origin: origin.to_owned(),
            path,
            message,
        })?;
        Ok(config)
    }

    /// The [`SessionPolicy`] the `session:` section describes: lifetimes, the per-user limit
    /// and the session cap, with the other size [`Limits`] at their defaults.
    pub fn session_policy(&self) -> SessionPolicy {
        let session = &self.session;
        let max_per_user = match (session.max_per_user, session.on_limit) {
            (None, _) => UserLimit::Unlimited,
            (Some(n), OnLimit::EvictOldest) => UserLimit::EvictOldest(n),
            (Some(n), OnLimit::Refuse) => UserLimit::Refuse(n),
        };
        SessionPolicy {
            idle_ttl: session.ttl,
            max_lifetime: session.max_lifetime,
            refresh_on_access: session.refresh_on_access,
            refresh_threshold_percent: session.refresh_threshold_percent,
            max_per_user,
            limits: Limits {
                session: SessionCap {
                    max_attributes: session.max_attributes.get(),
                    max_bytes: session.max_bytes.get(),
                },
                ..Limits::default()
            },
            event_retention: Retention { max_events: self.events.max_events, max_age: self.events.max_age },
            long_ids: session.long_ids,
        }
    }
}

fn from_yaml(expanded: &interpolate::Expanded, origin: &str) -> Result<Config, ConfigError> {
    if is_blank_yaml(&expanded.text) {
        return Ok(Config::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(&expanded.text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path: Vec<_> = error.path().iter().cloned().collect();
        let error = error.into_inner();
        let location = error.location().map(|l| (l.line(), l.column()));
        parse_error(origin, expanded, &path, location, error.to_string(), Box::new(error), true)
    })
}

fn from_json(expanded: &interpolate::Expanded, origin: &str) -> Result<Config, ConfigError> {
    let mut deserializer = serde_json::Deserializer::from_str(&expanded.text);
    let (path, error) = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(config) => match deserializer.end() {
            Ok(()) => return Ok(config),
            Err(error) => (Vec::new(), error),
        },
        Err(error) => (error.path().iter().cloned().collect(), error.into_inner()),
    };
    let location = (error.line() != 0).then(|| (error.line(), error.column()));
    Err(parse_error(origin, expanded, &path, location, error.to_string(), Box::new(error), false))
}

/// An empty file, or one of comments only, is the default config; YAML would call it null.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().map(str::trim).all(|line| line.is_empty() || line.starts_with('#') || line == "---")
}

/// Builds [`ConfigError::Parse`], moving the column back to the file as written and taking the
/// parser's own location (and, for YAML, its own copy of the key path) out of its message, as
/// the error names them already.
fn parse_error(
    origin: &str,
    expanded: &interpolate::Expanded,
    path: &[serde_path_to_error::Segment],
    location: Option<(usize, usize)>,
    full_message: String,
    source: BoxError,
    yaml: bool,
) -> ConfigError {
    let mut message = full_message;
    if let Some((line, column)) = location {
        let marker = format!(" at line {line} column {column}");
        if let Some(at) = message.find(&marker) {
            message.replace_range(at..at + marker.len(), "");
        }
    }
    if yaml {
        // serde_yaml_ng prefixes messages with the path it reached, in the same notation as
        // serde_path_to_error: the whole path or one of its ancestors.
        for len in (1..=path.len()).rev() {
            let prefix = format!("{}: ", display_path(&path[..len]));
            if let Some(rest) = message.strip_prefix(&prefix) {
                message = rest.to_owned();
                break;
            }
        }
    }
    // A syntax error leaves a trailing `?` (a key not read yet): noise, not a key path.
    let known =
        path.len() - path.iter().rev().take_while(|s| matches!(s, serde_path_to_error::Segment::Unknown)).count();
    let path = &path[..known];
    // For an unknown key, the path already ends with it; naming the section that does not
    // know the key reads better (`session: unknown field `bogus``).
    let path = match path.split_last() {
        Some((serde_path_to_error::Segment::Map { key }, parent))
            if message.starts_with(&format!("unknown field `{key}`")) =>
        {
            display_path(parent)
        }
        _ => display_path(path),
    };
    let (line, column) = match location {
        Some((line, column)) => (Some(line), Some(expanded.raw_column(line, column))),
        None => (None, None),
    };
    ConfigError::Parse { origin: origin.to_owned(), line, column, path, message, source }
}

/// `a.b[0].c`, the notation of both serde_path_to_error and serde_yaml_ng; empty for the root.
fn display_path(segments: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}
