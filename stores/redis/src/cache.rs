//! The node cache: session records (and the service registry) kept in this process, bounded in
//! memory, and kept coherent by Redis itself.
//!
//! # How it stays coherent
//!
//! Reads that fill the cache go over a connection of their own, in RESP3 with server-assisted
//! client-side caching on (`CLIENT TRACKING ON OPTIN`, sent by redis-rs in the handshake of
//! every connection it makes, reconnections and new cluster nodes included). Each such read is
//! sent as `CLIENT CACHING YES` + the read, so Redis remembers that this connection holds the
//! key and pushes an `invalidate` message on it when anyone (any node, any script, an expiry)
//! changes or removes the key. Other reads and all writes stay on the store's main connection,
//! whose reads Redis does not track.
//!
//! Three things could still make an entry stale, and each is closed:
//! - **A read racing an invalidation** (the race the Redis documentation describes): the reply
//!   to a read can be handed over before an invalidation that Redis sent right after it is
//!   applied. So a read first puts a *filling* slot with a fresh ticket in the cache, and its
//!   reply is kept only if that slot is still there: an invalidation (or a write through this
//!   node, or a flush) in between removes the slot and the reply is used once, not kept.
//! - **A lost connection**: invalidations sent while it was down are gone. redis-rs reports the
//!   loss (`Disconnection`), and the whole cache, filling slots included, is dropped; reads go
//!   to Redis until they can be cached again on the new connection, which tracks from its
//!   first command.
//! - **`FLUSHALL`/`FLUSHDB`**: Redis invalidates everything at once (a `nil` key list), and the
//!   whole cache is dropped.
//! - **A connection that fails silently** (a network partition, a server that hangs): nothing
//!   says the invalidations stopped. So the cache serves hits only under a *lease*: every
//!   [`HEARTBEAT`] a `PING` goes over the tracking connection (to every primary of a cluster),
//!   and its reply, coming after every invalidation Redis sent before it, renews the lease to
//!   [`LEASE`] after the ping was sent. Without a fresh reply, hits stop when the lease runs
//!   out, reads go to Redis (and fail while it cannot be reached), and a failed ping drops the
//!   cache. A hit is thus never older than the latest invalidation delivered, or at worst than
//!   [`LEASE`].
//!
//! A write through this node also drops its entry as soon as the write returns, so a node
//! reads its own writes without waiting for the invalidation; other nodes see a change once its
//! invalidation reaches them (the staleness bound in the crate's docs). A cached session still
//! honours its own deadlines: the store checks them on every hit.
//!
//! # Why not redis-rs's own cache (`cache-aio`)
//!
//! Its cache keeps a reply only after the reply is handed back, with nothing to tell whether
//! an invalidation came in between (the race above), and it keeps raw replies, so every hit
//! would still parse the record. Its tracking handshake is what this module builds on: the
//! store turns it on in `OPTIN` mode and never opts a command into redis-rs's cache.

use std::{
    collections::HashMap,
    hash::Hash,
    num::NonZeroUsize,
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Cmd, PushInfo, PushKind, Value,
    aio::{AsyncPushSender, SendError},
};
use sessanger_core::{
    CacheCounts, CacheStats, ServiceId, ServiceRecord, Session, SessionId, StoreError,
    cache::{Cache, Lookup, Ticket},
};

use crate::{
    Keys,
    connection::{RedisConnection, store_error},
    record::{self, decode},
};

/// What the node cache holds by default: enough for some 50 000 sessions of a few hundred
/// bytes, small beside a node's memory.
pub const DEFAULT_CACHE_BYTES: NonZeroUsize = NonZeroUsize::new(64 << 20).expect("not zero");

/// How often the tracking connection is pinged.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(200);

/// How long after a ping was sent its reply lets the cache serve hits: a few heartbeats, so a
/// slow reply or two changes nothing.
pub(crate) const LEASE: Duration = Duration::from_secs(1);

/// The service registry as cached: every service by id (found on every request, by an id the
/// client names: seeded at random, as the node cache's own keys).
type Registry = Arc<HashMap<ServiceId, Arc<ServiceRecord>, foldhash::quality::RandomState>>;

/// The node cache of one store: sessions (and their absence) by id, the service registry, the
/// connection that fills them, and what Redis's pushes do to them.
pub(crate) struct NodeCache {
    // Shared: a hit hands out the cached session itself, not a copy of it.
    sessions: Cache<SessionId, Option<Arc<Session>>>,
    services: Cache<(), Registry>,
    /// `{<prefix>:`, the start of every session key, and `<prefix>:services`.
    shard_start: String,
    services_key: String,
    connection: OnceLock<RedisConnection>,
    /// Until when hits may be served, in nanoseconds after `started` (0: not now).
    lease: AtomicU64,
    started: Instant,
    session_reads: Reads,
    service_reads: Reads,
    drops: AtomicU64,
}

