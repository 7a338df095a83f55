//! Where the store connects and where it keeps its documents: from a `mongodb://` URL or from
//! the original sessman's settings.

use std::{fmt, time::Duration};

use mongodb::options::{ClientOptions, ConnectionString, Credential};

/// How long to wait for a server to be selectable (connected and suitable) before a call
/// fails with [`StoreError::Unavailable`](sessanger_core::StoreError::Unavailable). The
/// driver's default is 30 s, far too long to hold an HTTP request.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a TCP connection and handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why options could not be built or the store could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `mongodb://` connection string the driver accepts (`source` says
    /// why; `mongodb+srv://` needs the driver's `dns-resolver` feature, left out here).
    #[error("invalid MongoDB URL `{url}`: expected mongodb://[user:password@]host[:port][,host…][/database][?options]")]
    InvalidUrl {
        /// The URL as given, with any credentials replaced by `***`.
        url: String,
        /// What the driver said about it.
        #[source]
        source: mongodb::error::Error,
    },
    /// The sessman settings (its `sessman.json`) name no `server_url`.
    #[error("sessman.json names no MongoDB `server_url`")]
    MissingServer,
    /// A database or collection name MongoDB would refuse.
    #[error("invalid MongoDB {kind} name `{name}`: 1 to 63 characters without / \\ . \" $ * < > : | ? or spaces")]
    InvalidName {
        /// `database` or `collection`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// The server refused or could not be reached, or setting up indexes failed.
    #[error("cannot connect to MongoDB")]
    Mongo(#[source] mongodb::error::Error),
}

/// The MongoDB settings of the original sessman, as its `sessman.json` holds them: each is
/// optional there. Whoever reads the file fills this in. Debug hides the password.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessmanSettings {
    /// `host:port`, or a whole `mongodb://` URL (`server_url`); required.
    pub server_url: Option<String>,
    /// The user to authenticate as (`username`).
    pub username: Option<String>,
    /// Its password (`password`).
    pub password: Option<String>,
    /// The database (`database`, default `sessman`).
    pub database: Option<String>,
    /// The sessions collection (`collection`, default `sessions`).
    pub collection: Option<String>,
}

impl fmt::Debug for SessmanSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessmanSettings")
            .field("server_url", &self.server_url.as_deref().map(redacted))
            .field("username", &self.username)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .finish_non_exhaustive()
    }
}

/// Everything the store needs to connect: a connection string, the database, the name of the
/// sessions collection, optional credentials, and how long dead sessions are kept for the
/// reaper to report them.
///
/// # Examples
/// ```
/// use sessanger_store_mongodb::{MongoOptions, SessmanSettings};
///
/// let options = MongoOptions::from_url("mongodb://db.example:27017/app")?;
/// assert_eq!(options.database(), "app");
/// assert_eq!(options.collection(), "sessions");
///
/// let mut sessman = SessmanSettings::default();
/// sessman.server_url = Some("mongo.domain.tld:27017".into());
/// sessman.username = Some("ps_sessman".into());
/// sessman.password = Some("pw".into());
/// let options = MongoOptions::from_sessman(&sessman)?;
/// assert_eq!(options.url(), "mongodb://mongo.domain.tld:27017");
/// assert_eq!(options.database(), "sessman");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MongoOptions {
    url: String,
    database: String,
    collection: String,
    credential: Option<(String, Option<String>)>,
    expiry_grace: Duration,
}

impl fmt::Debug for MongoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoOptions")
            .field("url", &redacted(&self.url))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("username", &self.credential.as_ref().map(|(user, _)| user))
            .field("expiry_grace", &self.expiry_grace)
            .finish()
    }
}

impl MongoOptions {
    /// The database used when neither the URL nor the caller names one.
    pub const DEFAULT_DATABASE: &'static str = "sessanger";
    /// The sessions collection unless configured otherwise (also the original sessman's).
    pub const DEFAULT_COLLECTION: &'static str = "sessions";
    /// How long past its deadline a dead session is kept for `delete_expired` to report it
    /// before the TTL index deletes it silently.
    pub const DEFAULT_EXPIRY_GRACE: Duration = Duration::from_secs(3600);

    /// Options from a connection string `mongodb://[user:password@]host[:port][,…][/database][?options]`;
    /// the database is the URL's (default [`MongoOptions::DEFAULT_DATABASE`]).
    pub fn from_url(url: &str) -> Result<MongoOptions, ConnectError> {
        let parsed =
            ConnectionString::parse(url).map_err(|source| ConnectError::InvalidUrl { url: redacted(url), source })?;
        let database = parsed.default_database.clone().unwrap_or_else(|| Self::DEFAULT_DATABASE.to_owned());
        MongoOptions {
            url: url.to_owned(),
            database,
            collection: Self::DEFAULT_COLLECTION.to_owned(),
            credential: None,
            expiry_grace: Self::DEFAULT_EXPIRY_GRACE,
        }
        .validated()
    }

