//! The JSON bodies of the native `/v1` HTTP API, shared by the server and its clients so the
//! two can never drift apart.

use serde::{Deserialize, Serialize};

use crate::{
    Attributes, DeleteReason, Device, EventId, EventRecord, Permission, ServiceId, ServiceRecord, Session,
    SessionEvent, SessionId, Timestamp, UserId, Version,
};

/// A session as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionBody {
    /// The session's id (24 characters of base64url; 43 for sessions of earlier versions).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// The user it belongs to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// Where it was opened from.
    pub device: Device,
    /// The session's data.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, serde_json::Value>))]
    pub attributes: Attributes,
    /// RFC 3339.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// RFC 3339: the last refresh.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_access_at: Timestamp,
    /// RFC 3339: when the session dies unless refreshed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// RFC 3339: the deadline no refresh extends.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub absolute_expires_at: Timestamp,
    /// Idle lifetime in seconds.
    pub idle_ttl_secs: u64,
    /// Grows with every write; also sent as the `ETag`.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub version: Version,
    /// The service that created the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub created_by: Option<ServiceId>,
}

impl From<Session> for SessionBody {
    fn from(s: Session) -> Self {
        SessionBody {
            session_id: s.id,
            user_id: s.user_id,
            device: s.device,
            attributes: s.attributes,
            created_at: s.created_at,
            last_access_at: s.last_access_at,
            expires_at: s.expires_at,
            absolute_expires_at: s.absolute_expires_at,
            idle_ttl_secs: s.idle_ttl.as_secs(),
            version: s.version,
            created_by: s.created_by,
        }
    }
}

/// `POST /v1/sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSession {
    /// The user to open a session for.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// An id chosen by the caller instead of a fresh one (it must carry the user's shard tag:
    /// `SessionId::generate_for`); 409 `session_id_taken` if a live session has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub session_id: Option<SessionId>,
    /// The client's device identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The client's IP address as the calling service saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Initial attributes.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, serde_json::Value>))]
    pub attributes: Attributes,
    /// Idle lifetime for this session, in seconds, instead of the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// RFC 3339: an absolute deadline before the configured one (a later one is capped by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub absolute_expires_at: Option<Timestamp>,
}

/// `PUT /v1/sessions/{id}`: the new attributes and device, applied with `If-Match`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplaceSession {
    /// Every attribute the session should hold afterwards.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, serde_json::Value>))]
    pub attributes: Attributes,
    /// The device; absent means no device information.
    #[serde(default)]
    pub device: Device,
    /// RFC 3339: a new absolute deadline, earlier or later than the current one (never past
    /// the server's maximum lifetime counted from the session's creation); absent keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub absolute_expires_at: Option<Timestamp>,
}

impl ReplaceSession {
    /// The store's view of this body, to apply at version `expected`.
    pub fn replacement(&self, expected: Version) -> crate::Replacement<'_> {
        crate::Replacement::new(&self.attributes, &self.device, expected)
            .with_absolute_expires_at(self.absolute_expires_at)
    }
}

/// `POST /v1/sessions/{id}/regenerate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Regenerated {
    /// The new id; the old one no longer works.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// The session under its new id.
    pub session: SessionBody,
}

/// `GET /v1/users/{user_id}/sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    /// One page of the user's live sessions, oldest first.
    pub sessions: Vec<SessionBody>,
    /// Where the next page starts (`?cursor=`); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub next_cursor: Option<crate::Position>,
}

/// `GET /v1/sessions`: one page of every live session (of one creator, if asked).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionScan {
    /// The live sessions of the page, in the store's own order.
    pub sessions: Vec<SessionBody>,
    /// Where the next page starts (`?cursor=`); absent once every session was visited. A
    /// page with a `created_by` filter may hold fewer sessions than asked, even none, and
    /// still have a next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub next_cursor: Option<SessionId>,
}

/// `DELETE /v1/users/{user_id}/sessions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    /// How many live sessions were deleted.
    pub deleted: u64,
}

/// `GET /v1/stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Live sessions in the store.
    pub active_sessions: u64,
}

/// A registered service as the API shows it: never its secret or the secret's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceBody {
    /// The service's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ServiceId,
    /// Its human-readable name.
    pub name: String,
    /// What it may do.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub permissions: Vec<Permission>,
    /// RFC 3339.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl From<ServiceRecord> for ServiceBody {
    fn from(r: ServiceRecord) -> Self {
        ServiceBody { id: r.id, name: r.name, permissions: r.permissions, created_at: r.created_at }
    }
}

