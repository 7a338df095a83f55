//! `MemoryStore`: sessions in a map, for tests, development and single-process deployments.
//!
//! It is the reference implementation of [`SessionStore`]: every operation runs under one
//! mutex, so each is atomic by construction, its event recorded in the same critical section.
//! Expiry needs no scan: an ordered set of `(expires_at, id)` yields the due sessions first,
//! as mini-redis does.
//!
//! # Examples
//! ```
//! use std::sync::Arc;
//! use sessanger_core::{SessionManager, SessionPolicy};
//! use sessanger_store_memory::MemoryStore;
//!
//! let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    num::NonZeroU32,
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use sessanger_core::{
    Change, Created, DeleteReason, EventId, EventLog, EventRecord, Maintenance, Page, Patch, PatchOptions, Patched,
    RelayClaim, RelayState, Renamed, Replaced, Replacement, Retention, ServiceId, ServiceRecord, ServiceStore, Session,
    SessionEvent, SessionId, SessionRef, SessionStore, StoreError, Timestamp, UserId, UserLimit,
};

/// Sessions and services in process memory; gone when the process ends.
#[derive(Debug)]
pub struct MemoryStore {
    // A std mutex, not tokio's: no critical section awaits, and each is a few map operations.
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

#[derive(Debug, Default)]
struct Inner {
    // Shared, so a read hands out the stored session itself (`load_shared`) rather than a copy.
    sessions: HashMap<SessionId, Arc<Session>>,
    by_user: HashMap<UserId, BTreeSet<(Timestamp, SessionId)>>,
    by_expiry: BTreeSet<(Timestamp, SessionId)>,
    services: BTreeMap<ServiceId, ServiceRecord>,
    /// The event log, oldest first; ids are consecutive from the front's.
    events: VecDeque<EventRecord>,
    last_event: u64,
    trimmed_through: Option<EventId>,
    relays: HashMap<String, RelayState>,
    /// The most events the log holds: bounded as it grows, not only when trimmed, so a store
    /// without a reaper (a test, a tool) cannot fill the memory with its history.
    max_events: usize,
}

impl MemoryStore {
    /// An empty store whose event log holds at most [`Retention::default`]'s `max_events`.
    pub fn new() -> Self {
        MemoryStore::with_max_events(Retention::default().max_events)
    }

