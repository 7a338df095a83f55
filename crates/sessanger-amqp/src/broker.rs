//! The RabbitMQ management HTTP API: each user's broker account and vhost, and the manager's
//! own account (`sessanger broker setup`).
//!
//! The API is used rather than `rabbitmqctl`, whose start-up alone costs more per call than a
//! whole login should (BENCHMARKS.md and the login-latency example have the figures).

use std::{collections::BTreeMap, fmt};

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sessanger_core::UserId;
use sessanger_tls::LoadedTls;

use crate::{BrokerOptions, EXCHANGE};

/// Why a management API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The API could not be reached.
    #[error("management API unreachable")]
    Unreachable(#[source] reqwest::Error),
    /// A user without a broker account logged in without a password: there is none to give
    /// the account.
    #[error("the user has no broker account and no password to create one with")]
    NoPassword,
    /// The options lack what the call needs (a password, distinct accounts).
    #[error("{0}")]
    Config(String),
    /// The API answered with an error status.
    #[error("management API: {method} {path} answered {status}: {body}")]
    Status {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The answer's status.
        status: StatusCode,
        /// The answer's body (RabbitMQ's `{"error", "reason"}`).
        body: String,
    },
}

/// A user's broker coordinates, as the login reply carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The broker user (the system login).
    pub user: String,
    /// The user's own vhost (named after it).
    pub vhost: String,
}

/// A client of the management API with one account's credentials. Cheap to clone.
///
/// # Examples
/// ```no_run
/// use sessanger_amqp::broker::BrokerAdmin;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let admin = BrokerAdmin::new("http://127.0.0.1:15672", "guest", "guest");
/// admin.put_vhost("sessanger").await?;
/// assert!(admin.user_exists("guest").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BrokerAdmin {
    http: reqwest::Client,
    base: String,
    login: String,
    password: String,
}

impl fmt::Debug for BrokerAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAdmin").field("base", &self.base).field("login", &self.login).finish_non_exhaustive()
    }
}

/// What an account may do in a vhost: three regular expressions over the names of the
/// resources (queues and exchanges) it may configure (declare, bind, delete), write (publish
/// to, bind to) and read (consume, get, purge).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rights {
    /// Resources the account may declare, bind and delete.
    pub configure: String,
    /// Resources the account may publish to.
    pub write: String,
    /// Resources the account may consume from.
    pub read: String,
}

impl Rights {
    /// Everything: a user on its own vhost, the managers on theirs and on users' vhosts.
    pub fn all() -> Rights {
        Rights { configure: ".*".into(), write: ".*".into(), read: ".*".into() }
    }

    /// The clients' rights on the managers' vhost: publishing to [`EXCHANGE`], nothing else.
    /// Nothing more is needed: RabbitMQ checks no right when a client consumes its direct
    /// reply-to pseudo-queue, and the reply is published by the manager. Without configure
    /// and read a client can declare, bind, purge, delete or consume nothing, the managers'
    /// queues included.
    pub fn client() -> Rights {
        let exchange = format!("^{}$", EXCHANGE.replace('.', "\\."));
        Rights { configure: "^$".into(), write: exchange, read: "^$".into() }
    }
}

/// An HTTP client trusting `tls`'s CAs (else the system's), showing its certificate, and
/// accepting any certificate if it is `insecure`.
fn https_client(tls: &LoadedTls) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(tls.insecure);
    if let Some(ca) = &tls.ca_pem {
        builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(ca)?);
    }
    if let Some(identity) = &tls.identity {
        builder = builder.identity(reqwest::Identity::from_pem(&[&identity.cert_pem[..], &identity.key_pem].concat())?);
    }
    builder.build()
}

impl BrokerAdmin {
    /// A client of the API at `base` (`http://host:15672`) acting as `login`.
    pub fn new(base: impl Into<String>, login: impl Into<String>, password: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        // reqwest is built without a crypto provider of its own (it would bring a second).
        sessanger_tls::install_crypto_provider();
        BrokerAdmin { http: reqwest::Client::new(), base, login: login.into(), password: password.into() }
    }

    /// The session managers' own account on the management API of `options`, over HTTPS as
    /// its TLS options say for an `https://` API.
    pub fn from_options(options: &BrokerOptions) -> Result<Self, BrokerError> {
        let password = options.manager.password().map_err(BrokerError::Config)?;
        let tls = options.tls.load().map_err(|e| BrokerError::Config(format!("broker.tls: {e}")))?;
        BrokerAdmin::with_tls(options.management_url(), &options.manager.login, password, &tls)
    }

    /// [`BrokerAdmin::new`] for an `https://` API: trusting `tls`'s CAs (else the system's),
    /// showing its certificate, accepting any certificate if it is `insecure`.
    ///
    /// # Errors
    /// PEM that the HTTP client cannot use.
    pub fn with_tls(
        base: impl Into<String>,
        login: impl Into<String>,
        password: impl Into<String>,
        tls: &LoadedTls,
    ) -> Result<Self, BrokerError> {
        let http = https_client(tls).map_err(|e| BrokerError::Config(format!("broker.tls: {e}")))?;
        Ok(BrokerAdmin { http, ..BrokerAdmin::new(base, login, password) })
    }

