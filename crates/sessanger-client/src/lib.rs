//! A typed async client of sessanger's native `/v1` HTTP API.
//!
//! One [`Client`] keeps a pool of keep-alive connections; clone it freely (clones share the
//! pool). [`Client::builder`] sets timeouts and the pool's limits. Every failure the server
//! reports comes back as [`ClientError::Api`] with the server's stable error `code`, typed as an
//! [`ErrorCode`], so callers branch on codes, never on messages.
//!
//! # Examples
//! ```no_run
//! use sessanger_client::Client;
//! use sessanger_core::{Patch, wire::CreateSession};
//!
//! # async fn run() -> Result<(), sessanger_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8090", "billing.secret")?;
//! let session = client.create_session(&CreateSession {
//!     session_id: None,
//!     user_id: "alice".parse().unwrap(),
//!     device_id: Some("phone".into()),
//!     ip: None,
//!     user_agent: None,
//!     attributes: Default::default(),
//!     ttl_secs: None,
//!     absolute_expires_at: None,
//! }).await?;
//! client.patch_session(&session.session_id, &Patch::default().incr("visits", 1), None).await?;
//! # Ok(()) }
//! ```

mod events;

use std::{fmt, num::NonZeroU32, time::Duration};

use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde::de::DeserializeOwned;
use sessanger_core::{
    Page, Patch, ServiceId, SessionId, UserId, Version,
    wire::{
        CreateService, CreateSession, CreatedService, Deleted, ErrorBody, Regenerated, ReplaceSession, ServiceBody,
        ServiceList, SessionBody, SessionList, SessionScan, Stats, UpdateService,
    },
};