/// Reads of one kind of entry, for statistics.
#[derive(Default)]
struct Reads {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Reads {
    /// Counts a read: a hit if `served` from memory.
    fn count(&self, served: bool) {
        let counter = if served { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn counts<K: Hash + Eq + Clone, V: Clone>(&self, cache: &Cache<K, V>) -> CacheCounts {
        let (entries, bytes) = cache.size();
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: entries as u64,
            bytes: bytes as u64,
        }
    }
}

impl NodeCache {
    /// Connects the tracking connection for a store on `url` with `keys`, holding about
    /// `budget` bytes.
    pub(crate) async fn connect(
        url: &str,
        tls: &sessanger_tls::LoadedTls,
        keys: &Keys,
        budget: NonZeroUsize,
    ) -> Result<Arc<NodeCache>, crate::ConnectError> {
        // The registry is small and read on every request; an eighth of the budget is plenty.
        let services_budget = NonZeroUsize::new(budget.get() / 8).unwrap_or(NonZeroUsize::MIN);
        let cache = Arc::new(NodeCache {
            sessions: Cache::new(budget),
            services: Cache::new(services_budget),
            shard_start: format!("{{{}:", keys.prefix),
            services_key: keys.services(),
            connection: OnceLock::new(),
            lease: AtomicU64::new(0),
            started: Instant::now(),
            session_reads: Reads::default(),
            service_reads: Reads::default(),
            drops: AtomicU64::new(0),
        });
        // The connection delivers its pushes to the cache, so the cache exists first; it holds
        // the cache weakly, as the cache holds the connection.
        let connection = RedisConnection::tracking(url, tls, Arc::new(Pushes(Arc::downgrade(&cache)))).await?;
        cache.connection.set(connection).unwrap_or_else(|_| unreachable!("set once, here"));
        cache.renew_lease().await;
        tokio::spawn(heartbeat(Arc::downgrade(&cache)));
        Ok(cache)
    }

    fn connection(&self) -> &RedisConnection {
        self.connection.get().expect("connected before use")
    }

    fn elapsed(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Pings every node; on a reply, hits may be served until [`LEASE`] after the ping was
    /// sent; without one, the cache is dropped (invalidations may have been lost meanwhile).
    async fn renew_lease(&self) {
        let sent = self.elapsed();
        match tokio::time::timeout(LEASE, self.connection().ping_every_node()).await {
            Ok(Ok(())) => {
                let until = sent.saturating_add(u64::try_from(LEASE.as_nanos()).unwrap_or(u64::MAX));
                self.lease.fetch_max(until, Ordering::Release);
            }
            _ => self.drop_all(),
        }
    }

    /// Whether hits may be served now.
    fn leased(&self) -> bool {
        self.elapsed() < self.lease.load(Ordering::Acquire)
    }

    /// Drops every entry and the lease: nothing is served from memory until a ping succeeds.
    fn drop_all(&self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
        self.lease.store(0, Ordering::Release);
        self.sessions.clear();
        self.services.clear();
    }

    /// Session `id` (stored under the key `key` spells), from the cache or read through it.
    pub(crate) async fn session(
        &self,
        id: &SessionId,
        key: impl FnOnce() -> String,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let ticket = match self.sessions.get(id) {
            Lookup::Hit(session) if self.leased() => {
                self.session_reads.count(true);
                return Ok(session);
            }
            Lookup::Hit(_) => self.sessions.ticket(id),
            Lookup::Miss(ticket) => ticket,
        };
        self.session_reads.count(false);
        // The key is spelled out only for a read that goes to Redis, not for every hit.
        Box::pin(self.read_session(id, ticket, key())).await
    }

    // Boxed by its caller, as `read_registry`: a read through Redis keeps kilobytes of state,
    // which every hit's future would otherwise carry, and copy into the box the store
    // contract puts it in (callgrind: ~0.5k instructions a hit).
    async fn read_session(
        &self,
        id: &SessionId,
        ticket: Ticket,
        key: String,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let reply = self.read(&key, redis::cmd("HGETALL").arg(&key).to_owned()).await?;
        let weight = record::size(&reply);
        let session = decode(id.clone(), reply)?.map(Arc::new);
        self.sessions.fill(id, ticket, session.clone(), weight);
        Ok(session)
    }

    /// Service `id`, from the cached registry or the registry read through the cache.
    pub(crate) async fn service(&self, id: &ServiceId) -> Result<Option<Arc<ServiceRecord>>, StoreError> {
        let ticket = match self.services.get(&()) {
            Lookup::Hit(registry) if self.leased() => {
                self.service_reads.count(true);
                return Ok(registry.get(id).cloned());
            }
            Lookup::Hit(_) => self.services.ticket(&()),
            Lookup::Miss(ticket) => ticket,
        };
        self.service_reads.count(false);
        Box::pin(self.read_registry(id, ticket)).await
    }

    async fn read_registry(&self, id: &ServiceId, ticket: Ticket) -> Result<Option<Arc<ServiceRecord>>, StoreError> {
        let reply = self.read(&self.services_key, redis::cmd("HGETALL").arg(&self.services_key).to_owned()).await?;
        let weight = record::size(&reply);
        let registry: Registry = Arc::new(
            record::pairs(reply)?
                .into_iter()
                .map(|(_, value)| {
                    let service = crate::decode_service(value)?;
                    Ok((service.id.clone(), Arc::new(service)))
                })
                .collect::<Result<_, StoreError>>()?,
        );
        let found = registry.get(id).cloned();
        self.services.fill(&(), ticket, registry, weight);
        Ok(found)
    }

    /// Sends `read` of `key` so that Redis tracks `key` for this connection.
    async fn read(&self, key: &str, read: Cmd) -> Result<Value, StoreError> {
        self.connection().tracked(key, read).await.map_err(store_error)
    }

    /// Drops session `id` after a write through this node, so the node reads its own writes.
    pub(crate) fn forget(&self, id: &SessionId) {
        self.sessions.forget(id);
    }

    /// Drops the registry after a change through this node.
    pub(crate) fn forget_services(&self) {
        self.services.forget(&());
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            sessions: self.session_reads.counts(&self.sessions),
            services: self.service_reads.counts(&self.services),
            drops: self.drops.load(Ordering::Relaxed),
        }
    }

