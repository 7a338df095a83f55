//! The contract every session store keeps.
//!
//! A store is a [`SessionStore`] (sessions and the per-user index), a [`ServiceStore`] (the
//! service registry) and a [`Maintenance`] (what the reaper and health checks need);
//! [`Store`] names all three. Each method is **one atomic step** in the database — one
//! transaction, one script or one statement — so the manager never reads, changes and writes
//! back a session itself, and concurrent writers never lose updates.
//!
//! # Errors
//! Every method fails the same ways, so each method's `# Errors` names only what it adds:
//! [`StoreError::Unavailable`] when the database cannot be reached (retrying later may
//! succeed), [`StoreError::Decode`] when a stored record is one this version cannot read,
//! [`StoreError::Encode`] when a record cannot be written in the store's format, and
//! [`StoreError::Other`] for any other failure of the database. An outcome the caller must
//! act on (an id taken, a version that moved on) is never an error: it is a variant of the
//! method's outcome enum.
//!
//! `sessanger-store-memory` is the reference implementation (one page), and
//! `sessanger-testkit` checks every sentence of this contract against any store.
//!
//! Time is passed in as `now` (in a [`Change`] for the methods that change sessions): a store
//! never reads a clock, so expiry is tested by moving a [`ManualClock`](crate::ManualClock).
//!
//! # Events
//! A store with an event log ([`Maintenance::event_log`]) records every change it makes as an
//! [`EventRecord`] **in the same atomic step**: `create` a `created` event (and a `deleted`
//! one, reason `evicted`, per session it evicts), `refresh` `refreshed`, `patch` and `replace`
//! `attributes_changed`, `rename` `regenerated`, `delete` and `delete_user` `deleted` with the
//! caller's reason, `delete_expired` `expired`. A step that changes nothing (an unknown id, a
//! version that moved on, a refused patch) records nothing; reads and `touch` record nothing.

use std::{fmt::Debug, num::NonZeroU32, sync::Arc};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{
    Attributes, DeleteReason, Device, EventId, EventRecord, Patch, PatchError, Retention, ServiceId, ServiceRecord,
    Session, SessionCap, SessionId, Timestamp, UserId, Version,
};

/// A boxed error from a database or driver, kept as the source of a [`StoreError`].
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
    /// The database cannot be reached now; retrying later may succeed.
    #[error("session store unavailable")]
    Unavailable(#[source] BoxError),
    /// The database failed in another way.
    #[error("session store failed")]
    Other(#[source] BoxError),
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

/// How [`SessionStore::patch`] applies a patch.
///
/// # Examples
/// ```
/// use sessanger_core::{PatchOptions, Version};
///
/// // Only if nobody wrote since version 3 was read, and count the write as access.
/// let options = PatchOptions::new().with_expected(Some(Version(3))).with_touch(true);
/// assert_eq!(options.expected, Some(Version(3)));
/// ```
// Not `non_exhaustive`, as `Replacement`: a store destructures it whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchOptions<'a> {
    /// Apply only if the stored version equals this one (compare-and-set); `None` applies
    /// whatever the version.
    pub expected: Option<Version>,
    /// Also renew the idle deadline, as [`SessionStore::touch`] does.
    pub touch: bool,
    /// Refuse the patch if it sets or increments anything and the session would then break
    /// this cap ([`Session::apply`]); `None` applies whatever the size.
    pub cap: Option<SessionCap>,
    /// Device fields to change in the same step: each one this device has (`Some`) replaces
    /// the stored one, the others stay ([`Device::merge`]).
    pub device: Option<&'a Device>,
    /// How many writes the patch carries: the version grows by this many, as it would have
    /// by writing them one at a time. More than one when the manager combined the
    /// concurrent increments of one session into one patch
    /// ([`SessionManager::patch_session`](crate::SessionManager::patch_session)).
    pub writes: NonZeroU32,
}

impl Default for PatchOptions<'_> {
    fn default() -> Self {
        PatchOptions { expected: None, touch: false, cap: None, device: None, writes: NonZeroU32::MIN }
    }
}