    /// An empty store whose event log holds at most `max_events`: appending past it drops the
    /// oldest, as trimming would.
    pub fn with_max_events(max_events: std::num::NonZeroU64) -> Self {
        let max_events = usize::try_from(max_events.get()).unwrap_or(usize::MAX);
        MemoryStore { inner: Mutex::new(Inner { max_events, ..Inner::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside a critical section cannot leave the maps half-updated in a way later
        // calls would trip on more than on the panic itself; keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn live(&self, id: &SessionId, now: Timestamp) -> Option<&Arc<Session>> {
        self.sessions.get(id).filter(|s| !s.is_expired(now))
    }

    fn insert(&mut self, session: Session) {
        self.by_user.entry(session.user_id.clone()).or_default().insert((session.created_at, session.id.clone()));
        self.by_expiry.insert((session.expires_at, session.id.clone()));
        self.sessions.insert(session.id.clone(), Arc::new(session));
    }

    fn record(&mut self, at: Timestamp, service: Option<&ServiceId>, event: SessionEvent) {
        self.last_event += 1;
        self.events.push_back(EventRecord { id: EventId(self.last_event), at, service: service.cloned(), event });
        if self.events.len() > self.max_events {
            self.trimmed_through = self.events.pop_front().map(|e| e.id);
        }
    }

    /// Removes a session for a change at `change.now`: a live one is `deleted` for `reason`;
    /// one already dead, which only the reaper had not reached yet, `expired` (its expiry is
    /// announced once, by whoever removes it). Returns the session if it was live.
    fn remove_for(&mut self, id: &SessionId, reason: DeleteReason, change: Change<'_>) -> Option<Session> {
        let session = self.remove(id)?;
        let (session_id, user_id) = (session.id.clone(), session.user_id.clone());
        if session.is_expired(change.now) {
            self.record(change.now, None, SessionEvent::Expired { session_id, user_id });
            return None;
        }
        self.record(change.now, change.service, SessionEvent::Deleted { session_id, user_id, reason });
        Some(session)
    }

    fn remove(&mut self, id: &SessionId) -> Option<Session> {
        // A copy only while a reader still holds the stored one.
        let session = Arc::unwrap_or_clone(self.sessions.remove(id)?);
        self.by_expiry.remove(&(session.expires_at, id.clone()));
        if let Some(index) = self.by_user.get_mut(&session.user_id) {
            index.remove(&(session.created_at, id.clone()));
            if index.is_empty() {
                self.by_user.remove(&session.user_id);
            }
        }
        Some(session)
    }

    /// Takes a live session out, lets `change` edit it (or leave it be), and puts it back
    /// re-indexed.
    fn update<T>(&mut self, id: &SessionId, now: Timestamp, change: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.live(id, now)?;
        let mut session = self.remove(id)?;
        let outcome = change(&mut session);
        self.insert(session);
        Some(outcome)
    }

    fn user_sessions(&self, user: &UserId) -> impl Iterator<Item = &Session> {
        self.by_user.get(user).into_iter().flatten().filter_map(|(_, id)| self.sessions.get(id).map(Arc::as_ref))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let mut inner = self.lock();
        if inner.live(&session.id, now).is_some() {
            return Ok(Created::IdTaken);
        }
        let change = Change::at(now).by(session.created_by.as_ref());
        // Without a limit nobody is evicted: skip the O(k) walk of the user's sessions.
        let live: Vec<SessionId> = if limit == UserLimit::Unlimited {
            Vec::new()
        } else {
            inner.user_sessions(&session.user_id).filter(|s| !s.is_expired(now)).map(|s| s.id.clone()).collect()
        };
        let Some(excess) = limit.admit(live.len()) else {
            return Ok(Created::LimitReached);
        };
        let evicted: Vec<SessionId> = live.into_iter().take(excess).collect();
        // A dead session under the same id goes first, as expired.
        inner.remove_for(&session.id, DeleteReason::Evicted, change);
        for id in &evicted {
            inner.remove_for(id, DeleteReason::Evicted, change);
        }
        inner.insert(session.clone());
        let (session_id, user_id) = (session.id.clone(), session.user_id.clone());
        inner.record(now, change.service, SessionEvent::Created { session_id, user_id });
        Ok(Created::Created { evicted })
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().live(id, now).map(|s| Session::clone(s)))
    }

    async fn load_shared(&self, id: &SessionId, now: Timestamp) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.lock().live(id, now).cloned())
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let mut inner = self.lock();
        Ok(inner.update(id, now, |s| {
            s.touch(now);
            s.clone()
        }))
    }

    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        let mut inner = self.lock();
        let refreshed = inner.update(id, change.now, |s| {
            s.touch(change.now);
            s.clone()
        });
        if let Some(s) = &refreshed {
            let (session_id, user_id) = (s.id.clone(), s.user_id.clone());
            inner.record(change.now, change.service, SessionEvent::Refreshed { session_id, user_id });
        }
        Ok(refreshed)
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        let mut inner = self.lock();
        let outcome = inner.update(id, change.now, |s| s.patched(patch, options, change.now));
        if let Some(Patched::Applied(s)) = &outcome {
            let keys = patch.keys().map(str::to_owned).collect();
            let (session_id, user_id) = (s.id.clone(), s.user_id.clone());
            inner.record(change.now, change.service, SessionEvent::AttributesChanged { session_id, user_id, keys });
        }
        Ok(outcome.unwrap_or(Patched::NotFound))
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
        let now = change.now;
        let mut inner = self.lock();
        let outcome = inner.update(id, now, |s| {
            if expected.is_some_and(|v| v != s.version) {
                return Replaced::VersionMismatch(s.version);
            }
            s.attributes = attributes.clone();
            if let Some(device) = device {
                s.device = device.clone();
            }
            if let Some(at) = absolute_expires_at {
                s.set_absolute_expires_at(at);
            }
            s.version = s.version.next();
            Replaced::Applied(s.clone())
        });
        if let Some(Replaced::Applied(s)) = &outcome {
            let keys = s.attributes.keys().cloned().collect();
            let (session_id, user_id) = (s.id.clone(), s.user_id.clone());
            inner.record(now, change.service, SessionEvent::AttributesChanged { session_id, user_id, keys });
        }
        Ok(outcome.unwrap_or(Replaced::NotFound))
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        let now = change.now;
        let mut inner = self.lock();
        if inner.live(old, now).is_none() {
            return Ok(Renamed::NotFound);
        }
        if inner.live(new, now).is_some() {
            return Ok(Renamed::IdTaken);
        }
        inner.remove_for(new, DeleteReason::Evicted, change);
        let mut session = inner.remove(old).expect("checked live above");
        session.id = new.clone();
        session.version = session.version.next();
        session.touch(now);
        inner.insert(session.clone());
        let event = SessionEvent::Regenerated {
            old_session_id: old.clone(),
            session_id: new.clone(),
            user_id: session.user_id.clone(),
        };
        inner.record(now, change.service, event);
        Ok(Renamed::Renamed(session))
    }

    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().remove_for(id, reason, change))
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let inner = self.lock();
        let Some(index) = inner.by_user.get(user) else { return Ok(Vec::new()) };
        let start = match &page.after {
            Some(after) => Bound::Excluded((after.created_at, after.id.clone())),
            None => Bound::Unbounded,
        };
        let sessions = index.range((start, Bound::Unbounded)).filter_map(|(_, id)| inner.sessions.get(id));
        Ok(sessions.filter(|s| !s.is_expired(now)).take(page.size()).map(|s| Session::clone(s)).collect())
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        let inner = self.lock();
        let mut users: Vec<UserId> = inner
            .by_user
            .iter()
            .filter(|(user, index)| {
                user.as_ref().starts_with(prefix)
                    && index.iter().any(|(_, id)| inner.sessions.get(id).is_some_and(|s| !s.is_expired(now)))
            })
            .map(|(user, _)| user.clone())
            .collect();
        users.sort_unstable();
        users.truncate(limit.get() as usize);
        Ok(users)
    }

    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        // In id order; the map keeps none, so each page sorts what lies after its start.
        let inner = self.lock();
        let mut page: Vec<&Arc<Session>> =
            inner.sessions.values().filter(|s| after.is_none_or(|after| s.id > *after) && !s.is_expired(now)).collect();
        page.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(page.into_iter().take(limit.get() as usize).map(|s| Session::clone(s)).collect())
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let mut inner = self.lock();
        let ids: Vec<SessionId> = inner.by_user.get(user).into_iter().flatten().map(|(_, id)| id.clone()).collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| inner.remove_for(&id, DeleteReason::Revoked, change))
            .map(|s| s.id)
            .collect())
    }
}