    /// Sends one request; `Ok(None)` for 404, the JSON body (or null) otherwise.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Option<Value>, BrokerError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/{path}", self.base))
            .basic_auth(&self.login, Some(&self.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(BrokerError::Unreachable)?;
        let status = response.status();
        // Absence answers a read or a delete; a write to something absent is a failure.
        if status == StatusCode::NOT_FOUND && method != Method::PUT {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(BrokerError::Status { method, path: path.to_owned(), status, body });
        }
        Ok(Some(response.json().await.unwrap_or(Value::Null)))
    }

    /// Whether the broker user exists.
    pub async fn user_exists(&self, user: &str) -> Result<bool, BrokerError> {
        Ok(self.call(Method::GET, &format!("users/{}", segment(user)), None).await?.is_some())
    }

    /// Creates the user, or sets its password and tags (comma-separated, `""` for none).
    pub async fn put_user(&self, user: &str, password: &str, tags: &str) -> Result<(), BrokerError> {
        let body = json!({"password": password, "tags": tags});
        self.call(Method::PUT, &format!("users/{}", segment(user)), Some(body)).await.map(drop)
    }

    /// Deletes the user (RabbitMQ closes its connections at once); `false` if there was none.
    pub async fn delete_user(&self, user: &str) -> Result<bool, BrokerError> {
        Ok(self.call(Method::DELETE, &format!("users/{}", segment(user)), None).await?.is_some())
    }

    /// Whether the vhost exists.
    pub async fn vhost_exists(&self, vhost: &str) -> Result<bool, BrokerError> {
        Ok(self.call(Method::GET, &format!("vhosts/{}", segment(vhost)), None).await?.is_some())
    }

    /// Creates the vhost (nothing happens if it exists).
    pub async fn put_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        self.call(Method::PUT, &format!("vhosts/{}", segment(vhost)), None).await.map(drop)
    }

    /// Deletes the vhost and everything in it; `false` if there was none.
    pub async fn delete_vhost(&self, vhost: &str) -> Result<bool, BrokerError> {
        Ok(self.call(Method::DELETE, &format!("vhosts/{}", segment(vhost)), None).await?.is_some())
    }

    /// Gives `user` configure, write and read on `vhost`.
    pub async fn grant(&self, vhost: &str, user: &str) -> Result<(), BrokerError> {
        self.set_rights(vhost, user, &Rights::all()).await
    }

    /// Sets what `user` may do on `vhost`.
    pub async fn set_rights(&self, vhost: &str, user: &str, rights: &Rights) -> Result<(), BrokerError> {
        let path = format!("permissions/{}/{}", segment(vhost), segment(user));
        self.call(Method::PUT, &path, Some(json!(rights))).await.map(drop)
    }

    /// What `user` may do, by vhost.
    pub async fn rights(&self, user: &str) -> Result<BTreeMap<String, Rights>, BrokerError> {
        #[derive(Deserialize)]
        struct Entry {
            vhost: String,
            #[serde(flatten)]
            rights: Rights,
        }
        let Some(list) = self.call(Method::GET, &format!("users/{}/permissions", segment(user)), None).await? else {
            return Ok(BTreeMap::new());
        };
        let list: Vec<Entry> = serde_json::from_value(list).unwrap_or_default();
        Ok(list.into_iter().map(|entry| (entry.vhost, entry.rights)).collect())
    }

    /// Takes every right on `vhost` from `user`.
    pub async fn revoke(&self, vhost: &str, user: &str) -> Result<(), BrokerError> {
        self.call(Method::DELETE, &format!("permissions/{}/{}", segment(vhost), segment(user)), None).await.map(drop)
    }

    /// Closes every connection `user` holds; returns how many. Connections younger than a
    /// few seconds may not be listed yet (the API's statistics lag), which is why removing a
    /// user's access deletes the user rather than relying on this alone.
    pub async fn close_connections(&self, user: &str) -> Result<usize, BrokerError> {
        let Some(Value::Array(connections)) = self.call(Method::GET, "connections", None).await? else {
            return Ok(0);
        };
        let mut closed = 0;
        for name in connections.iter().filter(|c| c["user"] == user).filter_map(|c| c["name"].as_str()) {
            self.call(Method::DELETE, &format!("connections/{}", segment(name)), None).await?;
            closed += 1;
        }
        Ok(closed)
    }