impl<'a> PatchOptions<'a> {
    /// Apply at any version, without renewing the idle deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply only at version `expected` (`None`: at any version).
    #[must_use]
    pub fn with_expected(mut self, expected: Option<Version>) -> Self {
        self.expected = expected;
        self
    }

    /// Whether the write also renews the idle deadline.
    #[must_use]
    pub fn with_touch(mut self, touch: bool) -> Self {
        self.touch = touch;
        self
    }

    /// Refuse the patch if the session would break `cap`.
    #[must_use]
    pub fn with_cap(mut self, cap: Option<SessionCap>) -> Self {
        self.cap = cap;
        self
    }

    /// Also change the device fields `device` has.
    #[must_use]
    pub fn with_device(mut self, device: Option<&'a Device>) -> Self {
        self.device = device;
        self
    }

    /// The patch carries `writes` writes (see [`PatchOptions::writes`]).
    #[must_use]
    pub fn with_writes(mut self, writes: NonZeroU32) -> Self {
        self.writes = writes;
        self
    }
}

impl Session {
    /// Applies `patch` as `options` say — version check, [`Session::apply`] with the cap, the
    /// device fields, and touch — for a store that changes a record it read in one transaction: the outcome to
    /// return, with the session changed only when it is [`Patched::Applied`].
    pub fn patched(&mut self, patch: &Patch, options: PatchOptions<'_>, now: Timestamp) -> Patched {
        if options.expected.is_some_and(|v| v != self.version) {
            return Patched::VersionMismatch(self.version);
        }
        let version = self.version;
        if let Err(rejected) = self.apply(patch, options.cap) {
            return Patched::Rejected(rejected);
        }
        self.version = version.advanced(options.writes);
        if let Some(device) = options.device {
            self.device.merge(device);
        }
        if options.touch {
            self.touch(now);
        }
        Patched::Applied(self.clone())
    }
}

/// What [`SessionStore::replace`] writes: a session's new attributes, optionally its device
/// and a new absolute deadline, and the version they may replace.
///
/// # Examples
/// ```
/// use sessanger_core::{Attributes, Device, Replacement, Timestamp, Version};
///
/// let (attributes, device) = (Attributes::new(), Device::default());
/// let new = Replacement::new(&attributes, &device, Version(4))
///     .with_absolute_expires_at(Some(Timestamp::from_millis(1_000_000)));
/// assert_eq!(new.expected, Some(Version(4)));
/// // The attributes alone, whatever the version: the device stays.
/// assert_eq!(Replacement::attributes(&attributes).device, None);
/// ```
// Not `non_exhaustive`: every store destructures it whole, so a new field cannot be
// ignored by one of them without the compiler saying so.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Replacement<'a> {
    /// The attributes, all of them.
    pub attributes: &'a Attributes,
    /// The device; `None` keeps the stored one.
    pub device: Option<&'a Device>,
    /// Write only if the stored version is this one (compare-and-set); `None` writes
    /// whatever the version.
    pub expected: Option<Version>,
    /// The session's new absolute deadline, earlier or later than the stored one; `None`
    /// keeps it. The session then dies at the earlier of its idle deadline
    /// (`last_access_at + idle_ttl`) and this one, and no refresh passes it. Callers pass a
    /// time after `now`.
    pub absolute_expires_at: Option<Timestamp>,
}

impl<'a> Replacement<'a> {
    /// Replace attributes and device at version `expected`, keeping the deadlines.
    pub fn new(attributes: &'a Attributes, device: &'a Device, expected: Version) -> Self {
        Replacement { attributes, device: Some(device), expected: Some(expected), absolute_expires_at: None }
    }

    /// Replace the attributes alone, whatever the version, keeping device and deadlines.
    pub fn attributes(attributes: &'a Attributes) -> Self {
        Replacement { attributes, device: None, expected: None, absolute_expires_at: None }
    }

    /// Also move the absolute deadline to `at` (`None`: keep it).
    #[must_use]
    pub fn with_absolute_expires_at(mut self, at: Option<Timestamp>) -> Self {
        self.absolute_expires_at = at;
        self
    }
}