pub use events::{EventStream, Received};
/// The error codes, spelled once in the wire module the server answers with.
pub use sessanger_core::wire::ErrorCode;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status}: {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code; [`ErrorCode::Unknown`] for a code this client does not know
        /// (a newer server's) or an answer that was not an error body.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server could not be reached, timed out, or sent something that is not the API.
    #[error("request to sessanger failed")]
    Transport(#[from] reqwest::Error),
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid base URL `{0}`")]
    InvalidUrl(String),
}

impl ClientError {
    /// The server's error code, if the server answered.
    ///
    /// # Examples
    /// ```
    /// use sessanger_client::{ClientError, ErrorCode};
    ///
    /// let error = ClientError::Api { status: 412, code: ErrorCode::VersionMismatch, message: String::new() };
    /// assert_eq!(error.code(), Some(ErrorCode::VersionMismatch));
    /// ```
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the same request may succeed later unchanged: the server or its store was
    /// unreachable or too slow. A write retried after a timeout may apply twice.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(e) => e.is_timeout() || e.is_connect(),
            ClientError::Api { .. } => {
                matches!(self.code(), Some(ErrorCode::StoreUnavailable | ErrorCode::RequestTimeout))
            }
            ClientError::InvalidUrl(_) => false,
        }
    }

    /// Whether the session (or service) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// A connection-pooling client of one sessanger server, authenticated as one service.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Never shows the token: a client ends up in structs that are logged with `{:?}`.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = self.token.split_once('.').map_or("?", |(service, _)| service);
        f.debug_struct("Client").field("base", &self.base).field("service", &service).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8090`) using the service
    /// token `token`; requests time out after 10 s.
    pub fn new(base_url: &str, token: &str) -> Result<Client, ClientError> {
        Client::with_timeout(base_url, token, Duration::from_secs(10))
    }

    /// Like [`Client::new`] with another request timeout.
    pub fn with_timeout(base_url: &str, token: &str, timeout: Duration) -> Result<Client, ClientError> {
        Client::builder(base_url, token).timeout(timeout).build()
    }

    /// A client with other timeouts or pool limits than [`Client::new`]'s.
    ///
    /// # Examples
    /// ```
    /// use std::{fmt, time::Duration};
    /// use sessanger_client::Client;
    ///
    /// let client = Client::builder("http://127.0.0.1:8090", "web.secret")
    ///     .timeout(Duration::from_secs(2))
    ///     .connect_timeout(Duration::from_millis(500))
    ///     .pool_max_idle_per_host(16)
    ///     .build()?;
    /// # drop(client);
    /// # Ok::<(), sessanger_client::ClientError>(())
    /// ```
    pub fn builder(base_url: &str, token: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            token: token.to_owned(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            pool_idle_timeout: Duration::from_secs(50),
            pool_max_idle_per_host: None,
            user_agent: concat!("sessanger-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = check(request.send().await?).await?;
        Ok(response.json().await?)
    }

    /// `POST /v1/sessions`.
    pub async fn create_session(&self, body: &CreateSession) -> Result<SessionBody, ClientError> {
        self.send(self.request(Method::POST, "/v1/sessions").json(body)).await
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn get_session(&self, id: &SessionId) -> Result<SessionBody, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/sessions/{id}"))).await
    }

    /// `PATCH /v1/sessions/{id}/attributes`, with `If-Match` when `if_match` is given.
    pub async fn patch_session(
        &self,
        id: &SessionId,
        patch: &Patch,
        if_match: Option<Version>,
    ) -> Result<SessionBody, ClientError> {
        let mut request = self.request(Method::PATCH, &format!("/v1/sessions/{id}/attributes")).json(patch);
        if let Some(version) = if_match {
            request = request.header(header::IF_MATCH, format!("\"{}\"", version.0));
        }
        self.send(request).await
    }

    /// `PUT /v1/sessions/{id}`: replaces attributes and device if the session is still at `version`.
    pub async fn replace_session(
        &self,
        id: &SessionId,
        body: &ReplaceSession,
        version: Version,
    ) -> Result<SessionBody, ClientError> {
        let request = self
            .request(Method::PUT, &format!("/v1/sessions/{id}"))
            .header(header::IF_MATCH, format!("\"{}\"", version.0))
            .json(body);
        self.send(request).await
    }

    /// `POST /v1/sessions/{id}/refresh`.
    pub async fn refresh_session(&self, id: &SessionId) -> Result<SessionBody, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/sessions/{id}/refresh"))).await
    }

    /// `POST /v1/sessions/{id}/regenerate`.
    pub async fn regenerate_session(&self, id: &SessionId) -> Result<Regenerated, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/sessions/{id}/regenerate"))).await
    }

    /// `DELETE /v1/sessions/{id}`.
    pub async fn delete_session(&self, id: &SessionId) -> Result<(), ClientError> {
        check(self.request(Method::DELETE, &format!("/v1/sessions/{id}")).send().await?).await?;
        Ok(())
    }

    /// `GET /v1/users/{user_id}/sessions?limit=&cursor=`: one page of the user's sessions;
    /// `next_cursor` (as [`Page::after`]) asks for the next.
    pub async fn list_user_sessions(&self, user: &UserId, page: &Page) -> Result<SessionList, ClientError> {
        // A cursor is digits, a dot and a base64url id: nothing in it needs escaping.
        let mut path = format!("{}?limit={}", user_path(user), page.limit);
        if let Some(after) = &page.after {
            path.push_str(&format!("&cursor={after}"));
        }
        self.send(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/sessions?limit=&cursor=&created_by=`: one page of every live session, or of
    /// those `created_by` created; `next_cursor` is the `after` of the next. A filtered page
    /// may hold fewer sessions than `limit`, even none, and still have a next.
    pub async fn scan_sessions(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        created_by: Option<&ServiceId>,
    ) -> Result<SessionScan, ClientError> {
        // Session ids are base64url and service ids `a-z 0-9 - _`: nothing needs escaping.
        let mut path = format!("/v1/sessions?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&cursor={after}"));
        }
        if let Some(service) = created_by {
            path.push_str(&format!("&created_by={service}"));
        }
        self.send(self.request(Method::GET, &path)).await
    }

    /// `DELETE /v1/users/{user_id}/sessions`; returns how many were deleted.
    pub async fn delete_user_sessions(&self, user: &UserId) -> Result<u64, ClientError> {
        let deleted: Deleted = self.send(self.request(Method::DELETE, &user_path(user))).await?;
        Ok(deleted.deleted)
    }

    /// `GET /v1/stats`.
    pub async fn stats(&self) -> Result<Stats, ClientError> {
        self.send(self.request(Method::GET, "/v1/stats")).await
    }

    /// `POST /v1/services` (admin).
    pub async fn create_service(&self, body: &CreateService) -> Result<CreatedService, ClientError> {
        self.send(self.request(Method::POST, "/v1/services").json(body)).await
    }

    /// `GET /v1/services?limit=&cursor=` (admin): one page of the services, ordered by id;
    /// `next_cursor` is the `after` of the next.
    pub async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<ServiceList, ClientError> {
        // A service id is `a-z 0-9 - _`: nothing in it needs escaping.
        let mut path = format!("/v1/services?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&cursor={after}"));
        }
        self.send(self.request(Method::GET, &path)).await
    }

    /// `PATCH /v1/services/{id}` (admin): replaces the service's permissions.
    pub async fn update_service(&self, id: &ServiceId, body: &UpdateService) -> Result<ServiceBody, ClientError> {
        self.send(self.request(Method::PATCH, &format!("/v1/services/{id}")).json(body)).await
    }

    /// `DELETE /v1/services/{id}` (admin).
    pub async fn delete_service(&self, id: &ServiceId) -> Result<(), ClientError> {
        check(self.request(Method::DELETE, &format!("/v1/services/{id}")).send().await?).await?;
        Ok(())
    }
}

/// Options of a [`Client`], from [`Client::builder`].
#[derive(Clone)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    token: String,
    timeout: Duration,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: Option<usize>,
    user_agent: String,
}

/// Like [`Client`]'s, never shows the token.
impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Longest a whole request may take, connecting and reading the answer included. Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest connecting may take. Default 3 s: a server that does not accept by then is
    /// better reported unreachable than waited on.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept. Default 50 s: below the server's own idle
    /// timeout (`http.idle_timeout`, 60 s by default), so the client drops a connection before
    /// the server closes it, and never sends a request into one the server is closing.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Most idle connections kept to the server. Default: no limit.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = Some(max);
        self
    }

    /// The `User-Agent` sent. Default `sessanger-client/<version>`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The client; fails if the base URL is not an absolute http(s) URL.
    pub fn build(self) -> Result<Client, ClientError> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::InvalidUrl(self.base_url));
        }
        // reqwest is built without a crypto provider of its own (it would bring a second).
        sessanger_tls::install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .user_agent(self.user_agent);
        if let Some(max) = self.pool_max_idle_per_host {
            http = http.pool_max_idle_per_host(max);
        }
        Ok(Client { http: http.build()?, base: base.to_owned(), token: self.token.trim().to_owned() })
    }
}

/// User ids may hold any printable character, so they are percent-encoded into the path.
fn user_path(user: &UserId) -> String {
    format!("/v1/users/{}/sessions", percent_encoded(user.as_ref()))
}

/// `text` with every byte but the unreserved ones percent-encoded: safe in a path segment and
/// in a query value.
fn percent_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => ClientError::Api { status: status.as_u16(), code: body.error.code, message: body.error.message },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: if status == StatusCode::NOT_FOUND { ErrorCode::NotFound } else { ErrorCode::Unknown },
            message: text.chars().take(200).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_percent_encoded_in_paths() {
        let user: UserId = "a b/c@d".parse().unwrap();
        assert_eq!(user_path(&user), "/v1/users/a%20b%2Fc%40d/sessions");
    }

    #[test]
    fn only_unavailable_and_timed_out_answers_are_retryable() {
        let api = |code: &str| {
            let code = serde_json::from_value(code.into()).expect("any code decodes");
            ClientError::Api { status: 503, code, message: String::new() }
        };
        assert!(api("store_unavailable").is_retryable());
        assert!(api("request_timeout").is_retryable());
        assert!(!api("session_not_found").is_retryable());
        assert!(!api("some_future_code").is_retryable());
    }

    #[test]
    fn debug_output_names_the_service_but_never_the_secret() {
        let client = Client::new("http://localhost:8090", "web.s3cret").unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("\"web\"") && shown.contains("localhost:8090"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!format!("{:?}", Client::builder("http://localhost:8090", "web.s3cret")).contains("s3cret"));
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(matches!(Client::new("localhost:8090", "t"), Err(ClientError::InvalidUrl(_))));
        assert!(Client::new("http://localhost:8090/", "t").is_ok());
    }
}
