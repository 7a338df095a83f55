//! A typed async client of sessanger's native `/v1` HTTP API.
//!
//! One [`Client`] keeps a pool of keep-alive connections; clone it freely (clones share the
//! pool). [`Client::builder`] sets timeouts and the pool's limits. Every failure the server
//! reports comes back as [`ClientError::Api`] with the server's stable error `code`, typed as an
//! [`ErrorCode`] by [`ClientError::kind`], so callers branch on codes, never on messages.
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
//! }).await?;
//! client.patch_session(&session.session_id, &Patch::default().incr("visits", 1), None).await?;
//! # Ok(()) }
//! ```

use std::{fmt, str::FromStr, time::Duration};

use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde::de::DeserializeOwned;
use sessanger_core::{
    Patch, ServiceId, SessionId, UserId, Version,
    wire::{
        CreateService, CreateSession, CreatedService, Deleted, ErrorBody, Regenerated, ReplaceSession, ServiceBody,
        ServiceList, SessionBody, SessionList, Stats,
    },
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status}: {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code (`session_not_found`, `version_mismatch`, `unauthorized`, …).
        code: String,
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
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The server's error code as a type; `None` if the server did not answer, or answered
    /// with a code this client does not know (a newer server).
    ///
    /// # Examples
    /// ```
    /// use sessanger_client::{ClientError, ErrorCode};
    ///
    /// let error = ClientError::Api { status: 412, code: "version_mismatch".into(), message: String::new() };
    /// assert_eq!(error.kind(), Some(ErrorCode::VersionMismatch));
    /// ```
    pub fn kind(&self) -> Option<ErrorCode> {
        self.code()?.parse().ok()
    }

    /// Whether the same request may succeed later unchanged: the server or its store was
    /// unreachable or too slow. A write retried after a timeout may apply twice.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(e) => e.is_timeout() || e.is_connect(),
            ClientError::Api { .. } => {
                matches!(self.kind(), Some(ErrorCode::StoreUnavailable | ErrorCode::RequestTimeout))
            }
            ClientError::InvalidUrl(_) => false,
        }
    }

    /// Whether the session (or service) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// The stable error codes of the `/v1` API (`{"error": {"code": ...}}`).
///
/// # Examples
/// ```
/// use sessanger_client::ErrorCode;
///
/// assert_eq!("session_not_found".parse(), Ok(ErrorCode::SessionNotFound));
/// assert_eq!(ErrorCode::SessionNotFound.as_str(), "session_not_found");
/// assert!("no_such_code".parse::<ErrorCode>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The bearer token is missing, malformed or unknown (401).
    Unauthorized,
    /// The service lacks the permission the route needs (403).
    Forbidden,
    /// No live session has this id (404).
    SessionNotFound,
    /// No service has this id (404).
    ServiceNotFound,
    /// No such route (404).
    NotFound,
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// The path holds no valid session id (404).
    InvalidSessionId,
    /// The request is malformed (400).
    InvalidRequest,
    /// The attributes break a size or shape limit (422).
    InvalidPatch,
    /// An increment hit a value that is not an integer (422).
    NotAnInteger,
    /// The change needs an attribute the server keeps encrypted (422).
    EncryptedAttribute,
    /// The body is not JSON (415).
    UnsupportedMediaType,
    /// The body is over the server's limit (413).
    PayloadTooLarge,
    /// The session changed since the version in `If-Match` (412).
    VersionMismatch,
    /// The route needs `If-Match` (428).
    PreconditionRequired,
    /// The user holds the most sessions allowed (409).
    TooManySessions,
    /// A live session already has the `session_id` the create asked for (409).
    SessionIdTaken,
    /// A service with this id is registered already (409).
    ServiceExists,
    /// The server gave up on the request (503); retrying may work.
    RequestTimeout,
    /// The server's store is unreachable (503); retrying may work.
    StoreUnavailable,
    /// The server failed; its log says why (500).
    Internal,
}