/// Where a session stands in its user's listing, which is ordered by creation time, then id:
/// a page starts after the last session of the page before.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The session's creation time.
    pub created_at: Timestamp,
    /// Its id, which orders sessions created in the same millisecond.
    pub id: SessionId,
}

impl Position {
    /// Where `session` stands.
    pub fn of(session: &Session) -> Self {
        Position { created_at: session.created_at, id: session.id.clone() }
    }
}

/// A position as an API cursor: `<created_at ms>.<id>`. Clients treat it as opaque text.
///
/// # Examples
/// ```
/// use sessanger_core::{Position, SessionId, Timestamp};
///
/// let position = Position { created_at: Timestamp::from_millis(42), id: SessionId::generate() };
/// let cursor = position.to_string();
/// assert_eq!(cursor.parse::<Position>(), Ok(position));
/// assert!("42".parse::<Position>().is_err());
/// ```
impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_at.as_millis(), self.id)
    }
}

/// Why a cursor was refused: it is not one this server handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor this server handed out")]
pub struct MalformedCursor;

impl std::str::FromStr for Position {
    type Err = MalformedCursor;

    fn from_str(text: &str) -> Result<Self, MalformedCursor> {
        let (millis, id) = text.split_once('.').ok_or(MalformedCursor)?;
        Ok(Position {
            created_at: Timestamp::from_millis(millis.parse().map_err(|_| MalformedCursor)?),
            id: id.parse().map_err(|_| MalformedCursor)?,
        })
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One page of a user's sessions: those after `after` (from the first if `None`), at most
/// `limit` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The position of the last session of the page before.
    pub after: Option<Position>,
    /// The most sessions the page holds.
    pub limit: NonZeroU32,
}

impl Page {
    /// The first `limit` sessions.
    pub fn first(limit: NonZeroU32) -> Self {
        Page { after: None, limit }
    }

    /// The page's limit as a count.
    pub fn size(&self) -> usize {
        self.limit.get() as usize
    }

    /// The first [`Page::DEFAULT_LIMIT`] sessions.
    pub const DEFAULT: Page = Page { after: None, limit: Page::DEFAULT_LIMIT };

    /// How many sessions a page holds unless asked otherwise.
    pub const DEFAULT_LIMIT: NonZeroU32 = NonZeroU32::new(100).expect("not zero");

    /// The most sessions a page may hold.
    pub const MAX_LIMIT: NonZeroU32 = NonZeroU32::new(1000).expect("not zero");

    /// Where the page after `sessions` (this page's) starts; `None` when this one was not
    /// full, so there is nothing after it.
    pub fn next(&self, sessions: &[Session]) -> Option<Page> {
        let last = Page::continues_after(sessions, self.limit)?;
        Some(Page { after: Some(Position::of(last)), limit: self.limit })
    }

    /// The item a listing's next page starts after: the last of `page` if it holds `limit`
    /// items, `None` if it holds fewer (it was the last page). The one rule of every paged
    /// listing, sessions and services alike.
    pub fn continues_after<T>(page: &[T], limit: NonZeroU32) -> Option<&T> {
        page.last().filter(|_| page.len() >= limit.get() as usize)
    }
}

/// When, and for which service, a store changes sessions: what the change's event records.
///
/// # Examples
/// ```
/// use sessanger_core::{Change, ServiceId, Timestamp};
///
/// let billing: ServiceId = "billing".parse().unwrap();
/// let change = Change::at(Timestamp::from_millis(1_000)).by(Some(&billing));
/// assert_eq!(change.service, Some(&billing));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// The time of the change.
    pub now: Timestamp,
    /// The service making it; `None` for the operator's own tools.
    pub service: Option<&'a ServiceId>,
}