    /// `sessanger broker setup`, acting as an administrator; idempotent. Creates or updates:
    /// - the managers' account, tagged `administrator` (the management API lets no lesser tag
    ///   create users, vhosts or permissions: `policymaker` and `monitoring` get 401), its
    ///   vhost named after it, and all rights on that vhost. Without the managers' password
    ///   (a client's config) this part is skipped, and their vhost must exist;
    /// - the clients' account, with no tag (so no management API) and [`Rights::client`] on
    ///   the managers' vhost only: rights it holds on any other vhost are revoked.
    pub async fn setup(&self, options: &BrokerOptions) -> Result<(), BrokerError> {
        let (manager, client) = (&options.manager, &options.client);
        if manager.login == client.login {
            return Err(BrokerError::Config("the clients' account must not be the managers' own".into()));
        }
        let client_password = client.password().map_err(BrokerError::Config)?;
        let vhost = options.vhost();
        if let Some(password) = &manager.password {
            self.put_user(&manager.login, password, "administrator").await?;
            self.put_vhost(vhost).await?;
            self.grant(vhost, &manager.login).await?;
        } else if !self.vhost_exists(vhost).await? {
            return Err(BrokerError::Config(format!(
                "the managers' vhost `{vhost}` does not exist: set up their account first (with its password)"
            )));
        }
        self.put_user(&client.login, client_password, "").await?;
        self.set_rights(vhost, &client.login, &Rights::client()).await?;
        for other in self.rights(&client.login).await?.into_keys().filter(|v| v != vhost) {
            self.revoke(&other, &client.login).await?;
        }
        Ok(())
    }
}

/// Percent-encodes one path segment (RabbitMQ names may hold `/`, as the default vhost does).
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Users' broker accounts, created at login and removed with their last session, through
/// the manager's own account.
#[derive(Clone, Debug)]
pub struct Provisioner {
    admin: BrokerAdmin,
    manager_login: String,
    keep_user: bool,
    remove_vhost: bool,
}

impl Provisioner {
    /// Provisioning through `admin`, granting `manager_login` access to users' vhosts; users
    /// and their vhosts are removed with their last session.
    pub fn new(admin: BrokerAdmin, manager_login: impl Into<String>) -> Self {
        Provisioner { admin, manager_login: manager_login.into(), keep_user: false, remove_vhost: false }
    }

    /// Provisioning as the session managers' account of `options`, following its
    /// `keep_user` and `remove_vhost`.
    pub fn from_options(options: &BrokerOptions) -> Result<Self, BrokerError> {
        Ok(Provisioner {
            admin: BrokerAdmin::from_options(options)?,
            manager_login: options.manager.login.clone(),
            keep_user: options.keep_user,
            remove_vhost: options.remove_vhost,
        })
    }

    /// The management API client underneath.
    pub fn admin(&self) -> &BrokerAdmin {
        &self.admin
    }

    /// Gives `user` a broker account with `password`, a vhost named after it, rights on
    /// that vhost only, and the manager rights on it too. An existing account gets the new
    /// password; with no password it keeps its own, and a user without an account gets
    /// [`BrokerError::NoPassword`]. If a step fails, what this call created is deleted again,
    /// so no user is left without its vhost and no vhost half-permissioned.
    pub async fn provision(&self, user: &UserId, password: Option<&str>) -> Result<Grant, BrokerError> {
        let name = user.as_ref();
        // Independent calls go out together: a first login costs three round trips, not six.
        let (had_user, had_vhost) = futures::try_join!(self.admin.user_exists(name), self.admin.vhost_exists(name))?;
        if password.is_none() && !had_user {
            return Err(BrokerError::NoPassword);
        }
        let result = async {
            let put_user = async {
                match password {
                    Some(password) => self.admin.put_user(name, password, "").await,
                    None => Ok(()),
                }
            };
            futures::try_join!(put_user, self.admin.put_vhost(name))?;
            futures::try_join!(self.admin.grant(name, name), self.admin.grant(name, &self.manager_login)).map(drop)
        }
        .await;
        if let Err(error) = result {
            // Undo in reverse order; a failure here is logged, the first error is the answer.
            if !had_vhost && let Err(e) = self.admin.delete_vhost(name).await {
                tracing::warn!(user = name, error = %e, "rollback: deleting the new vhost failed");
            }
            if !had_user && let Err(e) = self.admin.delete_user(name).await {
                tracing::warn!(user = name, error = %e, "rollback: deleting the new broker user failed");
            }
            return Err(error);
        }
        Ok(Grant { user: name.to_owned(), vhost: name.to_owned() })
    }

    /// Ends `user`'s broker access after its last session: deletes the account (which closes
    /// its connections) unless `keep_user`, then only closes the connections; deletes the
    /// vhost if `remove_vhost`.
    pub async fn deprovision(&self, user: &UserId) -> Result<(), BrokerError> {
        let name = user.as_ref();
        if self.keep_user {
            self.admin.close_connections(name).await?;
        } else {
            self.admin.delete_user(name).await?;
        }
        if self.remove_vhost {
            self.admin.delete_vhost(name).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(segment("sysadm"), "sysadm");
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("a b@c"), "a%20b%40c");
    }
}