impl ErrorCode {
    /// The code as the server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::ServiceNotFound => "service_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidSessionId => "invalid_session_id",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidPatch => "invalid_patch",
            ErrorCode::NotAnInteger => "not_an_integer",
            ErrorCode::EncryptedAttribute => "encrypted_attribute",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::PreconditionRequired => "precondition_required",
            ErrorCode::TooManySessions => "too_many_sessions",
            ErrorCode::SessionIdTaken => "session_id_taken",
            ErrorCode::ServiceExists => "service_exists",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A code this client does not know, from a newer server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown sessanger error code `{0}`")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;
    fn from_str(code: &str) -> Result<Self, UnknownErrorCode> {
        Ok(match code {
            "unauthorized" => ErrorCode::Unauthorized,
            "forbidden" => ErrorCode::Forbidden,
            "session_not_found" => ErrorCode::SessionNotFound,
            "service_not_found" => ErrorCode::ServiceNotFound,
            "not_found" => ErrorCode::NotFound,
            "method_not_allowed" => ErrorCode::MethodNotAllowed,
            "invalid_session_id" => ErrorCode::InvalidSessionId,
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_patch" => ErrorCode::InvalidPatch,
            "not_an_integer" => ErrorCode::NotAnInteger,
            "encrypted_attribute" => ErrorCode::EncryptedAttribute,
            "unsupported_media_type" => ErrorCode::UnsupportedMediaType,
            "payload_too_large" => ErrorCode::PayloadTooLarge,
            "version_mismatch" => ErrorCode::VersionMismatch,
            "precondition_required" => ErrorCode::PreconditionRequired,
            "too_many_sessions" => ErrorCode::TooManySessions,
            "session_id_taken" => ErrorCode::SessionIdTaken,
            "service_exists" => ErrorCode::ServiceExists,
            "request_timeout" => ErrorCode::RequestTimeout,
            "store_unavailable" => ErrorCode::StoreUnavailable,
            "internal" => ErrorCode::Internal,
            other => return Err(UnknownErrorCode(other.to_owned())),
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// use std::{fmt, str::FromStr, time::Duration};
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
            pool_idle_timeout: Duration::from_secs(90),
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

    /// `GET /v1/users/{user_id}/sessions`.
    pub async fn list_user_sessions(&self, user: &UserId) -> Result<Vec<SessionBody>, ClientError> {
        let list: SessionList = self.send(self.request(Method::GET, &user_path(user))).await?;
        Ok(list.sessions)
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

    /// `GET /v1/services` (admin).
    pub async fn list_services(&self) -> Result<Vec<ServiceBody>, ClientError> {
        let list: ServiceList = self.send(self.request(Method::GET, "/v1/services")).await?;
        Ok(list.services)
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

    /// How long an idle pooled connection is kept. Default 90 s.
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
    let mut encoded = String::with_capacity(user.as_ref().len());
    for b in user.as_ref().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/v1/users/{encoded}/sessions")
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
            code: if status == StatusCode::NOT_FOUND { "not_found".into() } else { "unexpected_response".into() },
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
    fn every_error_code_round_trips_through_its_spelling() {
        let all = [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::SessionNotFound,
            ErrorCode::ServiceNotFound,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::InvalidSessionId,
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidPatch,
            ErrorCode::NotAnInteger,
            ErrorCode::EncryptedAttribute,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::VersionMismatch,
            ErrorCode::PreconditionRequired,
            ErrorCode::TooManySessions,
            ErrorCode::SessionIdTaken,
            ErrorCode::ServiceExists,
            ErrorCode::RequestTimeout,
            ErrorCode::StoreUnavailable,
            ErrorCode::Internal,
        ];
        for code in all {
            assert_eq!(code.as_str().parse(), Ok(code));
        }
    }

    #[test]
    fn only_unavailable_and_timed_out_answers_are_retryable() {
        let api = |code: &str| ClientError::Api { status: 503, code: code.into(), message: String::new() };
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