impl<'a> Change<'a> {
    /// A change at `now` by no particular service.
    pub fn at(now: Timestamp) -> Change<'a> {
        Change { now, service: None }
    }

    /// The same change, made by `service`.
    #[must_use]
    pub fn by(self, service: Option<&'a ServiceId>) -> Change<'a> {
        Change { service, ..self }
    }
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
/// Every method is one atomic step in the database. A session whose `expires_at <= now` is
/// dead: no method returns it, counts it or lets it be changed, whether or not the store
/// has purged it yet.
///
/// Callers keep one precondition: a session's id carries its user's shard tag
/// ([`SessionId::generate_for`]), and a new id given to [`SessionStore::rename`] carries the
/// old one's ([`SessionId::regenerate`]). A store may rely on it to place all of a user's
/// sessions and index entries together.
#[async_trait]
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Stores a new session and adds it to its user's index; its event names the session's
    /// `created_by` as the acting service.
    ///
    /// Never overwrites: if a live session has the same id, nothing is written and
    /// [`Created::IdTaken`] is returned (the manager retries with a fresh id). The
    /// `limit` is enforced in the same atomic step, so a user never holds more sessions
    /// than it allows, even for an instant.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError>;

    /// The live session with this id; `Ok(None)` for an unknown or expired id (absence is
    /// not an error). Loading does not count as access.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// [`load`](Self::load), shared: a store that keeps sessions in memory (the memory store,
    /// a node cache) hands out its own copy instead of cloning it. Cloning a session costs an
    /// allocation per string and attribute, a tenth of a read served from memory (callgrind);
    /// a reader that only looks at the session, or writes it out, needs no copy of its own.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn load_shared(&self, id: &SessionId, now: Timestamp) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.load(id, now).await?.map(Arc::new))
    }

    /// Loads the live session and renews its idle deadline from `now` (never past its
    /// absolute deadline) in one step. The version is unchanged: access is not a write, and
    /// records no event.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// [`SessionStore::touch`] asked for by name (a client renewing its session), which
    /// records a `refreshed` event.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError>;

    /// Sets, removes and increments attributes in one atomic step, as
    /// [`Session::apply`] defines; keys the patch does not name are never touched, so
    /// concurrent patches of different keys, or increments of one key, never lose a write.
    ///
    /// `options` says on which version to apply ([`PatchOptions::expected`]), whether
    /// to renew the idle deadline ([`PatchOptions::touch`]), how large the session may
    /// grow ([`PatchOptions::cap`], checked on the result in the same step) and which device
    /// fields change with the attributes ([`PatchOptions::device`]). The version grows by one.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)); a patch that cannot
    /// apply to the stored values is [`Patched::Rejected`], not an error.
    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError>;

    /// Replaces the attributes (and the device, if [`Replacement::device`] names one) of a
    /// live session with `new`'s if its stored version equals [`Replacement::expected`]
    /// (compare-and-set; any version if `None`), and moves its absolute deadline if
    /// [`Replacement::absolute_expires_at`] says so (the idle deadline is then capped by it, as
    /// [`Session::set_absolute_expires_at`] does). Id, user, creation time and last access are
    /// kept; the version grows by one.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError>;

    /// Moves a live session to a new id in one step: afterwards the old id loads as `None`
    /// and the new one holds the same data (version grown by one, idle deadline renewed).
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)); a store that places a
    /// user's keys by the id's shard tag refuses a `new` id with another tag as
    /// [`StoreError::Other`].
    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError>;

    /// Deletes a session and its index entry; returns it if it was live. Its event carries
    /// `reason`.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError>;

    /// One page of the user's live sessions, ordered by creation time then id (oldest
    /// first): those after [`Page::after`], at most [`Page::limit`]. Costs O(page) (plus the
    /// dead sessions skipped on the way), never a scan of the user's other sessions or of all
    /// sessions; a session created or deleted meanwhile never shifts the pages around it.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError>;

    /// Deletes all of the user's sessions in one step; returns the ids of those that were
    /// live (their events: `deleted`, reason `revoked`). O(k) in the user's sessions.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError>;

    /// The users with a live session whose id starts with `prefix` (compared byte by byte, as
    /// typed), in byte order, at most `limit`. For operators looking a user up, not for
    /// requests: where user ids are indexed in order (SQL, embedded, MongoDB) it reads the
    /// matching range only; Redis and the memory store visit every live session.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError>;

    /// One page of every live session: those after session `after` (from the first for
    /// `None`) in an order of the store's own that stays put, at most `limit`. Paging through
    /// returns each session live all along once; one created or deleted meanwhile never makes
    /// another repeat or go missing. For moving and backing up a store (`sessanger export`),
    /// not for requests: a page costs O(page) (on Redis, plus a read of the live entries of the
    /// shards it visits).
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError>;
}

