//! [`SessionManager`]: the library API over any [`Store`].

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    sync::{Notify, broadcast},
    task::JoinHandle,
};

use crate::{
    Attributes, Change, Clock, Created, DeleteReason, Device, EventLog, Limits, Page, Patch, PatchError, PatchOptions,
    Patched, Permission, Renamed, Replaced, Replacement, Retention, ServiceId, ServiceRecord, ServiceToken, Session,
    SessionEvent, SessionId, Store, StoreError, SystemClock, Timestamp, UserId, UserLimit, Version,
    audit::{self, Action},
    combine::{self, Combiner, Joined, Lane, Turn, Waiting},
};

/// How sessions live and how much they may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Idle lifetime: a session dies this long after its last refresh.
    pub idle_ttl: Duration,
    /// Absolute lifetime: no refresh keeps a session alive past `created_at + max_lifetime`.
    pub max_lifetime: Duration,
    /// Whether reads renew the idle deadline (otherwise only refreshes and writes with an
    /// explicit refresh do).
    pub refresh_on_access: bool,
    /// With `refresh_on_access`, how much of a session's idle TTL must have passed since its
    /// last renewal before a read renews it again, in percent; 0 renews at every read. A
    /// renewal is a write (which also drops every node's cached copy), so the default, 10,
    /// writes a busy session at most ten times per idle TTL, at the cost of a deadline up to a
    /// tenth of the TTL earlier than exact sliding expiry would give.
    pub refresh_threshold_percent: u8,
    /// How many sessions one user may hold.
    pub max_per_user: UserLimit,
    /// Size limits on attributes.
    pub limits: Limits,
    /// How much of its event log the store keeps; the reaper trims the rest.
    pub event_retention: Retention,
    /// Whether new session ids are [`SessionId::LONG_LEN`] characters long, as versions before
    /// the shorter ids made them, rather than [`SessionId::LEN`]: for a rolling upgrade from
    /// such a version, whose nodes refuse a shorter id as malformed. Off once every node
    /// sharing the store runs this version.
    pub long_ids: bool,
}

impl SessionPolicy {
    /// Idle TTL `idle_ttl`, absolute lifetime 30 days, no refresh on access, no per-user limit.
    pub fn new(idle_ttl: Duration) -> Self {
        SessionPolicy {
            idle_ttl,
            max_lifetime: Duration::from_secs(30 * 24 * 3600),
            refresh_on_access: false,
            refresh_threshold_percent: 10,
            max_per_user: UserLimit::Unlimited,
            limits: Limits::default(),
            event_retention: Retention::default(),
            long_ids: false,
        }
    }
}

impl Default for SessionPolicy {
    /// 30 minutes idle, 30 days absolute.
    fn default() -> Self {
        SessionPolicy::new(Duration::from_secs(30 * 60))
    }
}