    /// Options from the original sessman's settings: `server_url` (`host:port`, or a whole
    /// `mongodb://` URL), `username` and `password` (given to the driver as they are, so they
    /// need no percent-encoding; authenticated against `admin` unless the URL sets
    /// `authSource`), `database` (default `sessman`) and `collection` (default `sessions`).
    pub fn from_sessman(settings: &SessmanSettings) -> Result<MongoOptions, ConnectError> {
        let server = settings.server_url.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let server = server.ok_or(ConnectError::MissingServer)?;
        let url = if server.contains("://") { server.to_owned() } else { format!("mongodb://{server}") };
        let mut options =
            MongoOptions::from_url(&url)?.with_database(settings.database.as_deref().unwrap_or("sessman"))?;
        if let Some(collection) = &settings.collection {
            options = options.with_collection(collection)?;
        }
        if let Some(username) = &settings.username {
            options = options.with_credentials(username, settings.password.as_deref());
        }
        Ok(options)
    }

    /// Keeps everything in database `name`.
    pub fn with_database(mut self, name: &str) -> Result<MongoOptions, ConnectError> {
        self.database = name.to_owned();
        self.validated()
    }

    /// Keeps sessions in collection `name`; services go to `<name>.services` and the per-user
    /// guard documents to `<name>.users`. Give each deployment (or test) its own name or
    /// database to share one server.
    pub fn with_collection(mut self, name: &str) -> Result<MongoOptions, ConnectError> {
        self.collection = name.to_owned();
        self.validated()
    }

    /// Authenticates as `username` (with the driver's default mechanism, SCRAM), overriding
    /// any credentials in the URL.
    #[must_use]
    pub fn with_credentials(mut self, username: &str, password: Option<&str>) -> MongoOptions {
        self.credential = Some((username.to_owned(), password.map(str::to_owned)));
        self
    }

    /// Keeps dead sessions `grace` past their deadline before MongoDB's TTL monitor deletes
    /// them (see the crate's `# Expiry`). Takes effect when the store creates its TTL index.
    #[must_use]
    pub fn with_expiry_grace(mut self, grace: Duration) -> MongoOptions {
        self.expiry_grace = grace;
        self
    }

    /// The connection string.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The sessions collection.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The TTL index's grace period.
    pub fn expiry_grace(&self) -> Duration {
        self.expiry_grace
    }

    /// The driver's options: the URL's, with short timeouts unless the URL sets its own, and
    /// the credentials given to [`MongoOptions::with_credentials`].
    pub async fn client_options(&self) -> Result<ClientOptions, ConnectError> {
        let mut options = ClientOptions::parse(self.url.as_str())
            .await
            .map_err(|source| ConnectError::InvalidUrl { url: redacted(&self.url), source })?;
        options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "sessanger".to_owned());
        if let Some((username, password)) = &self.credential {
            // Without a user in the URL the driver keeps no credential, and with it its
            // `authSource`; read that from the URL itself.
            let source = options.credential.as_ref().and_then(|c| c.source.clone()).or_else(|| auth_source(&self.url));
            options.credential = Some(
                Credential::builder().username(username.clone()).password(password.clone()).source(source).build(),
            );
        }
        Ok(options)
    }

    fn validated(self) -> Result<MongoOptions, ConnectError> {
        if !valid_name(&self.database) {
            return Err(ConnectError::InvalidName { kind: "database", name: self.database });
        }
        if !valid_name(&self.collection) || self.collection.starts_with("system.") {
            return Err(ConnectError::InvalidName { kind: "collection", name: self.collection });
        }
        Ok(self)
    }
}

/// A name valid as a MongoDB database (and, more strictly than needed, as a collection).
fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '.' | '"' | '$' | '*' | '<' | '>' | ':' | '|' | '?' | ' ' | '\0'))
}

