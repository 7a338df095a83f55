//! A typed async client of sessanger's native `/v1` HTTP API.
//!
//! One [`Client`] keeps a pool of keep-alive connections; clone it freely. Every failure the
//! server reports comes back as [`ClientError::Api`] with the server's stable error `code`,
//! so callers branch on codes, never on messages.
//!
//! # Examples
//! ```no_run
//! use sessanger_client::Client;
//! use sessanger_core::{Patch, wire::CreateSession};
//!
//! # async fn run() -> Result<(), sessanger_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8090", "billing.secret")?;
//! let session = client.create_session(&CreateSession {
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

use std::time::Duration;

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

    /// Whether the session (or service) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// A connection-pooling client of one sessanger server, authenticated as one service.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8090`) using the service
    /// token `token`; requests time out after 10 s.
    pub fn new(base_url: &str, token: &str) -> Result<Client, ClientError> {
        Client::with_timeout(base_url, token, Duration::from_secs(10))
    }

    /// Like [`Client::new`] with another request timeout.
    pub fn with_timeout(base_url: &str, token: &str, timeout: Duration) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::InvalidUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Client { http, base: base.to_owned(), token: token.trim().to_owned() })
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
    fn base_url_must_be_http() {
        assert!(matches!(Client::new("localhost:8090", "t"), Err(ClientError::InvalidUrl(_))));
        assert!(Client::new("http://localhost:8090/", "t").is_ok());
    }
}