/// What a new session starts with; everything is optional.
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    /// Where the session is opened from.
    pub device: Device,
    /// Initial attributes.
    pub attributes: Attributes,
    /// Idle lifetime for this session instead of the policy's (capped by the absolute lifetime).
    pub ttl: Option<Duration>,
    /// An absolute deadline before the policy's (`now + max_lifetime`); a later one is capped
    /// by it. It must be after now ([`ManagerError::DeadlinePassed`]).
    pub absolute_expires_at: Option<Timestamp>,
}

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// No live session has this id.
    #[error("session not found")]
    NotFound,
    /// The session changed since the version the caller expected.
    #[error("session version is {current:?}, not the expected one")]
    VersionMismatch {
        /// The stored version.
        current: Version,
    },
    /// A live session already has the id the caller chose.
    #[error("a live session already has this id")]
    IdTaken,
    /// The id the caller chose does not carry the user's shard tag.
    #[error("the session id does not carry the user's shard tag (use SessionId::generate_for)")]
    ForeignShard,
    /// The user already holds the most sessions the policy allows.
    #[error("the user already holds the maximum number of sessions")]
    LimitReached,
    /// A new deadline is not after now.
    #[error("the new deadline has passed already")]
    DeadlinePassed,
    /// The change is malformed or does not apply to the stored values.
    #[error(transparent)]
    InvalidPatch(#[from] PatchError),
    /// The token names no registered service, or its secret is wrong.
    #[error("invalid service credentials")]
    InvalidCredentials,
    /// A service with this id is already registered.
    #[error("service `{0}` already exists")]
    ServiceExists(ServiceId),
    /// No service with this id is registered.
    #[error("service `{0}` not found")]
    ServiceNotFound(ServiceId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a verified service stays cached: a service removed or changed through another
/// process (another node sharing the store) loses access, or has its new permissions, there
/// within this time, whatever the store. Short enough that a change takes effect everywhere
/// within a second; long enough that a
/// busy node reads each service from the store twice a second at most.
const SERVICE_CACHE_TTL: Duration = Duration::from_millis(500);

/// How many sessions one store call returns when [`SessionManager::all_user_sessions`] walks
/// a user's pages.
const PAGE_SIZE_FOR_ALL: NonZeroU32 = NonZeroU32::new(500).expect("not zero");

/// How many expired sessions one purge call removes at most; the reaper loops while full
/// batches come back, so one call never holds a store for long.
const PURGE_BATCH: usize = 1000;

/// How many events the event feed reads at a time.
const FEED_PAGE: usize = 512;

/// How often the event feed reads the log when this process changes nothing: how late
/// subscribers hear of other processes' changes.
const FEED_POLL: Duration = Duration::from_millis(500);

/// Creates, reads, changes, lists and revokes sessions, and registers the services allowed to
/// do so. Cheap to clone: clones share the store, the event channel and the service cache.
///
/// A manager acts for one service (`service_id`): sessions it creates record it as their
/// creator, and reads or changes of another service's sessions are audited. Use
/// [`SessionManager::for_service`] to act for the caller of a request.
///
/// | sa-token `DistributedSessionManager` | beego `Manager` / `Provider` | `SessionManager` |
/// |---|---|---|
/// | `new(storage, service_id, timeout)` | `NewManager` | [`new`](Self::new) |
/// | `register_service`, `verify_service` | | [`register_service`](Self::register_service), [`verify_service`](Self::verify_service) |
/// | `create_session(login_id, token)` | `SessionStart` | [`create_session`](Self::create_session) |
/// | `get_session` | `SessionRead` | [`get_session`](Self::get_session) |
/// | `update_session` | `SessionRelease` | [`update_session`](Self::update_session) (compare-and-set) |
/// | `delete_session` | `SessionDestroy` | [`delete_session`](Self::delete_session) |
/// | `set_attribute`, `get_attribute`, `remove_attribute` | `Set`, `Get`, `Delete` | same names, and [`patch_session`](Self::patch_session) |
/// | `refresh_session` | | [`refresh_session`](Self::refresh_session) |
/// | `get_sessions_by_login_id` | | [`list_user_sessions`](Self::list_user_sessions) |
/// | `delete_all_sessions` | | [`delete_user_sessions`](Self::delete_user_sessions) |
/// | | `SessionRegenerateId` | [`regenerate_id`](Self::regenerate_id) |
/// | | `GetActiveSession`, `SessionAll` | [`count_active`](Self::count_active) |
/// | | `GC`, `SessionGC` | [`purge_expired`](Self::purge_expired), [`spawn_reaper`](Self::spawn_reaper) |
///
/// # Examples
/// ```
/// use std::{sync::Arc, time::Duration};
/// use serde_json::json;
/// use sessanger_core::{NewSession, Page, SessionManager};
/// use sessanger_store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(Arc::new(MemoryStore::new()), "web".parse()?, Duration::from_secs(3600));
/// let user = "user123".parse()?;
/// let session = manager.create_session(&user, NewSession::default()).await?;
/// manager.set_attribute(&session.id, "role", json!("admin")).await?;
/// assert_eq!(manager.get_attribute(&session.id, "role").await?, Some(json!("admin")));
/// assert_eq!(manager.list_user_sessions(&user, &Page::DEFAULT).await?.len(), 1);
/// assert_eq!(manager.delete_user_sessions(&user).await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    shared: Arc<Shared>,
    service: Option<ServiceId>,
}

struct Shared {
    store: Arc<dyn Store>,
    policy: SessionPolicy,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<SessionEvent>,
    /// Whether [`SessionManager::spawn_event_feed`] feeds subscribers from the event log; the
    /// manager's own changes then only wake it (`wake_feed`).
    feeding: AtomicBool,
    wake_feed: Notify,
    // Found on every request, by an id the client names: seeded at random, as the node cache.
    services: Mutex<HashMap<ServiceId, (Arc<ServiceRecord>, Instant), foldhash::quality::RandomState>>,
    /// Secrets that verified, so most requests skip the hash.
    verified: crate::service::VerifiedSecrets,
    /// The sessions with a patch on its way to the store, and the increments waiting to be
    /// written together behind it.
    combiner: Combiner,
}

/// Held by the first writer of a lane while its write is in flight; once it is done (or the
/// writer is dropped on the way, its request timed out), hands what waited behind it to a
/// task that writes it, so those waiting never wait for nobody.
struct HandOn<'a> {
    manager: &'a SessionManager,
    lane: &'a Lane,
}

