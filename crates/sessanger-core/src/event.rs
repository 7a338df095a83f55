//! What happened to sessions, for subscribers ([`SessionManager::subscribe`](crate::SessionManager::subscribe)).

use serde::Serialize;

use crate::{SessionId, UserId};

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// A session was created.
    Created {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
    },
    /// A session's idle deadline was renewed.
    Refreshed {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
    },
    /// Attributes were set, removed or incremented, or the session was replaced.
    AttributesChanged {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// The keys named by the change (every key for a replacement).
        keys: Vec<String>,
    },
    /// A session moved to a new id.
    Regenerated {
        /// The id that no longer works.
        old_session_id: SessionId,
        /// The id the session lives under now.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
    },
    /// A session was deleted before it expired.
    Deleted {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// Why.
        reason: DeleteReason,
    },
    /// A session reached its deadline; fires even if nobody touched it.
    Expired {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
    },
}

impl SessionEvent {
    /// The user whose session it is.
    pub fn user_id(&self) -> &UserId {
        match self {
            SessionEvent::Created { user_id, .. }
            | SessionEvent::Refreshed { user_id, .. }
            | SessionEvent::AttributesChanged { user_id, .. }
            | SessionEvent::Regenerated { user_id, .. }
            | SessionEvent::Deleted { user_id, .. }
            | SessionEvent::Expired { user_id, .. } => user_id,
        }
    }
}

/// Why a session was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Deleted by id (a logout).
    Logout,
    /// Deleted with all the user's sessions.
    Revoked,
    /// Deleted to make room under the per-user limit.
    Evicted,
}