/// What keeps a store healthy rather than serving requests: the reaper's sweep, the count
/// of live sessions, and the readiness check (like tower-sessions' `ExpiredDeletion`).
#[async_trait]
pub trait Maintenance: Debug + Send + Sync + 'static {
    /// How many sessions are live at `now`.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Removes up to `limit` sessions dead at `now`, with their index entries, and returns
    /// them so the manager can announce their expiry. A database that expires records by
    /// itself returns what it learned expired since the last call. Never scans live sessions.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError>;

    /// Checks that the database answers. The default answers at once: right for a store
    /// that lives in the process (memory, embedded); a store across a network overrides it
    /// with a round trip.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database does not answer.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The store's event log, if it keeps one (see the [module docs](self)); `None`, the
    /// default, for a store that records no events yet.
    fn event_log(&self) -> Option<&dyn EventLog> {
        None
    }

    /// What the store's node cache did since it started, if the store keeps one (the Redis
    /// store's, read by `/metrics`); `None`, the default, for a store that keeps none.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
}

/// The counters and size of a store's node cache: sessions and the service registry apart,
/// since every request reads a service and would drown the sessions' hit ratio.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub sessions: CacheCounts,
    pub services: CacheCounts,
    /// Times the whole cache was dropped because its invalidations may have been lost (the
    /// channel that carries them broke or went silent): reads go to the database until it
    /// answers again.
    pub drops: u64,
}

/// One kind of entry of a node cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that went to the database: nothing held, or nothing that could be served then.
    pub misses: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now, about (the records as the database sent them, plus bookkeeping).
    pub bytes: u64,
}

/// A store's log of the events it recorded, oldest first, kept as [`Retention`] says.
#[async_trait]
pub trait EventLog: Debug + Send + Sync + 'static {
    /// The events recorded after `after` (from the oldest kept if `None`), oldest first, at
    /// most `limit`. Events that were trimmed are simply absent: compare the first id with
    /// `after` to see whether any were missed.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<EventRecord>, StoreError>;

    /// The id of the newest event recorded, `None` before the first: where a consumer that
    /// wants only what happens next starts.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn last_event_id(&self) -> Result<Option<EventId>, StoreError>;

    /// The newest id trimming ever dropped, `None` if it never dropped one: a consumer that
    /// resumes after an id older than this missed events (ids may skip without that).
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn trimmed_through(&self) -> Result<Option<EventId>, StoreError>;

    /// Claims relay `name` (a process that forwards the log elsewhere, one at a time per
    /// log) for `holder` until `until`, if nobody holds it, its lease ran out by `now`, or
    /// `holder` holds it already; the answer says where the relay stands.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<RelayClaim, StoreError>;

    /// Records that relay `name` forwarded every event up to `position`, and extends its lease
    /// to `until`, if `holder` still holds it; `false` (and nothing written) if another holder
    /// claimed it meanwhile.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        position: Option<EventId>,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Drops the events `retention` no longer keeps at `now`; returns how many.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn trim_events(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError>;
}

/// The ids of services changed or removed, as a store announces them
/// ([`ServiceStore::watch_service_changes`]).
pub type ServiceChanges = mpsc::Receiver<ServiceId>;