impl Drop for HandOn<'_> {
    fn drop(&mut self) {
        let waiting = self.manager.shared.combiner.next(self.lane);
        if waiting.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(self.manager.clone().drive(self.lane.clone(), waiting));
            }
            // No runtime to write them (an executor other than tokio's): each writes its own.
            Err(_) => {
                for Waiting { turn, .. } in waiting {
                    let _ = turn.send(Turn::Alone);
                }
                self.manager.shared.combiner.abandon(self.lane);
            }
        }
    }
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.shared.store)
            .field("policy", &self.shared.policy)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager acting for `service_id`, with sessions idle-expiring after `timeout`.
    pub fn new(store: Arc<dyn Store>, service_id: ServiceId, timeout: Duration) -> Self {
        Self::with_policy(store, SessionPolicy::new(timeout)).for_service(&service_id)
    }

    /// A manager acting for no particular service (the operator's own tools), with `policy`.
    pub fn with_policy(store: Arc<dyn Store>, policy: SessionPolicy) -> Self {
        SessionManager {
            shared: Arc::new(Shared {
                store,
                policy,
                clock: Arc::new(SystemClock),
                events: broadcast::channel(1024).0,
                feeding: AtomicBool::new(false),
                wake_feed: Notify::new(),
                services: Mutex::default(),
                verified: crate::service::VerifiedSecrets::default(),
                combiner: Combiner::default(),
            }),
            service: None,
        }
    }

    /// Replaces the clock (tests use a [`ManualClock`](crate::ManualClock)). Call before cloning.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let shared =
            Arc::try_unwrap(self.shared).unwrap_or_else(|_| panic!("with_clock must be called before cloning"));
        SessionManager { shared: Arc::new(Shared { clock, ..shared }), service: self.service }
    }

    /// The same manager acting for another service.
    #[must_use]
    pub fn for_service(&self, service: &ServiceId) -> Self {
        SessionManager { shared: Arc::clone(&self.shared), service: Some(service.clone()) }
    }

    /// The service this manager acts for.
    pub fn service(&self) -> Option<&ServiceId> {
        self.service.as_ref()
    }

    /// The policy sessions follow.
    pub fn policy(&self) -> &SessionPolicy {
        &self.shared.policy
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Receives every later [`SessionEvent`]: the changes this process makes, or, once
    /// [`spawn_event_feed`](Self::spawn_event_feed) runs, every event of the store's log,
    /// whichever process made the change (then also those recorded up to `FEED_POLL` before
    /// the subscription, which the feed had not read yet). A subscriber that falls more than
    /// 1024 events behind is told how many it missed (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.shared.events.subscribe()
    }

    /// The time on this manager's clock (the system's, or the one a test set): what its
    /// sessions' deadlines and events are stamped with.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// A fresh id for a session of `user`, as long as the policy says.
    fn fresh_id_for(&self, user: &UserId) -> SessionId {
        if self.shared.policy.long_ids { SessionId::generate_long_for(user) } else { SessionId::generate_for(user) }
    }

    /// A fresh id in the shard of `id`, as long as the policy says.
    fn fresh_id(&self, id: &SessionId) -> SessionId {
        if self.shared.policy.long_ids { id.regenerate_long() } else { id.regenerate() }
    }

    /// A change made now, for the service this manager acts for.
    fn change(&self) -> Change<'_> {
        Change::at(self.now()).by(self.service.as_ref())
    }

    /// The store's event log, if it keeps one ([`Maintenance::event_log`]).
    pub fn event_log(&self) -> Option<&dyn EventLog> {
        self.shared.store.event_log()
    }

    fn emit(&self, event: SessionEvent) {
        if self.shared.feeding.load(Ordering::Acquire) {
            // The feed sends it, read back from the log: told once, in the log's order. With
            // nobody to tell, its next poll is soon enough: a write costs no read of the log.
            if self.shared.events.receiver_count() > 0 {
                self.shared.wake_feed.notify_one();
            }
            return;
        }
        // No subscriber is not an error: events are best-effort notifications.
        let _ = self.shared.events.send(event);
    }

    fn audit_foreign(&self, session: &Session, action: Action) {
        if session.created_by.as_ref() != self.service.as_ref() {
            audit::record(action, self.service.as_ref(), Some(&session.id), Some(&session.user_id));
        }
    }

    /// Creates a session for `user` (sa-token's `create_session(login_id, token)`: put the
    /// token in `new.attributes`). An id collision is retried with a fresh id.
    pub async fn create_session(&self, user: &UserId, new: NewSession) -> Result<Session, ManagerError> {
        let mut session = self.new_session(self.fresh_id_for(user), user, new)?;
        for _ in 0..3 {
            match self.insert(&session).await? {
                Created::IdTaken => session.id = self.fresh_id(&session.id),
                _ => return Ok(session),
            }
        }
        Err(StoreError::Other("three fresh random ids collided: the store's create is broken".into()).into())
    }

    /// Creates a session under an id the caller chose (a web framework whose cookie already
    /// names the session, e.g. `sessanger-tower` in remote mode). The id must carry the user's
    /// shard tag ([`SessionId::generate_for`] draws such ids); a live session with the same id
    /// is never overwritten ([`ManagerError::IdTaken`]).
    pub async fn create_session_with_id(
        &self,
        id: &SessionId,
        user: &UserId,
        new: NewSession,
    ) -> Result<Session, ManagerError> {
        if id.shard_tag() != user.shard_tag() {
            return Err(ManagerError::ForeignShard);
        }
        let session = self.new_session(id.clone(), user, new)?;
        match self.insert(&session).await? {
            Created::IdTaken => Err(ManagerError::IdTaken),
            _ => Ok(session),
        }
    }

    fn new_session(&self, id: SessionId, user: &UserId, new: NewSession) -> Result<Session, ManagerError> {
        let policy = &self.shared.policy;
        policy.limits.check_attributes(&new.attributes)?;
        let now = self.now();
        let mut session = Session::new(id, user.clone(), now, new.ttl.unwrap_or(policy.idle_ttl), policy.max_lifetime);
        if let Some(at) = new.absolute_expires_at {
            if at <= now {
                return Err(ManagerError::DeadlinePassed);
            }
            session.set_absolute_expires_at(at.min(session.absolute_expires_at));
        }
        session.attributes = new.attributes;
        session.device = new.device;
        session.created_by = self.service.clone();
        Ok(session)
    }

    /// Stores a new session under the per-user limit and announces it (and any eviction).
    /// `IdTaken` is returned for the caller to decide; `LimitReached` becomes an error.
    async fn insert(&self, session: &Session) -> Result<Created, ManagerError> {
        let user = &session.user_id;
        let created = self.shared.store.create(session, self.shared.policy.max_per_user, session.created_at).await?;
        match &created {
            Created::Created { evicted } => {
                for id in evicted {
                    audit::record(Action::Delete, self.service.as_ref(), Some(id), Some(user));
                    self.emit(SessionEvent::Deleted {
                        session_id: id.clone(),
                        user_id: user.clone(),
                        reason: DeleteReason::Evicted,
                    });
                }
                audit::record(Action::Create, self.service.as_ref(), Some(&session.id), Some(user));
                self.emit(SessionEvent::Created { session_id: session.id.clone(), user_id: user.clone() });
            }
            Created::IdTaken => {}
            Created::LimitReached => return Err(ManagerError::LimitReached),
        }
        Ok(created)
    }

    /// The live session with this id. With [`SessionPolicy::refresh_on_access`], reading also
    /// renews its idle deadline (in the same store step when every read renews; otherwise by a
    /// second step when [`SessionPolicy::refresh_threshold_percent`] of the TTL has passed).
    ///
    /// The session comes shared, as the store may keep it (see [`SessionStore::load_shared`](crate::SessionStore::load_shared)):
    /// `Arc::unwrap_or_clone` gives a copy of one's own.
    pub async fn get_session(&self, id: &SessionId) -> Result<Arc<Session>, ManagerError> {
        let now = self.now();
        let store = &self.shared.store;
        let policy = &self.shared.policy;
        let found = match (policy.refresh_on_access, policy.refresh_threshold_percent) {
            (false, _) => store.load_shared(id, now).await?,
            (true, 0) => store.touch(id, now).await?.map(Arc::new),
            // Read first (from memory, on a store with a node cache); write only when due.
            (true, threshold) => match store.load_shared(id, now).await? {
                Some(session) if session.renewal_due(now, threshold) => store.touch(id, now).await?.map(Arc::new),
                read => read,
            },
        };
        let session = found.ok_or(ManagerError::NotFound)?;
        self.audit_foreign(&session, Action::ForeignRead);
        Ok(session)
    }

    /// Replaces the session's attributes and device with those of `session`, only if the
    /// stored version is still `session.version` (compare-and-set; sa-token's `update_session`).
    pub async fn update_session(&self, session: &Session) -> Result<Session, ManagerError> {
        self.replace_session(&session.id, Replacement::new(&session.attributes, &session.device, session.version)).await
    }

    /// Replaces all attributes (and the device, if `new` names one) of a session, only if it
    /// is still at version `new.expected` (compare-and-set; any version if `None`): the
    /// whole-record write of read-modify-write clients, or an overwrite in one step.
    ///
    /// A new absolute deadline ([`Replacement::absolute_expires_at`]) moves the session's end,
    /// earlier or later, but never past `created_at + max_lifetime` of the policy: no client
    /// keeps a session alive longer than the operator allows.
    ///
    /// # Errors
    /// [`ManagerError::DeadlinePassed`] for a deadline not after now (delete the session
    /// instead), and the outcomes of the compare-and-set.
    pub async fn replace_session(&self, id: &SessionId, new: Replacement<'_>) -> Result<Session, ManagerError> {
        self.shared.policy.limits.check_attributes(new.attributes)?;
        let now = self.now();
        let mut new = new;
        if let Some(at) = new.absolute_expires_at {
            if at <= now {
                return Err(ManagerError::DeadlinePassed);
            }
            // The bound needs the creation time, which never changes; the compare-and-set
            // below still guards the write against anything that changed in between.
            let current = self.shared.store.load(id, now).await?.ok_or(ManagerError::NotFound)?;
            if new.expected.is_some_and(|v| v != current.version) {
                return Err(ManagerError::VersionMismatch { current: current.version });
            }
            new.absolute_expires_at = Some(at.min(current.created_at + self.shared.policy.max_lifetime));
        }
        match self.shared.store.replace(id, new, Change::at(now).by(self.service.as_ref())).await? {
            Replaced::Applied(updated) => {
                self.audit_foreign(&updated, Action::ForeignUpdate);
                self.emit(SessionEvent::AttributesChanged {
                    session_id: updated.id.clone(),
                    user_id: updated.user_id.clone(),
                    keys: updated.attributes.keys().cloned().collect(),
                });
                Ok(updated)
            }
            Replaced::NotFound => Err(ManagerError::NotFound),
            Replaced::VersionMismatch(current) => Err(ManagerError::VersionMismatch { current }),
        }
    }

    /// Applies `patch` atomically; with `expected`, only if the session is still at that version.
    /// The write renews the idle deadline as [`SessionPolicy::refresh_on_access`] says.
    pub async fn patch_session(
        &self,
        id: &SessionId,
        patch: &Patch,
        expected: Option<Version>,
    ) -> Result<Session, ManagerError> {
        let options = PatchOptions::new().with_expected(expected).with_touch(self.shared.policy.refresh_on_access);
        self.patch_session_with(id, patch, options).await
    }

    /// Applies `patch` atomically as `options` say, whatever the policy: on which version,
    /// and whether the write renews the idle deadline (an API whose clients expect a write to
    /// count as use). The session cap is always the policy's ([`Limits::session`]).
    ///
    /// Increments alone, at any version, that arrive for a session while a patch of it is on
    /// its way to the store are written together as one patch once it returns (one round
    /// trip, one event); each caller is answered the session right after its own increment,
    /// as if they had been written one at a time (see `combine.rs`).
    pub async fn patch_session_with(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
    ) -> Result<Session, ManagerError> {
        let limits = &self.shared.policy.limits;
        patch.validate(limits)?;
        // The cap is the policy's, whatever the caller asked: no API may grow a session past it.
        let options = options.with_cap(Some(limits.session));
        let combinable = patch.set.is_empty()
            && patch.remove.is_empty()
            && !patch.incr.is_empty()
            && options.expected.is_none()
            && options.device.is_none();
        let outcome = if combinable {
            let lane = Lane { id: id.clone(), service: self.service.clone(), touch: options.touch };
            self.patch_in_lane(&lane, patch, options).await?
        } else {
            self.write_patch(id, patch, options, self.change()).await?
        };
        match outcome {
            Patched::Applied(session) => {
                self.audit_foreign(&session, Action::ForeignUpdate);
                Ok(session)
            }
            Patched::NotFound => Err(ManagerError::NotFound),
            Patched::VersionMismatch(current) => Err(ManagerError::VersionMismatch { current }),
            Patched::Rejected(e) => Err(e.into()),
        }
    }

    /// Writes `patch` and tells subscribers what it changed.
    async fn write_patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        let outcome = self.shared.store.patch(id, patch, options, change).await?;
        if let Patched::Applied(session) = &outcome {
            self.emit(SessionEvent::AttributesChanged {
                session_id: session.id.clone(),
                user_id: session.user_id.clone(),
                keys: patch.keys().map(str::to_owned).collect(),
            });
        }
        Ok(outcome)
    }

    /// Writes the increments of `patch` in `lane`: at once if no write is in flight there (and
    /// then, once it returns, whatever waited behind it, see [`Self::drive`]), otherwise with
    /// the increments waiting behind that write.
    async fn patch_in_lane(
        &self,
        lane: &Lane,
        patch: &Patch,
        options: PatchOptions<'_>,
    ) -> Result<Patched, StoreError> {
        match self.shared.combiner.join(lane, &patch.incr) {
            Joined::First => {
                // Hands the lane on whether the write returns or the caller is dropped on the
                // way (its request timed out): those waiting must never wait for nobody.
                let _lane = HandOn { manager: self, lane };
                self.write_patch(&lane.id, patch, options, self.change()).await
            }
            Joined::Queued(turn) => match turn.await {
                Ok(Turn::Done(outcome)) => outcome,
                Ok(Turn::Alone) => self.write_patch(&lane.id, patch, options, self.change()).await,
                Err(_) => Err(StoreError::Unavailable(
                    "the write carrying this increment was dropped: it may or may not have been applied".into(),
                )),
            },
        }
    }

    /// Writes `waiting`, the increments that waited in `lane`, as one patch, then those that
    /// waited behind them, until none waits.
    async fn drive(self, lane: Lane, mut waiting: Vec<Waiting>) {
        let options = PatchOptions::new().with_touch(lane.touch).with_cap(Some(self.shared.policy.limits.session));
        while !waiting.is_empty() {
            let each: Vec<_> = waiting.iter().map(|w| &w.incr).collect();
            let combined = match combine::sum(&each) {
                Some((patch, writes)) => {
                    let change = Change::at(self.now()).by(lane.service.as_ref());
                    Some(self.write_patch(&lane.id, &patch, options.with_writes(writes), change).await)
                }
                None => None,
            };
            let outcomes: Vec<Result<Patched, StoreError>> = match combined {
                Some(Ok(Patched::Applied(last))) => {
                    combine::answers(last, &each).into_iter().map(|session| Ok(Patched::Applied(session))).collect()
                }
                // One alone, not summable, or refused as a whole: one at a time, each applied or
                // refused as it would have been alone.
                Some(Ok(Patched::Rejected(_))) | None => {
                    let mut outcomes = Vec::with_capacity(each.len());
                    for incr in &each {
                        let patch = Patch { incr: (*incr).clone(), ..Patch::default() };
                        let change = Change::at(self.now()).by(lane.service.as_ref());
                        outcomes.push(self.write_patch(&lane.id, &patch, options, change).await);
                    }
                    outcomes
                }
                Some(Ok(other)) => each.iter().map(|_| Ok(other.clone())).collect(),
                Some(Err(error)) => combine::copies(error, each.len()).into_iter().map(Err).collect(),
            };
            for (Waiting { turn, .. }, outcome) in waiting.into_iter().zip(outcomes) {
                // A caller that gave up meanwhile needs no answer.
                let _ = turn.send(Turn::Done(outcome));
            }
            waiting = self.shared.combiner.next(&lane);
        }
    }

    /// Sets one attribute.
    pub async fn set_attribute(
        &self,
        id: &SessionId,
        key: impl Into<String>,
        value: Value,
    ) -> Result<Session, ManagerError> {
        self.patch_session(id, &Patch::default().set(key, value), None).await
    }

    /// One attribute's value, `None` if the session lacks it.
    pub async fn get_attribute(&self, id: &SessionId, key: &str) -> Result<Option<Value>, ManagerError> {
        Ok(self.get_session(id).await?.attributes.get(key).cloned())
    }

    /// Removes one attribute (absent keys are fine).
    pub async fn remove_attribute(&self, id: &SessionId, key: impl Into<String>) -> Result<Session, ManagerError> {
        self.patch_session(id, &Patch::default().remove(key), None).await
    }

    /// Adds `by` to an integer attribute atomically (absent counts as 0); returns the new value.
    pub async fn increment(&self, id: &SessionId, key: &str, by: i64) -> Result<i64, ManagerError> {
        let session = self.patch_session(id, &Patch::default().incr(key, by), None).await?;
        Ok(session.attributes.get(key).and_then(Value::as_i64).unwrap_or_default())
    }

    /// Renews the idle deadline, never past the absolute one.
    pub async fn refresh_session(&self, id: &SessionId) -> Result<Session, ManagerError> {
        let session = self.shared.store.refresh(id, self.change()).await?.ok_or(ManagerError::NotFound)?;
        self.emit(SessionEvent::Refreshed { session_id: session.id.clone(), user_id: session.user_id.clone() });
        Ok(session)
    }

    /// Moves the session to a fresh id (beego's `SessionRegenerateId`; do it at login against
    /// session fixation). The old id stops working at once.
    pub async fn regenerate_id(&self, id: &SessionId) -> Result<Session, ManagerError> {
        for _ in 0..3 {
            let new = self.fresh_id(id);
            match self.shared.store.rename(id, &new, self.change()).await? {
                Renamed::Renamed(session) => {
                    audit::record(Action::Regenerate, self.service.as_ref(), Some(id), Some(&session.user_id));
                    self.emit(SessionEvent::Regenerated {
                        old_session_id: id.clone(),
                        session_id: session.id.clone(),
                        user_id: session.user_id.clone(),
                    });
                    return Ok(session);
                }
                Renamed::NotFound => return Err(ManagerError::NotFound),
                Renamed::IdTaken => continue,
            }
        }
        Err(StoreError::Other("three fresh 256-bit ids collided: the store's rename is broken".into()).into())
    }

    /// Deletes one session (a logout); returns it.
    pub async fn delete_session(&self, id: &SessionId) -> Result<Session, ManagerError> {
        let deleted = self.shared.store.delete(id, DeleteReason::Logout, self.change()).await?;
        let session = deleted.ok_or(ManagerError::NotFound)?;
        audit::record(Action::Delete, self.service.as_ref(), Some(id), Some(&session.user_id));
        self.emit(SessionEvent::Deleted {
            session_id: session.id.clone(),
            user_id: session.user_id.clone(),
            reason: DeleteReason::Logout,
        });
        Ok(session)
    }

    /// One page of the user's live sessions, oldest first (sa-token's
    /// `get_sessions_by_login_id`); [`Page::next`] says where the next one starts.
    pub async fn list_user_sessions(&self, user: &UserId, page: &Page) -> Result<Vec<Session>, ManagerError> {
        Ok(self.shared.store.list_user(user, page, self.now()).await?)
    }

    /// One page of every live session, after session `after`, in the store's own stable
    /// order ([`SessionStore::scan`](crate::SessionStore::scan): for listing a whole app's
    /// sessions and for tools, not per request).
    pub async fn scan_sessions(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
    ) -> Result<Vec<Session>, ManagerError> {
        Ok(self.shared.store.scan(after, limit, self.now()).await?)
    }

    /// The users with a live session whose id starts with `prefix`, in byte order, at most
    /// `limit` ([`SessionStore::find_users`](crate::SessionStore::find_users): for operators,
    /// not per request).
    pub async fn find_users(&self, prefix: &str, limit: NonZeroU32) -> Result<Vec<UserId>, ManagerError> {
        Ok(self.shared.store.find_users(prefix, limit, self.now()).await?)
    }

    /// Every live session of the user, oldest first, read page by page: for answers that
    /// have no pages (the compat APIs, the broker protocol). The per-user limit
    /// ([`SessionPolicy::max_per_user`]) is what bounds it.
    pub async fn all_user_sessions(&self, user: &UserId) -> Result<Vec<Session>, ManagerError> {
        let mut all = Vec::new();
        let mut page = Some(Page::first(PAGE_SIZE_FOR_ALL));
        while let Some(current) = page {
            let sessions = self.list_user_sessions(user, &current).await?;
            page = current.next(&sessions);
            all.extend(sessions);
        }
        Ok(all)
    }

    /// Deletes every session of the user ("sign out everywhere", sa-token's
    /// `delete_all_sessions`); returns how many were live.
    pub async fn delete_user_sessions(&self, user: &UserId) -> Result<u64, ManagerError> {
        let ids = self.shared.store.delete_user(user, self.change()).await?;
        audit::record(Action::Revoke, self.service.as_ref(), None, Some(user));
        let count = ids.len() as u64;
        for id in ids {
            self.emit(SessionEvent::Deleted { session_id: id, user_id: user.clone(), reason: DeleteReason::Revoked });
        }
        Ok(count)
    }

    /// How many sessions are live (beego's `GetActiveSession`).
    pub async fn count_active(&self) -> Result<u64, ManagerError> {
        Ok(self.shared.store.count_active(self.now()).await?)
    }

    /// Removes every expired session now and announces each as [`SessionEvent::Expired`]
    /// (beego's `GC`); returns how many were removed.
    pub async fn purge_expired(&self) -> Result<usize, ManagerError> {
        let mut total = 0;
        loop {
            let batch = self.shared.store.delete_expired(self.now(), PURGE_BATCH).await?;
            total += batch.len();
            let full = batch.len() >= PURGE_BATCH;
            for gone in batch {
                self.emit(SessionEvent::Expired { session_id: gone.id, user_id: gone.user_id });
            }
            if !full {
                return Ok(total);
            }
        }
    }

    /// Purges expired sessions, and trims the event log to [`SessionPolicy::event_retention`],
    /// every `interval` in the background until the returned guard is dropped. Store errors
    /// are logged and retried at the next tick.
    pub fn spawn_reaper(&self, interval: Duration) -> Background {
        let manager = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = manager.purge_expired().await {
                    tracing::warn!(%error, "purging expired sessions failed; retrying at the next tick");
                }
                if let Some(log) = manager.event_log()
                    && let Err(error) = log.trim_events(&manager.shared.policy.event_retention, manager.now()).await
                {
                    tracing::warn!(%error, "trimming the event log failed; retrying at the next tick");
                }
            }
        });
        Background::new(task)
    }

    /// Feeds [`subscribe`](Self::subscribe)rs from the store's event log, in the background
    /// until the returned guard is dropped: they then receive every event of the log, each
    /// once, in the log's order, whichever process sharing the store made the change (and an
    /// expiry once, whichever node's reaper removed the session), instead of this process's
    /// own changes only. The feed starts with what happens next; it reads the log as soon as
    /// this process changes something, and every `FEED_POLL` for the others' changes; while no
    /// one subscribes, it only follows the log's last id (so subscribers get what is recorded
    /// from up to `FEED_POLL` before they subscribe on). `None`,
    /// and subscribers keep receiving this process's changes, if the store keeps no log.
    ///
    /// Start it before serving: a change made while it starts may reach subscribers twice.
    pub async fn spawn_event_feed(&self) -> Result<Option<Background>, StoreError> {
        let Some(log) = self.event_log() else { return Ok(None) };
        let mut cursor = log.last_event_id().await?;
        self.shared.feeding.store(true, Ordering::Release);
        let manager = self.clone();
        let task = tokio::spawn(async move {
            let shared = &manager.shared;
            let log = manager.event_log().expect("checked above");
            loop {
                // Nobody listens here: keep the place, not the events. Reading every event on
                // every node would cost the store the whole log once per node.
                if shared.events.receiver_count() == 0 {
                    match log.last_event_id().await {
                        Ok(last) => cursor = last.or(cursor),
                        Err(error) => tracing::warn!(%error, "reading the event log failed; retrying"),
                    }
                    let _ = tokio::time::timeout(FEED_POLL, shared.wake_feed.notified()).await;
                    continue;
                }
                match log.read_events(cursor, FEED_PAGE).await {
                    Ok(page) if !page.is_empty() => {
                        for record in page {
                            cursor = Some(record.id);
                            let _ = shared.events.send(record.event);
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reading the event log failed; retrying"),
                }
                let _ = tokio::time::timeout(FEED_POLL, shared.wake_feed.notified()).await;
            }
        });
        Ok(Some(Background { task, feeding: Some(Arc::clone(&self.shared)) }))
    }

    /// Registers a service and returns its record and its token. The token is the only copy
    /// of the secret: show it once.
    pub async fn register_service(
        &self,
        id: ServiceId,
        name: impl Into<String>,
        permissions: Vec<Permission>,
    ) -> Result<(ServiceRecord, ServiceToken), ManagerError> {
        let (record, token) = ServiceRecord::issue(id, name, canonical(permissions), self.now());
        if !self.shared.store.create_service(&record).await? {
            return Err(ManagerError::ServiceExists(record.id));
        }
        audit::record_service(Action::ServiceRegister, self.service.as_ref(), &record.id, &record.permissions);
        Ok((record, token))
    }

    /// The service the token belongs to, if the secret is right. Checks in constant time;
    /// answers from a short-lived cache so a request costs no store round trip (or from the
    /// store's own coherent cache, if it keeps one: [`ServiceStore::caches_services`](crate::ServiceStore::caches_services)).
    pub async fn verify_service(&self, token: &ServiceToken) -> Result<Arc<ServiceRecord>, ManagerError> {
        match self.registered_service(token.service()).await? {
            Some(record) if self.shared.verified.verify(&record, token) => Ok(record),
            _ => Err(ManagerError::InvalidCredentials),
        }
    }

    /// Service `id`, if it is registered, as [`verify_service`](Self::verify_service) finds it:
    /// from the store's coherent cache or this manager's short-lived copy. For a caller that
    /// verified the service's token before and checks, request after request, that the
    /// service is still there (the admin console's signed-in operator).
    pub async fn registered_service(&self, id: &ServiceId) -> Result<Option<Arc<ServiceRecord>>, ManagerError> {
        Ok(if self.shared.store.caches_services() {
            self.shared.store.load_service_shared(id).await?
        } else {
            self.cached_service(id).await?
        })
    }

    /// Service `id` from this manager's short-lived copy, or from the store (then copied).
    async fn cached_service(&self, id: &ServiceId) -> Result<Option<Arc<ServiceRecord>>, StoreError> {
        let cached = {
            let cache = self.shared.services.lock().expect("service cache poisoned");
            cache.get(id).filter(|(_, at)| at.elapsed() < SERVICE_CACHE_TTL).map(|(r, _)| r.clone())
        };
        if cached.is_some() {
            return Ok(cached);
        }
        let record = self.shared.store.load_service_shared(id).await?;
        if let Some(record) = &record {
            let mut cache = self.shared.services.lock().expect("service cache poisoned");
            cache.insert(record.id.clone(), (record.clone(), Instant::now()));
        }
        Ok(record)
    }

    /// One page of the registered services, ordered by id: those after `after`, at most
    /// `limit`.
    pub async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, ManagerError> {
        Ok(self.shared.store.list_services(after, limit).await?)
    }

    /// Forgets the cached copy of every service the store announces as changed or removed (by
    /// any process that shares it), so a removed service's token stops working here, and a
    /// change of its permissions applies, at once rather than when the copy runs out. Runs until the returned guard is dropped; a store that announces nothing
    /// leaves the cache lifetime as the bound.
    ///
    /// # Errors
    /// When the store cannot start watching.
    pub async fn spawn_service_watch(&self) -> Result<Background, ManagerError> {
        let changes = self.shared.store.watch_service_changes().await?;
        let shared = Arc::downgrade(&self.shared);
        Ok(Background::new(tokio::spawn(async move {
            let Some(mut changes) = changes else { return };
            while let Some(id) = changes.recv().await {
                let Some(shared) = shared.upgrade() else { return };
                shared.services.lock().expect("service cache lock").remove(&id);
            }
        })))
    }

    /// Replaces what service `id` may do, and returns its record as it is now; its token keeps
    /// working. Applies at once in this process, and in the others as
    /// [`spawn_service_watch`](Self::spawn_service_watch) says.
    pub async fn change_service_permissions(
        &self,
        id: &ServiceId,
        permissions: Vec<Permission>,
    ) -> Result<ServiceRecord, ManagerError> {
        let Some(mut record) = self.shared.store.load_service(id).await? else {
            return Err(ManagerError::ServiceNotFound(id.clone()));
        };
        record.permissions = canonical(permissions);
        // Nothing else writes a record but with its permissions: two changes racing leave the
        // last one, as two `PUT`s would; one racing a removal leaves the service removed.
        if !self.shared.store.update_service(&record).await? {
            return Err(ManagerError::ServiceNotFound(id.clone()));
        }
        self.forget_service(id);
        audit::record_service(Action::ServiceUpdate, self.service.as_ref(), id, &record.permissions);
        Ok(record)
    }

    /// Removes a service; its token stops working at once in this process.
    pub async fn remove_service(&self, id: &ServiceId) -> Result<(), ManagerError> {
        if !self.shared.store.delete_service(id).await? {
            return Err(ManagerError::ServiceNotFound(id.clone()));
        }
        self.forget_service(id);
        audit::record_service(Action::ServiceRemove, self.service.as_ref(), id, &[]);
        Ok(())
    }

    /// Drops this manager's copy of service `id`: its next request reads the store's.
    fn forget_service(&self, id: &ServiceId) {
        self.shared.services.lock().expect("service cache poisoned").remove(id);
    }
}

/// Permissions as a service record keeps them: each once, in [`Permission::ALL`]'s order.
fn canonical(mut permissions: Vec<Permission>) -> Vec<Permission> {
    permissions.sort_unstable();
    permissions.dedup();
    permissions
}

/// Stops a manager's background task ([`SessionManager::spawn_reaper`],
/// [`SessionManager::spawn_service_watch`], [`SessionManager::spawn_event_feed`]) when
/// dropped.
pub struct Background {
    task: JoinHandle<()>,
    /// For the event feed: the manager whose subscribers go back to its own changes.
    feeding: Option<Arc<Shared>>,
}

impl Background {
    fn new(task: JoinHandle<()>) -> Self {
        Background { task, feeding: None }
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background").field("task", &self.task).field("feed", &self.feeding.is_some()).finish()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(shared) = &self.feeding {
            shared.feeding.store(false, Ordering::Release);
        }
    }
}