#[async_trait]
impl Maintenance for MemoryStore {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        let inner = self.lock();
        // Dead sessions sit at the front of the expiry order until the reaper removes them.
        let dead = inner.by_expiry.iter().take_while(|(at, _)| *at <= now).count();
        Ok((inner.sessions.len() - dead) as u64)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        let mut inner = self.lock();
        let due: Vec<SessionId> =
            inner.by_expiry.iter().take_while(|(at, _)| *at <= now).take(limit).map(|(_, id)| id.clone()).collect();
        let mut gone = Vec::with_capacity(due.len());
        for id in due {
            let Some(session) = inner.remove(&id) else { continue };
            let (session_id, user_id) = (session.id, session.user_id);
            inner.record(now, None, SessionEvent::Expired { session_id: session_id.clone(), user_id: user_id.clone() });
            gone.push(SessionRef { id: session_id, user_id });
        }
        Ok(gone)
    }

    fn event_log(&self) -> Option<&dyn EventLog> {
        Some(self)
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let inner = self.lock();
        let Some(first) = inner.events.front().map(|e| e.id.0) else { return Ok(Vec::new()) };
        let skip = after.map_or(0, |after| (after.0 + 1).saturating_sub(first));
        Ok(inner.events.iter().skip(usize::try_from(skip).unwrap_or(usize::MAX)).take(limit).cloned().collect())
    }

    async fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        Ok(Some(self.lock().last_event).filter(|&n| n > 0).map(EventId))
    }

    async fn trimmed_through(&self) -> Result<Option<EventId>, StoreError> {
        Ok(self.lock().trimmed_through)
    }

    async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<RelayClaim, StoreError> {
        let mut inner = self.lock();
        let (claim, state) = RelayState::claim(inner.relays.get(name).cloned(), holder, until, now);
        if let Some(state) = state {
            inner.relays.insert(name.to_owned(), state);
        }
        Ok(claim)
    }

    async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        position: Option<EventId>,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.relays.get_mut(name) {
            Some(state) if state.holder == holder => {
                (state.position, state.until) = (position, until);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn trim_events(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let cutoff = now - retention.max_age;
        let before = inner.events.len();
        while inner.events.len() as u64 > retention.max_events.get()
            || inner.events.front().is_some_and(|e| e.at < cutoff)
        {
            inner.trimmed_through = inner.events.pop_front().map(|e| e.id);
        }
        Ok((before - inner.events.len()) as u64)
    }
}

#[async_trait]
impl ServiceStore for MemoryStore {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.services.contains_key(&service.id) {
            return Ok(false);
        }
        inner.services.insert(service.id.clone(), service.clone());
        Ok(true)
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        Ok(self.lock().services.get(id).cloned())
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.clone()));
        let inner = self.lock();
        Ok(inner.services.range((start, Bound::Unbounded)).take(limit.get() as usize).map(|(_, s)| s.clone()).collect())
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(stored) = inner.services.get_mut(&service.id) else { return Ok(false) };
        *stored = service.clone();
        Ok(true)
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        Ok(self.lock().services.remove(id).is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroU64, time::Duration};

    use super::*;

    #[tokio::test]
    async fn the_log_stays_bounded_without_anyone_trimming_it() {
        let store = MemoryStore::with_max_events(NonZeroU64::new(3).unwrap());
        let user: UserId = "alice".parse().unwrap();
        let now = Timestamp::now();
        for _ in 0..5 {
            let session = Session::new(
                SessionId::generate_for(&user),
                user.clone(),
                now,
                Duration::from_secs(60),
                Duration::from_secs(60),
            );
            store.create(&session, UserLimit::Unlimited, now).await.unwrap();
        }
        let kept: Vec<_> = store.read_events(None, 10).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(kept, [EventId(3), EventId(4), EventId(5)]);
        assert_eq!(store.trimmed_through().await.unwrap(), Some(EventId(2)));
    }
}
