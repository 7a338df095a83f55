//! The contract every session store keeps.
//!
//! A store is a [`SessionStore`] (sessions and the per-user index) and a [`ServiceStore`] (the
//! service registry); [`Backend`] names both. Each method is **one atomic step** in the
//! backend — one transaction, one script or one statement — so the manager never reads,
//! changes and writes back a session itself, and concurrent writers never lose updates.
//!
//! `sessanger-store-memory` is the reference implementation (one page), and
//! `sessanger-testkit` checks every sentence of this contract against any store.
//!
//! Time is passed in as `now`: a store never reads a clock, so expiry is tested by moving a
//! [`ManualClock`](crate::ManualClock).

use std::{fmt::Debug, num::NonZeroU32};

use async_trait::async_trait;

use crate::{
    Attributes, Device, Patch, PatchError, ServiceId, ServiceRecord, Session, SessionId, Timestamp, UserId, Version,
};

/// A boxed error from a backend, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record could not be encoded.
    #[error("failed to encode a session record")]
    Encode(#[source] BoxError),
    /// A stored record could not be decoded; the store holds data this version does not read.
    #[error("failed to decode a stored record")]
    Decode(#[source] BoxError),
    /// The backend cannot be reached now; retrying later may succeed.
    #[error("session backend unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend failed in another way.
    #[error("session backend failed")]
    Backend(#[source] BoxError),
}

/// How many live sessions one user may hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserLimit {
    /// No limit.
    #[default]
    Unlimited,
    /// At the limit, creating a session deletes the user's oldest ones (by `created_at`).
    EvictOldest(NonZeroU32),
    /// At the limit, creating a session is refused.
    Refuse(NonZeroU32),
}

impl UserLimit {
    /// Whether a user holding `live` sessions may open one more: `None` to refuse, or
    /// `Some(n)` to admit it after evicting the user's `n` oldest sessions.
    ///
    /// # Examples
    /// ```
    /// use std::num::NonZeroU32;
    /// use sessanger_core::UserLimit;
    ///
    /// let two = NonZeroU32::new(2).unwrap();
    /// assert_eq!(UserLimit::Refuse(two).admit(2), None);
    /// assert_eq!(UserLimit::EvictOldest(two).admit(2), Some(1));
    /// assert_eq!(UserLimit::Unlimited.admit(1_000), Some(0));
    /// ```
    pub fn admit(self, live: usize) -> Option<usize> {
        match self {
            UserLimit::Unlimited => Some(0),
            UserLimit::Refuse(max) => (live < max.get() as usize).then_some(0),
            UserLimit::EvictOldest(max) => Some((live + 1).saturating_sub(max.get() as usize)),
        }
    }
}

/// What [`SessionStore::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Stored; `evicted` lists the sessions deleted to respect [`UserLimit::EvictOldest`].
    Created {
        /// Sessions removed to make room, oldest first.
        evicted: Vec<SessionId>,
    },
    /// A live session already has this id; nothing was written.
    IdTaken,
    /// The user is at the [`UserLimit::Refuse`] limit; nothing was written.
    LimitReached,
}

/// What [`SessionStore::patch`] did.
// Outcomes are returned once and matched at once, never stored in bulk: boxing the
// session would cost an allocation on every call for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Patched {
    /// Applied; the session as it is now.
    Applied(Session),
    /// No live session has this id.
    NotFound,
    /// The version did not match; nothing was written.
    VersionMismatch(Version),
    /// The patch cannot apply to the stored values; nothing was written.
    Rejected(PatchError),
}

/// What [`SessionStore::replace`] did.
// Outcomes are returned once and matched at once, never stored in bulk: boxing the
// session would cost an allocation on every call for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Replaced {
    /// Replaced; the session as it is now.
    Applied(Session),
    /// No live session has this id.
    NotFound,
    /// The stored version is not the expected one; nothing was written.
    VersionMismatch(Version),
}