/// The `authSource` option of a connection string, if it sets one.
fn auth_source(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("authSource=")).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `url` without its credentials, fit for an error message or a log.
pub(crate) fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let hosts_end = rest.find('/').unwrap_or(rest.len());
            match rest[..hosts_end].rsplit_once('@') {
                Some((_, hosts)) => format!("{scheme}://***@{hosts}{}", &rest[hosts_end..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessman(server_url: Option<&str>, database: Option<&str>, collection: Option<&str>) -> SessmanSettings {
        SessmanSettings {
            server_url: server_url.map(str::to_owned),
            database: database.map(str::to_owned),
            collection: collection.map(str::to_owned),
            ..SessmanSettings::default()
        }
    }

    #[test]
    fn the_database_comes_from_the_url_or_the_default() {
        assert_eq!(MongoOptions::from_url("mongodb://h:27017/app").unwrap().database(), "app");
        assert_eq!(MongoOptions::from_url("mongodb://h:27017").unwrap().database(), "sessanger");
        let options = MongoOptions::from_url("mongodb://a:1,b:2/?replicaSet=rs0").unwrap();
        assert_eq!(options.database(), "sessanger");
        assert_eq!(options.collection(), "sessions");
        assert_eq!(options.expiry_grace(), Duration::from_secs(3600));
    }

    #[test]
    fn urls_the_driver_refuses_are_invalid_and_never_show_their_password() {
        for url in ["redis://h:1", "mongodb+srv://user:secret@cluster.example/db", "not a url"] {
            let err = MongoOptions::from_url(url).unwrap_err();
            assert!(matches!(err, ConnectError::InvalidUrl { .. }), "{url}: {err:?}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn credentials_never_reach_an_error_message_or_debug_output() {
        assert_eq!(redacted("mongodb://user:secret@h:1/db?x=1"), "mongodb://***@h:1/db?x=1");
        assert_eq!(redacted("mongodb://h:1/db"), "mongodb://h:1/db");
        let options =
            MongoOptions::from_url("mongodb://user:secret@h:1/db").unwrap().with_credentials("u", Some("pw2"));
        let debug = format!("{options:?}");
        assert!(!debug.contains("secret") && !debug.contains("pw2"), "{debug}");
    }

    #[test]
    fn the_seeds_sessman_json_gives_server_credentials_and_database() {
        let mut file = sessman(Some("mongo.domain.tld:27017"), Some("sessman"), None);
        file.username = Some("ps_sessman".into());
        file.password = Some("p@ss:/word".into());
        let options = MongoOptions::from_sessman(&file).unwrap();
        assert_eq!(options.url(), "mongodb://mongo.domain.tld:27017");
        assert_eq!(options.database(), "sessman");
        assert_eq!(options.collection(), "sessions");
        assert_eq!(options.credential, Some(("ps_sessman".to_owned(), Some("p@ss:/word".to_owned()))));
    }

    #[test]
    fn sessman_json_may_name_a_whole_url_and_a_collection() {
        let file = sessman(Some("mongodb://a:1,b:2/?replicaSet=rs0"), None, Some("web_sessions"));
        let options = MongoOptions::from_sessman(&file).unwrap();
        assert_eq!(options.url(), "mongodb://a:1,b:2/?replicaSet=rs0");
        assert_eq!(options.database(), "sessman", "sessman's database unless the file names one");
        assert_eq!(options.collection(), "web_sessions");
        assert_eq!(options.credential, None, "no username, no credential");
    }

    #[test]
    fn the_auth_source_is_read_from_the_query() {
        assert_eq!(auth_source("mongodb://h/db?w=1&authSource=users").as_deref(), Some("users"));
        assert_eq!(auth_source("mongodb://h/db?authSource="), None);
        assert_eq!(auth_source("mongodb://h/db"), None);
    }

    #[test]
    fn sessman_json_without_a_server_is_refused() {
        assert!(matches!(
            MongoOptions::from_sessman(&sessman(None, Some("x"), None)),
            Err(ConnectError::MissingServer)
        ));
    }

    #[test]
    fn names_mongodb_would_refuse_are_refused_early() {
        let options = MongoOptions::from_url("mongodb://h").unwrap();
        assert!(matches!(
            options.clone().with_database("a.b"),
            Err(ConnectError::InvalidName { kind: "database", .. })
        ));
        assert!(matches!(options.clone().with_database(""), Err(ConnectError::InvalidName { .. })));
        assert!(matches!(
            options.clone().with_collection("x$y"),
            Err(ConnectError::InvalidName { kind: "collection", .. })
        ));
        assert!(options.with_collection("tenant_a").is_ok());
    }

    #[tokio::test]
    async fn client_options_carry_hosts_credentials_and_short_timeouts() {
        let options = MongoOptions::from_url("mongodb://a:1,b:2/app?authSource=users&serverSelectionTimeoutMS=900")
            .unwrap()
            .with_credentials("alice", Some("pw"));
        let client = options.client_options().await.unwrap();
        assert_eq!(client.hosts.len(), 2);
        assert_eq!(client.server_selection_timeout, Some(Duration::from_millis(900)), "the URL's own timeout wins");
        assert_eq!(client.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(client.default_database.as_deref(), Some("app"));
        let credential = client.credential.unwrap();
        assert_eq!(credential.username.as_deref(), Some("alice"));
        assert_eq!(credential.password.as_deref(), Some("pw"));
        assert_eq!(credential.source.as_deref(), Some("users"));

        let plain = MongoOptions::from_url("mongodb://h").unwrap().client_options().await.unwrap();
        assert_eq!(plain.server_selection_timeout, Some(SERVER_SELECTION_TIMEOUT));
        assert!(plain.credential.is_none());
    }
}
