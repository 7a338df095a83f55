//! The request and reply bodies: versioned JSON, one file per request kind.
//!
//! A request is `{"v": 1, "op": "<kind>", ...fields}`. A reply is `{"ok": true, ...fields}`
//! or `{"ok": false, "error": {"code", "message"}}`, where `wrong_manager` errors also name
//! the right `routing_key`.
//!
//! Each kind has the same shape, like a mini-redis command: its struct is the decoded body,
//! `apply(self, &Responder)` runs it on the session manager and returns the reply's fields
//! (kinds that act on a user by name also take the [`Caller`], to authorize it), and
//! [`Request::encode`] / [`Request::decode`] turn the dispatch enum into bytes and back.
//! Adding a kind means one file and one arm in [`Request`].

mod get;
mod list;
mod login;
mod logout;
mod refresh;
mod revoke_all;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessanger_core::{ManagerError, Session, StoreError, wire::SessionBody};

pub use self::{get::Get, list::List, login::Login, logout::Logout, refresh::Refresh, revoke_all::RevokeAll};
use crate::{Responder, RoutingKey, responder::Caller};

/// The request body version this crate speaks.
pub const VERSION: u32 = 1;

/// Every request a manager serves: the dispatch enum.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Authenticate and open a session: [`Login`].
    Login(Login),
    /// Close one session: [`Logout`].
    Logout(Logout),
    /// Renew a session's idle deadline: [`Refresh`].
    Refresh(Refresh),
    /// Read a session: [`Get`].
    Get(Get),
    /// A user's sessions: [`List`].
    List(List),
    /// Close every session of a user: [`RevokeAll`].
    RevokeAll(RevokeAll),
}

/// A user's password as a request carries it. Debug hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// The password as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Self {
        Password(password.to_owned())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

impl Request {
    /// Parses a request body; a malformed body or an unknown version is a [`ReplyError`] the
    /// manager sends back as it is.
    ///
    /// # Examples
    /// ```
    /// use sessanger_amqp::{ReplyCode, Request};
    ///
    /// let request = Request::decode(br#"{"v": 1, "op": "list", "user": "om1"}"#).unwrap();
    /// assert!(matches!(request, Request::List(_)));
    /// let failure = Request::decode(br#"{"v": 9, "op": "list", "user": "om1"}"#).unwrap_err();
    /// assert_eq!(failure.code, ReplyCode::UnsupportedVersion);
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Request, ReplyError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(|e| {
            ReplyError::new(ReplyCode::BadRequest, format!("not a request (a JSON object with `v`): {e}"))
        })?;
        if version.v != VERSION {
            return Err(ReplyError::new(
                ReplyCode::UnsupportedVersion,
                format!("request version {} is not supported (this manager speaks {VERSION})", version.v),
            ));
        }
        let envelope: Envelope<Request> =
            serde_json::from_slice(bytes).map_err(|e| ReplyError::new(ReplyCode::BadRequest, e.to_string()))?;
        Ok(envelope.body)
    }

    /// The request body, at [`VERSION`].
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Envelope { v: VERSION, body: self }).expect("requests always serialize")
    }

    /// Runs the request from `caller` on `responder`; the reply to send back. Requests by
    /// session id are authorized by the id alone; the others by the user's password, or by
    /// an admin caller.
    pub async fn apply(self, responder: &Responder, caller: Caller) -> Reply {
        let result = match self {
            Request::Login(r) => r.apply(responder, caller).await,
            Request::Logout(r) => r.apply(responder).await,
            Request::Refresh(r) => r.apply(responder).await,
            Request::Get(r) => r.apply(responder).await,
            Request::List(r) => r.apply(responder, caller).await,
            Request::RevokeAll(r) => r.apply(responder, caller).await,
        };
        match result {
            Ok(fields) => Reply::Ok(fields),
            Err(failure) => Reply::Err(failure),
        }
    }
}

/// A reply: the fields of a success, or a failure.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `{"ok": true, ...fields}`.
    Ok(Map<String, Value>),
    /// `{"ok": false, "error": {...}}`.
    Err(ReplyError),
}

impl Reply {
    /// The reply body.
    pub fn encode(&self) -> Vec<u8> {
        let body = match self {
            Reply::Ok(fields) => {
                let mut body = Map::with_capacity(fields.len() + 1);
                body.insert("ok".into(), Value::Bool(true));
                body.extend(fields.clone());
                Value::Object(body)
            }
            Reply::Err(failure) => serde_json::json!({"ok": false, "error": failure}),
        };
        serde_json::to_vec(&body).expect("replies always serialize")
    }

    /// Parses a reply body.
    ///
    /// # Examples
    /// ```
    /// use sessanger_amqp::{ReplyCode, message::Reply};
    ///
    /// let reply = Reply::decode(br#"{"ok": false, "error": {"code": "auth_failed", "message": "no"}}"#).unwrap();
    /// assert!(matches!(reply, Reply::Err(f) if f.code == ReplyCode::AuthFailed));
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Reply, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            ok: bool,
            #[serde(default)]
            error: Option<ReplyError>,
            #[serde(flatten)]
            rest: Map<String, Value>,
        }
        let raw: Raw = serde_json::from_slice(bytes)?;
        match (raw.ok, raw.error) {
            (true, _) => Ok(Reply::Ok(raw.rest)),
            (false, Some(failure)) => Ok(Reply::Err(failure)),
            (false, None) => Err(serde::de::Error::missing_field("error")),
        }
    }
}

