//! What happened to sessions: [`SessionEvent`]s, as subscribers in the process receive them
//! ([`SessionManager::subscribe`](crate::SessionManager::subscribe)) and as a store records
//! them in its event log ([`EventRecord`], [`EventLog`](crate::EventLog)), in the same atomic
//! step as the change each describes.

use std::{collections::BTreeSet, fmt, num::NonZeroU64, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{ServiceId, SessionId, Timestamp, UserId};

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Every type, as [`SessionEvent::kind`] names them.
    pub const KINDS: [&'static str; 6] =
        ["created", "refreshed", "attributes_changed", "regenerated", "deleted", "expired"];

    /// The event's type as the wire names it: `created`, `refreshed`, `attributes_changed`,
    /// `regenerated`, `deleted`, `expired`.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionEvent::Created { .. } => "created",
            SessionEvent::Refreshed { .. } => "refreshed",
            SessionEvent::AttributesChanged { .. } => "attributes_changed",
            SessionEvent::Regenerated { .. } => "regenerated",
            SessionEvent::Deleted { .. } => "deleted",
            SessionEvent::Expired { .. } => "expired",
        }
    }

    /// The session it happened to (for a regeneration, the new id).
    pub fn session_id(&self) -> &SessionId {
        match self {
            SessionEvent::Created { session_id, .. }
            | SessionEvent::Refreshed { session_id, .. }
            | SessionEvent::AttributesChanged { session_id, .. }
            | SessionEvent::Regenerated { session_id, .. }
            | SessionEvent::Deleted { session_id, .. }
            | SessionEvent::Expired { session_id, .. } => session_id,
        }
    }

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Deleted by id (a logout).
    Logout,
    /// Deleted with all the user's sessions.
    Revoked,
    /// Deleted to make room under the per-user limit.
    Evicted,
}

impl DeleteReason {
    /// The reason as the wire (and serde) names it: `logout`, `revoked`, `evicted`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::Logout => "logout",
            DeleteReason::Revoked => "revoked",
            DeleteReason::Evicted => "evicted",
        }
    }
}

/// An event's place in its store's log: ids grow with every event recorded, so a consumer
/// that saw one resumes after it. Written as decimal digits, and in JSON as a string:
/// consumers keep it and hand it back, they never compute with it.
///
/// # Examples
/// ```
/// use sessanger_core::EventId;
///
/// let id: EventId = "42".parse().unwrap();
/// assert_eq!(id.next(), EventId(43));
/// assert_eq!(serde_json::to_string(&id).unwrap(), r#""42""#);
/// assert!("4x".parse::<EventId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl EventId {
    /// The id after this one.
    pub fn next(self) -> EventId {
        EventId(self.0 + 1)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A text that is no [`EventId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an event id is a decimal number")]
pub struct MalformedEventId;

impl FromStr for EventId {
    type Err = MalformedEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MalformedEventId);
        }
        s.parse().map(EventId).map_err(|_| MalformedEventId)
    }
}

/// An event as a store recorded it: in the same atomic step as the change it describes, so a
/// change is never without its event and an event never without its change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its place in the log.
    pub id: EventId,
    /// When the change happened.
    pub at: Timestamp,
    /// The service that made the change; `None` for the operator's own tools and the reaper.
    pub service: Option<ServiceId>,
    /// What happened.
    pub event: SessionEvent,
}

/// How much of its event log a store keeps: at most `max_events`, none older than `max_age`.
/// Consumers that fall further behind miss what was trimmed (and are told so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The most events kept.
    pub max_events: NonZeroU64,
    /// The oldest an event may grow before it is trimmed.
    pub max_age: Duration,
}

impl Default for Retention {
    /// 100 000 events, one day.
    fn default() -> Self {
        Retention { max_events: NonZeroU64::new(100_000).expect("not zero"), max_age: Duration::from_secs(86_400) }
    }
}

/// Which events a consumer keeps: some types only, one user's only; every event by default.
///
/// # Examples
/// ```
/// use sessanger_core::EventFilter;
///
/// let filter = EventFilter::default().with_types("deleted, expired").unwrap();
/// assert_eq!(filter.types.iter().copied().collect::<Vec<_>>(), ["deleted", "expired"]);
/// assert!(EventFilter::default().with_types("deleted,exploded").is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// The types kept ([`SessionEvent::KINDS`]); empty keeps every type.
    pub types: BTreeSet<&'static str>,
    /// The one user whose events are kept; `None` keeps everyone's.
    pub user: Option<UserId>,
}

/// A type named in a filter that no event has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event type `{0}` (the types are created, refreshed, attributes_changed, regenerated, deleted, expired)"
)]
pub struct UnknownEventType(pub String);

impl EventFilter {
    /// Keeps only the types of a comma-separated `list` (blanks around names are ignored).
    pub fn with_types(mut self, list: &str) -> Result<EventFilter, UnknownEventType> {
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let kind = SessionEvent::KINDS.iter().find(|kind| **kind == name);
            self.types.insert(kind.ok_or_else(|| UnknownEventType(name.to_owned()))?);
        }
        Ok(self)
    }

    /// Whether the filter keeps `record`.
    pub fn keeps(&self, record: &EventRecord) -> bool {
        (self.types.is_empty() || self.types.contains(record.event.kind()))
            && self.user.as_ref().is_none_or(|user| record.event.user_id() == user)
    }
}
