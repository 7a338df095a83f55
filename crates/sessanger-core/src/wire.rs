//! The JSON bodies of the native `/v1` HTTP API, shared by the server and its clients so the
//! two can never drift apart.

use serde::{Deserialize, Serialize};

use crate::{Attributes, Device, Permission, ServiceId, ServiceRecord, Session, SessionId, Timestamp, UserId, Version};

/// A session as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionBody {
    /// The session's id (43 characters of base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session_id: SessionId,
    /// The user it belongs to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// Where it was opened from.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub device: Device,
    /// The session's data.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
    /// Idle lifetime for this session, in seconds, instead of the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// `PUT /v1/sessions/{id}`: the new attributes and device, applied with `If-Match`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplaceSession {
    /// Every attribute the session should hold afterwards.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
    /// The device; absent means no device information.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub device: Device,
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
    /// The user's live sessions, oldest first.
    pub sessions: Vec<SessionBody>,
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
    /// Every registered service, ordered by id.
    pub services: Vec<ServiceBody>,
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
    /// A stable snake_case code to branch on (`session_not_found`, `version_mismatch`, …).
    pub code: String,
    /// A sentence for humans; may change between versions.
    pub message: String,
}