/// A stable, snake_case error code to branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplyCode {
    /// The body is not a request.
    BadRequest,
    /// The body's `v` is not one this manager speaks.
    UnsupportedVersion,
    /// Another manager serves this user; the error names its `routing_key`.
    WrongManager,
    /// No manager serves this user (no key lists it and none lists `'*'`).
    NoManager,
    /// PAM refused the user name or password; nothing was created.
    AuthFailed,
    /// The sender may not make this request: no `user_id` property, an account that may not
    /// send requests, or a request only an admin may make without the user's password.
    Forbidden,
    /// A login without a password for a user with no broker account: there is no password
    /// to give it.
    PasswordRequired,
    /// No live session has this id (on this manager).
    SessionNotFound,
    /// The user holds as many sessions as the policy allows.
    LimitReached,
    /// The broker's management API failed; nothing was left half-made.
    BrokerFailed,
    /// The session store is unreachable.
    StoreUnavailable,
    /// Anything else; the manager's log has the details.
    Internal,
    /// A code this client does not know (a newer manager).
    #[serde(other)]
    Unknown,
}

/// The error of a failed request, as the reply carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ReplyError {
    /// What went wrong.
    pub code: ReplyCode,
    /// A sentence for humans; may change between versions.
    pub message: String,
    /// With [`ReplyCode::WrongManager`]: the routing key of the manager serving the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
}

impl ReplyError {
    /// A failure with no routing key.
    pub fn new(code: ReplyCode, message: impl Into<String>) -> Self {
        ReplyError { code, message: message.into(), routing_key: None }
    }

    /// `wrong_manager`, naming the key that serves the user.
    pub fn wrong_manager(user: &impl std::fmt::Display, right: &RoutingKey) -> Self {
        ReplyError {
            code: ReplyCode::WrongManager,
            message: format!("user `{user}` is served by the manager with routing key `{right}`"),
            routing_key: Some(right.to_string()),
        }
    }
}

impl From<ManagerError> for ReplyError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::NotFound => ReplyError::new(ReplyCode::SessionNotFound, "no live session has this id"),
            ManagerError::LimitReached => ReplyError::new(ReplyCode::LimitReached, error.to_string()),
            ManagerError::Store(StoreError::Unavailable(_)) => {
                tracing::warn!(%error, "session store unavailable");
                ReplyError::new(ReplyCode::StoreUnavailable, "the session store is unavailable")
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ReplyError::new(ReplyCode::Internal, "internal error")
            }
        }
    }
}

/// `{"session": {...}}`: the reply fields of the requests that answer with one session.
fn session_fields(session: Session) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("session".into(), to_value(SessionBody::from(session)));
    fields
}

fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).expect("reply fields always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_an_encode_decode_round_trip() {
        let bodies = [
            r#"{"v":1,"op":"login","user":"sysadm","password":"pw","device_id":"phone"}"#,
            r#"{"v":1,"op":"logout","session_id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"op":"refresh","session_id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"op":"get","session_id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"op":"list","user":"om1"}"#,
            r#"{"v":1,"op":"list","user":"om1","password":"pw"}"#,
            r#"{"v":1,"op":"revoke_all","user":"om1"}"#,
            r#"{"v":1,"op":"revoke_all","user":"om1","password":"pw"}"#,
            r#"{"v":1,"op":"login","user":"sysadm"}"#,
        ];
        for body in bodies {
            let request = Request::decode(body.as_bytes()).unwrap();
            let again: Value = serde_json::from_slice(&request.encode()).unwrap();
            assert_eq!(again, serde_json::from_str::<Value>(body).unwrap(), "{body}");
        }
    }

    #[test]
    fn unknown_kind_and_missing_field_are_bad_requests() {
        for body in [r#"{"v":1,"op":"dance"}"#, r#"{"v":1,"op":"list"}"#, "[]", "not json"] {
            assert_eq!(Request::decode(body.as_bytes()).unwrap_err().code, ReplyCode::BadRequest, "{body}");
        }
    }

    #[test]
    fn invalid_user_name_is_a_bad_request() {
        let body = format!(r#"{{"v":1,"op":"list","user":"{}"}}"#, "x".repeat(300));
        assert_eq!(Request::decode(body.as_bytes()).unwrap_err().code, ReplyCode::BadRequest);
    }

    #[test]
    fn debug_hides_every_password() {
        for op in ["login", "list", "revoke_all"] {
            let body = format!(r#"{{"v":1,"op":"{op}","user":"sysadm","password":"secret"}}"#);
            let request = Request::decode(body.as_bytes()).unwrap();
            assert!(!format!("{request:?}").contains("secret"), "{op}");
        }
    }

    #[test]
    fn replies_carry_ok_and_the_error_object() {
        let ok = Reply::Ok(Map::from_iter([("deleted".to_owned(), Value::from(2))]));
        assert_eq!(
            serde_json::from_slice::<Value>(&ok.encode()).unwrap(),
            serde_json::json!({"ok": true, "deleted": 2})
        );
        let err = Reply::Err(ReplyError::wrong_manager(&"om1", &"sessanger2".parse().unwrap()));
        let body: Value = serde_json::from_slice(&err.encode()).unwrap();
        assert_eq!(body["ok"], false);
        assert_eq!(body["error"]["code"], "wrong_manager");
        assert_eq!(body["error"]["routing_key"], "sessanger2");
        assert_eq!(Reply::decode(&err.encode()).unwrap(), err);
        assert_eq!(Reply::decode(&ok.encode()).unwrap(), ok);
    }

    #[test]
    fn unknown_error_codes_decode_as_unknown() {
        let reply = Reply::decode(br#"{"ok":false,"error":{"code":"from_the_future","message":"?"}}"#).unwrap();
        assert!(matches!(reply, Reply::Err(f) if f.code == ReplyCode::Unknown));
    }
}