/// `POST /v1/services`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateService {
    /// The new service's id: 1 to 64 characters of a-z, 0-9, '-' and '_'.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ServiceId,
    /// A human-readable name; defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it may do: `read`, `write`, `admin`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub permissions: Vec<Permission>,
}

/// `PATCH /v1/services/{id}`: what the service may do from now on (its token stays valid).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateService {
    /// Its permissions, replacing the ones it had: `read`, `write`, `admin`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub permissions: Vec<Permission>,
}

/// The answer to `POST /v1/services`: the only time the token is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedService {
    /// The service.
    pub service: ServiceBody,
    /// Its bearer token, `<service id>.<secret>`; not stored anywhere in clear.
    pub token: String,
}

/// `GET /v1/services`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceList {
    /// One page of the registered services, ordered by id.
    pub services: Vec<ServiceBody>,
    /// Where the next page starts (`?cursor=`); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub next_cursor: Option<ServiceId>,
}

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// What to branch on.
    pub code: ErrorCode,
    /// A sentence for humans; may change between versions.
    pub message: String,
}

/// Every value of `error.code`: stable and snake_case; clients branch on these, never on
/// messages. Serde spells them, for the server's bodies, the clients' decoding and the
/// OpenAPI schema alike.
///
/// # Examples
/// ```
/// use sessanger_core::wire::ErrorCode;
///
/// assert_eq!(serde_json::to_string(&ErrorCode::SessionNotFound).unwrap(), r#""session_not_found""#);
/// assert_eq!(ErrorCode::VersionMismatch.to_string(), "version_mismatch");
/// // A code from a newer server still decodes.
/// assert_eq!(serde_json::from_str::<ErrorCode>(r#""no_such_code""#).unwrap(), ErrorCode::Unknown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
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
    /// A new deadline (`absolute_expires_at`) is not in the future (422).
    DeadlinePassed,
    /// The body is not JSON (415).
    UnsupportedMediaType,
    /// The body is over the server's limit (413).
    PayloadTooLarge,
    /// The write would take the session past its cap: too many attributes, or too many bytes
    /// of them (413). Nothing was written.
    SessionTooLarge,
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
    /// The server's store keeps no event log, so there are no events to stream (501).
    EventsUnavailable,
    /// The server failed; its log says why (500).
    Internal,
    /// A code this version does not know (a newer server's), or an answer that was not an
    /// error body at all. Decoded, never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Not serializable: it is never sent.
            ErrorCode::Unknown => f.write_str("unknown"),
            // serde writes a unit variant to a formatter as its serialized name.
            code => code.serialize(f),
        }
    }
}

/// An event as delivered outside the process: the `data` of a `GET /v1/events` message (whose
/// `id` is the event id and whose `event` is its `type`), and a `sessanger events tail` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventBody {
    /// The event's place in the store's log: resume after it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: EventId,
    /// `created`, `refreshed`, `attributes_changed`, `regenerated`, `deleted` or `expired`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339: when the change happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The service that made the change; absent for the operator's tools and expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub service: Option<ServiceId>,
    /// The user whose session it is.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// The session (for `regenerated`, its new id); absent where the deployment delivers
    /// fingerprints only (`events.session_ids: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub session_id: Option<SessionId>,
    /// The session's fingerprint, always: names it in logs without letting anyone use it.
    pub fingerprint: String,
    /// `regenerated`: the id that stopped working (absent as `session_id` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub old_session_id: Option<SessionId>,
    /// `regenerated`: the fingerprint of the id that stopped working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_fingerprint: Option<String>,
    /// `attributes_changed`: the keys the change named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// `deleted`: `logout`, `revoked` or `evicted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason: Option<DeleteReason>,
}

impl EventBody {
    /// The body of `record`, with the session ids themselves if `session_ids`.
    pub fn new(record: &EventRecord, session_ids: bool) -> EventBody {
        let event = &record.event;
        let (mut keys, mut reason, mut old) = (None, None, None);
        match event {
            SessionEvent::AttributesChanged { keys: changed, .. } => keys = Some(changed.clone()),
            SessionEvent::Deleted { reason: why, .. } => reason = Some(*why),
            SessionEvent::Regenerated { old_session_id, .. } => old = Some(old_session_id),
            _ => {}
        }
        let session_id = event.session_id();
        EventBody {
            id: record.id,
            kind: event.kind().to_owned(),
            at: record.at,
            service: record.service.clone(),
            user_id: event.user_id().clone(),
            session_id: session_ids.then(|| session_id.clone()),
            fingerprint: session_id.fingerprint(),
            old_session_id: old.filter(|_| session_ids).cloned(),
            old_fingerprint: old.map(SessionId::fingerprint),
            keys,
            reason,
        }
    }
}