/// The registry of services allowed to use sessanger, persisted beside the sessions.
#[async_trait]
pub trait ServiceStore: Debug + Send + Sync + 'static {
    /// Stores a new service; `Ok(false)` and nothing written if the id is taken.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError>;
    /// The service with this id, if any.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError>;
    /// [`load_service`](ServiceStore::load_service), shared: a store that keeps services in
    /// memory hands out its own copy (every request checks its caller's service).
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn load_service_shared(&self, id: &ServiceId) -> Result<Option<Arc<ServiceRecord>>, StoreError> {
        Ok(self.load_service(id).await?.map(Arc::new))
    }
    /// One page of the registered services, ordered by id: those after `after` (from the
    /// first if `None`), at most `limit`. Costs O(page).
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError>;
    /// Replaces the stored record of `service.id` (its name, permissions, secret) with
    /// `service`; `Ok(false)` and nothing written if there is none: a service removed
    /// meanwhile stays removed. A store that announces changes
    /// ([`ServiceStore::watch_service_changes`]) announces this one.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError>;
    /// Removes a service; `Ok(false)` if there was none. A store that announces changes
    /// ([`ServiceStore::watch_service_changes`]) announces this one.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError>;

    /// Whether [`load_service`](ServiceStore::load_service) answers from a copy in this
    /// process that the database keeps coherent (the Redis store's node cache): a change made
    /// anywhere reaches it as soon as the database announces it, so callers keep no copy of
    /// their own. `false`, the default: callers may cache, and bound staleness themselves.
    fn caches_services(&self) -> bool {
        false
    }

    /// The ids of services changed or removed by any process sharing this database, as the
    /// database announces them (Redis publish/subscribe, PostgreSQL `LISTEN`), for as long as
    /// the receiver lives; the store re-subscribes by itself after a lost connection. `None`,
    /// the default, for a store that announces nothing: other processes then learn of a change
    /// when their cached copy of the service runs out.
    ///
    /// # Errors
    /// Only the store's own failures (see the [module docs](self)).
    async fn watch_service_changes(&self) -> Result<Option<ServiceChanges>, StoreError> {
        Ok(None)
    }
}

/// Where a consumer of an event log starts, and what it missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The position to read after (`None`: from the oldest event kept).
    pub cursor: Option<EventId>,
    /// `(after, trimmed_through)` when trimming dropped events after the consumer's `after`
    /// that it had not seen.
    pub lost: Option<(EventId, EventId)>,
}

impl Resume {
    /// Where a consumer that last saw `after` starts in `log`: right after it; from the
    /// oldest event kept for `EventId(0)`; with what happens next for `None`. The one rule of
    /// every consumer (the event stream, `events tail`).
    ///
    /// # Errors
    /// The log's own failures.
    pub async fn from(log: &dyn EventLog, after: Option<EventId>) -> Result<Resume, StoreError> {
        let cursor = match after {
            Some(EventId(0)) => None,
            Some(after) => Some(after),
            None => log.last_event_id().await?,
        };
        let lost = match (after, log.trimmed_through().await?) {
            (Some(after), Some(trimmed)) if after < trimmed => Some((after, trimmed)),
            _ => None,
        };
        Ok(Resume { cursor, lost })
    }
}

/// What [`EventLog::claim_relay`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayClaim {
    /// The caller holds the relay; it has forwarded every event up to `position` (`None`:
    /// none yet, so it starts with the oldest event the log keeps).
    Held {
        /// The last event forwarded.
        position: Option<EventId>,
    },
    /// Another holder's lease runs until `until`.
    Busy {
        /// When the other lease runs out.
        until: Timestamp,
    },
}

/// A relay's record in the store: who holds it until when, and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayState {
    /// The holder.
    pub holder: String,
    /// When the holder's lease runs out.
    pub until: Timestamp,
    /// The last event forwarded.
    pub position: Option<EventId>,
}

impl RelayState {
    /// The claim of `holder` on this state (`None`: the relay never ran) at `now`, and the
    /// state to store if the claim succeeds; the one rule of every store.
    pub fn claim(
        current: Option<RelayState>,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> (RelayClaim, Option<RelayState>) {
        match current {
            Some(state) if state.holder != holder && state.until > now => {
                (RelayClaim::Busy { until: state.until }, None)
            }
            current => {
                let position = current.and_then(|state| state.position);
                (RelayClaim::Held { position }, Some(RelayState { holder: holder.to_owned(), until, position }))
            }
        }
    }
}

/// A complete store: sessions, services and maintenance. Implemented for every type that is
/// all three; the binary picks one at run time as `Arc<dyn Store>`.
pub trait Store: SessionStore + ServiceStore + Maintenance {}

impl<T: SessionStore + ServiceStore + Maintenance> Store for T {}