/// What [`SessionStore::rename`] did.
// Outcomes are returned once and matched at once, never stored in bulk: boxing the
// session would cost an allocation on every call for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Renamed {
    /// The session now lives under the new id only.
    Renamed(Session),
    /// No live session has the old id.
    NotFound,
    /// A live session already has the new id; nothing was written.
    IdTaken,
}

/// A session named by id and owner, for results where the data is gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionRef {
    /// The session's id.
    pub id: SessionId,
    /// Its user.
    pub user_id: UserId,
}

/// Sessions and their per-user index.
///
/// Every method is one atomic step in the backend. A session whose `expires_at <= now` is
/// dead: no method returns it, counts it or lets it be changed, whether or not the backend
/// has purged it yet.
///
/// Callers keep one precondition: a session's id carries its user's shard tag
/// ([`SessionId::generate_for`]), and a new id given to [`SessionStore::rename`] carries the
/// old one's ([`SessionId::regenerate`]). A store may rely on it to place all of a user's
/// sessions and index entries together.
#[async_trait]
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Stores a new session and adds it to its user's index.
    ///
    /// Never overwrites: if a live session has the same id, nothing is written and
    /// [`Created::IdTaken`] is returned (the manager retries with a fresh id). The
    /// `limit` is enforced in the same atomic step, so a user never holds more sessions
    /// than it allows, even for an instant.
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError>;

    /// The live session with this id; `Ok(None)` for an unknown or expired id (absence is
    /// not an error). Loading does not count as access.
    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// Loads the live session and renews its idle deadline from `now` (never past its
    /// absolute deadline) in one step.
    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// Sets, removes and increments attributes in one atomic step, as
    /// [`Session::apply`] defines; keys the patch does not name are never touched, so
    /// concurrent patches of different keys, or increments of one key, never lose a write.
    ///
    /// With `expected`, applies only if the stored version equals it. With `touch`, also
    /// renews the idle deadline as [`SessionStore::touch`] does. The version grows by one.
    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        expected: Option<Version>,
        touch: bool,
        now: Timestamp,
    ) -> Result<Patched, StoreError>;

    /// Replaces the attributes and device of a live session if its stored version equals
    /// `expected` (compare-and-set). Id, user, creation time and deadlines are kept; the
    /// version grows by one.
    async fn replace(
        &self,
        id: &SessionId,
        attributes: &Attributes,
        device: &Device,
        expected: Version,
        now: Timestamp,
    ) -> Result<Replaced, StoreError>;

    /// Moves a live session to a new id in one step: afterwards the old id loads as `None`
    /// and the new one holds the same data (version grown by one, idle deadline renewed).
    async fn rename(&self, old: &SessionId, new: &SessionId, now: Timestamp) -> Result<Renamed, StoreError>;

    /// Deletes a session and its index entry; returns it if it was live.
    async fn delete(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// The user's live sessions, oldest first. Costs O(k) in that user's sessions, never a
    /// scan of all sessions.
    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, StoreError>;

    /// Deletes all of the user's sessions in one step; returns the ids of those that were
    /// live. O(k) in the user's sessions.
    async fn delete_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionId>, StoreError>;

    /// How many sessions are live at `now`.
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Removes up to `limit` sessions dead at `now`, with their index entries, and returns
    /// them so the manager can announce their expiry. A backend that expires records by
    /// itself returns what it learned expired since the last call. Never scans live sessions.
    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The registry of services allowed to use sessanger, persisted beside the sessions.
#[async_trait]
pub trait ServiceStore: Debug + Send + Sync + 'static {
    /// Stores a new service; `Ok(false)` and nothing written if the id is taken.
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError>;
    /// The service with this id, if any.
    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError>;
    /// Every registered service, ordered by id.
    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError>;
    /// Removes a service; `Ok(false)` if there was none.
    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError>;
}

/// A complete store: sessions and services. Implemented for every type that is both.
pub trait Backend: SessionStore + ServiceStore {}

impl<T: SessionStore + ServiceStore> Backend for T {}