    fn invalidate(&self, key: &str) {
        if key == self.services_key {
            self.services.forget(&());
        } else if let Some(id) = key.strip_prefix(self.shard_start.as_str()).and_then(|rest| rest.split_once("}:s:"))
            && let Ok(id) = id.1.parse::<SessionId>()
        {
            self.sessions.forget(&id);
        }
    }
}

/// Renews the lease of `cache` every [`HEARTBEAT`], until the cache is dropped.
async fn heartbeat(cache: Weak<NodeCache>) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        let Some(cache) = cache.upgrade() else { return };
        cache.renew_lease().await;
    }
}

/// Redis's pushes on the tracking connection, applied to the cache as redis-rs reads them.
struct Pushes(Weak<NodeCache>);

impl AsyncPushSender for Pushes {
    fn send(&self, push: PushInfo) -> Result<(), SendError> {
        let Some(cache) = self.0.upgrade() else { return Err(SendError) };
        match invalidation(push) {
            Some(Invalidation::Keys(keys)) => keys.iter().for_each(|key| cache.invalidate(key)),
            Some(Invalidation::All) => cache.drop_all(),
            None => {}
        }
        Ok(())
    }
}

/// What an invalidation push asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Invalidation {
    /// These keys changed.
    Keys(Vec<String>),
    /// Anything may have changed (a flush, or a connection lost with its invalidations).
    All,
}

/// The invalidation a push message carries, if it carries one.
pub(crate) fn invalidation(push: PushInfo) -> Option<Invalidation> {
    match push.kind {
        PushKind::Disconnection => Some(Invalidation::All),
        PushKind::Invalidate => match push.data.into_iter().next() {
            Some(Value::Array(keys)) => Some(Invalidation::Keys(
                keys.into_iter()
                    .filter_map(|key| match key {
                        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                        _ => None,
                    })
                    .collect(),
            )),
            // Redis sends a nil key list after FLUSHALL/FLUSHDB.
            _ => Some(Invalidation::All),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_name_the_keys_or_everything() {
        let push = |kind, data| PushInfo { kind, data };
        let keys = Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::BulkString(b"b".to_vec())]);
        assert_eq!(
            invalidation(push(PushKind::Invalidate, vec![keys])),
            Some(Invalidation::Keys(vec!["a".into(), "b".into()]))
        );
        assert_eq!(invalidation(push(PushKind::Invalidate, vec![Value::Nil])), Some(Invalidation::All));
        assert_eq!(invalidation(push(PushKind::Disconnection, vec![])), Some(Invalidation::All));
        assert_eq!(invalidation(push(PushKind::Message, vec![])), None);
    }
}
