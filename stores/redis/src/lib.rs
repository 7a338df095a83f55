//! `RedisStore`: the production session store of sessanger, on standalone Redis or a Redis
//! Cluster, chosen by URL (`redis://host:port[/db]`, `rediss://…`,
//! `redis+cluster://host:port,host:port,…`).
//!
//! Every operation of the [`SessionStore`] contract is **one round trip**: a Lua script
//! (sent as `EVALSHA`, loaded once per server) or a single command. A script runs with no
//! other command in between, so each read-modify-write (a patch, a compare-and-set, a create
//! under a per-user limit) is atomic without locks or `WATCH` retries.
//!
//! # Layout
//!
//! Every key starts with the configurable [`KeyPrefix`] (default `sessanger`). All keys of one
//! user live under the hash tag `{<prefix>:<tag>}`, where `<tag>` is the user's two-character
//! [shard tag](sessanger_core::UserId::shard_tag) that every session id starts with. Redis
//! Cluster hashes only the part in braces, so a user's sessions, index and shard expiry set sit
//! in **one slot**, and every script touches one slot only. The store finds the slot from a
//! session id alone.
//!
//! | key | type | holds | why |
//! |---|---|---|---|
//! | `{p:tag}:s:<session id>` | hash | `m` the times and version packed in one value (deadline, version, last access, creation, idle TTL, absolute deadline; layout in `record.rs`), `u` user, then the creator after a `\x1f` when both fit 64 bytes (else the creator is `b`), `d` device (JSON; absent when it says nothing); `a:<key>` per attribute (JSON) | one field per attribute: a patch sets, deletes and `HINCRBY`s only the fields it names, so concurrent writers of different keys never meet; the times in one short field: fewer values to parse per read, and a hash that stays a compact listpack; native expiry `PEXPIREAT` at the deadline |
//! | `{p:tag}:single` | hash | user id → the id of the user's only session, for users with one | the user index of most users: a field of a listpack shared by the shard costs ~60 B where a key of the user's own costs ~190 B; a second session moves the user to `…:u:<user id>` |
//! | `{p:tag}:u:<user id>` | sorted set | the session ids of a user with more than one, scored by `created_at` | `list_user`, `delete_user` and the per-user limit read only this user's sessions, oldest first (ties by id); expires natively after the user's last session |
//! | `{p:tag}:x0` … `:x3` | sorted sets | the shard's expiry set in four parts, by the third character of the session id (its first random one): `<session id>\x1f<user id>` per session, scored by `expires_at` | `count_active` and `delete_expired` read only due entries; it outlives the records Redis already expired, so their expiry is still reported; four parts of ~61 entries at 10⁶ sessions stay listpacks (~60 B an entry) where one set of ~244 would be a skiplist (~160 B) |
//! | `{p:tag}:x` | sorted set | the same, unsplit, as versions before the parts wrote it (`<session id><user id>`, ids of 43 characters) | still read by every script that reads the parts; a write or purge that meets an entry of it moves or removes it, so it empties by itself |
//! | `<p>:services` | hash | service id → the [`ServiceRecord`] as JSON | the service registry: small, read through the manager's cache |
//! | `{p}:events` | stream | the event log: entry `<n>-0` per event, `n` its [`EventId`](sessanger_core::EventId) (layout in `events.rs`) | appended by the script of each change, so the change and its event are one atomic step; trimmed by the reaper; consumers resume after any id |
//! | `{p}:events:n`, `…:relays`, `…:gathered` | string, hashes | the log's counter, the relays' leases and positions, the shard logs' watermarks | beside the log, in its slot |
//! | `{p:tag}:events`, `…:n` | stream, string | on a Cluster only: the shard's events until they are gathered into the log | a script stays in its slot; the store gathers the shard logs before reading the log (`events.rs`) |
//!
//! Scripts (see `scripts.rs`) take `now` as an argument and treat a session as dead when its
//! deadline is `<= now`, whatever Redis's own clock says; Redis's native expiry only frees memory, at the
//! same instant if the clocks agree. With a server clock ahead of the application's, a
//! session can vanish up to that skew early; keep clocks in sync (NTP).
//!
//! A dead session's record stays until Redis expires it or `delete_expired` removes it; its
//! expiry entry stays until `delete_expired` reports it, so every expiry is reported once,
//! even for records Redis dropped by itself. Index entries whose record Redis already dropped
//! are pruned by the script that reads the index.
//!
//! | operation | round trips | how |
//! |---|---|---|
//! | `load` | 1 | `HGETALL` |
//! | `create`, `touch`, `patch`, `replace`, `rename`, `delete`, `list_user`, `delete_user` | 1 | one script each |
//! | `count_active` | 4096, concurrent | `ZCOUNT` on the expiry sets of every shard tag, a pipeline per tag |
//! | `scan` | one per shard visited, up to 16 at once | a script per shard reading its expiry set's live entries, then the records after the cursor (for `sessanger export`) |
//! | `find_users` | 4096, concurrent | a script per shard tag reading its expiry set's live entries (an operator's search: O(live sessions)) |
//! | `read_events`, `last_event_id` | 1 (2 for the latter); on a Cluster first the gathering of the shard logs this process wrote to, and of every shard once a second (4096 `XLEN`, concurrent) | `XRANGE`; a script reading the counter and `XINFO STREAM` |
//! | `delete_expired` | 4096 + one per shard with due sessions, concurrent | due entries counted per shard as by `count_active`, then a purge script on those shards, sharing `limit` |
//! | services | 1 | `HSETNX`, `HGET`, `HVALS`, `HDEL` |
//!
//! Every change that records an event, and only those, appends it in its script; the event of
//! an expiry is recorded by whoever takes the session's entry out of the expiry set (the
//! purge, or a write or revocation that meets the dead session first), so it is recorded once
//! however many reapers race.
//!
//! `count_active` and `delete_expired` need every shard. Sessions of different users are
//! spread over 4096 tags, and a key listing the tags in use could not be updated in the same
//! single-slot script as a session. So they visit all 4096 possible tags: the calls are issued
//! concurrently on the multiplexed connection(s), which batches them on the wire per node
//! (a cluster pipeline would have to be single-slot). A visit of an empty tag is five O(1)
//! `ZCOUNT`s of missing keys (`a_sweep_of_all_shards_stays_cheap` prints what a full sweep
//! costs). Both are called by the reaper and for statistics, not per request.
//!
//! # Node cache
//!
//! A store made by [`RedisStore::connect`] keeps the sessions and services it reads in this
//! process (bounded in bytes) and serves `load` and `load_service` from there, coherent with
//! Redis: it reads over a RESP3 connection of its own with client tracking on, and Redis
//! pushes an invalidation on it as soon as anyone changes a key it read. `cache.rs` says how
//! the read-versus-invalidation race, a lost connection and a silent one are each closed.
//! Writes and every other read go through the main connection, uncached.
//!
//! | operation | round trips, node cache on |
//! |---|---|
//! | `load` of a cached session, `load_service` of a cached registry | 0 |
//! | `load` otherwise | 1 (`CLIENT CACHING YES` + `HGETALL`, one write) |
//! | `load_service` otherwise | 1 (`CLIENT CACHING YES` + `HGETALL` of the registry) |
//!
//! Requires Redis 7.0 or later (the scripts use `PEXPIRETIME`).
//!
//! # Why redis-rs
//!
//! The [`redis`] crate (redis-rs, 1.x) is the Redis project's own Rust client: async on Tokio,
//! multiplexed connections (many concurrent calls on one socket, no pool to size), a
//! [`ConnectionManager`](redis::aio::ConnectionManager) that reconnects by itself, an async
//! cluster client that follows `MOVED`/`ASK` and refreshes its slot map, and
//! [`Script`](redis::Script) (`EVALSHA` with a fallback that loads the script). Standalone and
//! cluster connections share one trait, [`redis::aio::ConnectionLike`], so the store is
//! written once ([`RedisConnection`]). fred, the other maintained async client, has the same
//! capabilities behind its own pool and client types; redis-rs lets one small enum cover both
//! deployments. It is built with `default-features = false` and only `tokio-comp`,
//! `cluster-async`, `connection-manager`, `script` and `cache-aio` (for the tracking handshake
//! of the node cache's connections; its own cache is left unused, `cache.rs` says why).
//!
//! # Errors
//!
//! Connection failures, timeouts, a cluster that is down or failing over:
//! [`StoreError::Unavailable`] (the HTTP server answers 503 `store_unavailable`); the store
//! recovers on its own once Redis answers again. Other Redis errors:
//! [`StoreError::Other`]. Stored data this version cannot read: [`StoreError::Decode`].
//!
//! # Examples
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use sessanger_core::{NewSession, SessionManager};
//! use sessanger_store_redis::{KeyPrefix, RedisStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379", KeyPrefix::default()).await?;
//! // or a cluster: RedisStore::connect("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", ..)
//! let manager = SessionManager::new(Arc::new(store), "web".parse()?, Duration::from_secs(3600));
//! let user = "alice".parse()?;
//! let session = manager.create_session(&user, NewSession::default()).await?;
//! assert_eq!(manager.list_user_sessions(&user, &sessanger_core::Page::DEFAULT).await?.len(), 1);
//! # Ok(()) }
//! ```

mod cache;
mod connection;
mod events;
mod record;
mod scripts;

use std::{
    borrow::Cow,
    fmt,
    num::{NonZeroU32, NonZeroU64},
    str::FromStr,
    sync::Arc,
};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use redis::{Value, aio::ConnectionLike};
use sessanger_core::{
    CacheStats, Change, Created, DeleteReason, EventLog, Maintenance, Page, Patch, PatchError, PatchOptions, Patched,
    Renamed, Replaced, Replacement, Retention, ServiceChanges, ServiceId, ServiceRecord, ServiceStore, Session,
    SessionId, SessionRef, SessionStore, StoreError, Timestamp, UserId, UserLimit, Version,
};
use sessanger_tls::TlsOptions;
use tokio::sync::mpsc;

pub use crate::{
    cache::DEFAULT_CACHE_BYTES,
    connection::{ConnectError, RedisConnection},
};
use crate::{
    cache::NodeCache,
    connection::store_error,
    events::Shards,
    record::{Malformed, decode, items, malformed, status, text},
    scripts::Scripts,
};

/// How [`RedisStore::connect_with`] connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The prefix of every key. Default `sessanger`.
    pub prefix: KeyPrefix,
    /// About how many bytes the node cache holds, or `None` for no node cache. Default
    /// [`DEFAULT_CACHE_BYTES`].
    ///
    /// The node cache serves `load` and service lookups from this process's memory, kept
    /// coherent by Redis: a change made anywhere drops the cached copy as soon as Redis's
    /// invalidation arrives (server-assisted client-side caching, on a connection of its own;
    /// the crate's `# Node cache` section).
    pub cache: Option<std::num::NonZeroUsize>,
    /// The CAs to trust, the certificate to show, for a `rediss://` URL. Default: the system's
    /// CAs, no certificate.
    pub tls: TlsOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { prefix: KeyPrefix::default(), cache: Some(DEFAULT_CACHE_BYTES), tls: TlsOptions::default() }
    }
}

/// The base64url alphabet shard tags are drawn from: 64 × 64 = 4096 tags.
const TAG_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// How many per-shard calls `count_active` and `delete_expired` keep in flight at once.
const FAN_OUT: usize = 512;

/// The most shards `scan` reads at once: enough to hide the round trips over the many empty
/// shards of a small store.
const SCAN_AHEAD: usize = 16;

/// The prefix of every key the store writes: 1 to 64 printable characters without `{`, `}`
/// or whitespace (braces would change the hash tag, and with it the cluster slot).
///
/// Give each deployment (or test) its own prefix to share one Redis.
///
/// # Examples
/// ```
/// use sessanger_store_redis::KeyPrefix;
///
/// assert_eq!(KeyPrefix::default().as_ref(), "sessanger");
/// assert!("tenant-a".parse::<KeyPrefix>().is_ok());
/// ```
///
/// # Validation
/// ```
/// use sessanger_store_redis::KeyPrefix;
///
/// assert!("".parse::<KeyPrefix>().is_err());
/// assert!("a{b}".parse::<KeyPrefix>().is_err());
/// assert!("has space".parse::<KeyPrefix>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyPrefix(Arc<str>);

impl KeyPrefix {
    /// The prefix used unless configured otherwise.
    pub const DEFAULT: &'static str = "sessanger";
}

impl Default for KeyPrefix {
    fn default() -> Self {
        KeyPrefix(Self::DEFAULT.into())
    }
}

/// A string refused as a [`KeyPrefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Redis key prefix is 1 to 64 printable characters without braces or whitespace")]
pub struct InvalidKeyPrefix;

impl FromStr for KeyPrefix {
    type Err = InvalidKeyPrefix;
    fn from_str(s: &str) -> Result<Self, InvalidKeyPrefix> {
        let valid = (1..=64).contains(&s.len())
            && !s.chars().any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control());
        if valid { Ok(KeyPrefix(s.into())) } else { Err(InvalidKeyPrefix) }
    }
}

impl AsRef<str> for KeyPrefix {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The names of the store's keys (see the crate's `# Layout`).
#[derive(Clone, Debug)]
struct Keys {
    prefix: KeyPrefix,
}

// Keys are joined with `concat` rather than `format!`: a key is made for every operation, and
// the formatting machinery cost ~850 instructions a key where copying the parts costs ~100
// (callgrind of a GET with the node cache off).
impl Keys {
    /// The hash tag of one shard, `{prefix:tag}`: the start of every key in that shard.
    fn base(&self, tag: &str) -> String {
        self.in_shard(tag, "")
    }

    /// `{prefix:tag}` then `rest`.
    fn in_shard(&self, tag: &str, rest: &str) -> String {
        ["{", self.prefix.as_ref(), ":", tag, "}", rest].concat()
    }

    fn session(&self, id: &SessionId) -> String {
        ["{", self.prefix.as_ref(), ":", id.shard_tag(), "}:s:", id.as_ref()].concat()
    }

    fn user(&self, user: &UserId) -> String {
        ["{", self.prefix.as_ref(), ":", &user.shard_tag(), "}:u:", user.as_ref()].concat()
    }

    /// The shard's unsplit expiry set, where versions before the parts kept every entry.
    fn expiry(&self, tag: &str) -> String {
        self.in_shard(tag, ":x")
    }

    /// Every expiry set of shard `tag`: the unsplit one, then its parts `…:x0` to `…:x3`
    /// (`scripts.rs` says which part holds a session's entry, and why).
    fn expiry_sets(&self, tag: &str) -> Vec<String> {
        let unsplit = self.expiry(tag);
        let parts = (0..scripts::EXPIRY_PARTS).map(|part| format!("{unsplit}{part}"));
        std::iter::once(unsplit.clone()).chain(parts).collect()
    }

    /// The event log (a stream), with its counter `…:n`, relays `…:relays` and, on a Cluster,
    /// the shard logs' watermarks `…:gathered` beside it, under a hash tag of their own.
    fn events(&self) -> String {
        ["{", self.prefix.as_ref(), "}:events"].concat()
    }

    /// On a Cluster, the log of shard `tag`'s events, in its slot, until they are gathered.
    fn shard_events(&self, tag: &str) -> String {
        self.in_shard(tag, ":events")
    }

    fn services(&self) -> String {
        [self.prefix.as_ref(), ":services"].concat()
    }

    /// The channel on which changed and removed services are announced.
    fn changed_services(&self) -> String {
        [self.prefix.as_ref(), ":services:changed"].concat()
    }

    /// The ids of the services, a sorted set (all scores 0, so ordered by id) that lists a
    /// page in O(page).
    fn service_ids(&self) -> String {
        [self.prefix.as_ref(), ":services:ids"].concat()
    }
}

/// Every shard tag a session id can start with.
fn all_tags() -> impl Iterator<Item = String> {
    TAG_ALPHABET.iter().flat_map(|&a| TAG_ALPHABET.iter().map(move |&b| String::from_utf8_lossy(&[a, b]).into_owned()))
}

/// How long the service-changes subscription waits before subscribing again after losing its
/// connection.
const RESUBSCRIBE_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Sessions and services in Redis or a Redis Cluster. Cheap to clone: clones share the
/// connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: RedisConnection,
    keys: Keys,
    scripts: Arc<Scripts>,
    /// The event log's key; `None` when the store records no events.
    events: Option<Arc<str>>,
    /// On a Cluster recording events: the shard logs to gather into the event log.
    shards: Option<Arc<Shards>>,
    /// Where [`ServiceStore::watch_service_changes`] subscribes; `None` for a store made on a
    /// caller's connection ([`RedisStore::new`]), which announces changes but hears none.
    subscriber: Option<redis::Client>,
    /// The node cache (`cache.rs`), if on.
    cache: Option<Arc<NodeCache>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("connection", &self.connection)
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis named by `url` (see [`RedisConnection::connect`]) and keeps keys
    /// under `prefix`, with a node cache of [`DEFAULT_CACHE_BYTES`]. Fails if Redis cannot be
    /// reached now; once connected, the store rides out later outages by itself.
    pub async fn connect(url: &str, prefix: KeyPrefix) -> Result<RedisStore, ConnectError> {
        RedisStore::connect_with(url, ConnectOptions { prefix, ..ConnectOptions::default() }).await
    }

    /// Connects like [`RedisStore::connect`], as `options` say: the key prefix, the node
    /// cache's size (or none), TLS for a `rediss://` URL.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<RedisStore, ConnectError> {
        let tls = options.tls.load()?;
        let subscriber = RedisConnection::subscriber(url, &tls)?;
        let store = RedisStore::new(RedisConnection::connect(url, &tls).await?, options.prefix);
        let cache = match options.cache {
            Some(budget) => Some(NodeCache::connect(url, &tls, &store.keys, budget).await?),
            None => None,
        };
        Ok(RedisStore { subscriber: Some(subscriber), cache, ..store })
    }

    /// How many sessions the node cache holds (present or known to be absent); 0 without one.
    pub fn cached_sessions(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.stats().sessions.entries as usize)
    }

    /// Drops session `id` from the node cache after a write through this store, so this
    /// process reads its own writes at once (other processes hear of it from Redis).
    fn forget(&self, id: &SessionId) {
        if let Some(cache) = &self.cache {
            cache.forget(id);
        }
    }

    /// Tells every process subscribed to the registry's changes
    /// ([`ServiceStore::watch_service_changes`]) that service `id` changed or went.
    async fn announce_service_change(&self, id: &ServiceId) -> Result<(), StoreError> {
        self.query(redis::cmd("PUBLISH").arg(self.keys.changed_services()).arg(id.as_ref())).await.map(drop)
    }

    /// Drops the cached service registry after a change through this store.
    fn forget_services(&self) {
        if let Some(cache) = &self.cache {
            cache.forget_services();
        }
    }

    /// A store on a connection made by the caller: a
    /// [`ConnectionManager`](redis::aio::ConnectionManager) or a cluster
    /// [`ClusterConnection`](redis::cluster_async::ClusterConnection).
    ///
    /// The store records events and keeps about [`Retention::default`]'s `max_events` of them
    /// between two trims ([`RedisStore::with_event_log`] says otherwise).
    pub fn new(connection: impl Into<RedisConnection>, prefix: KeyPrefix) -> RedisStore {
        let store = RedisStore {
            connection: connection.into(),
            keys: Keys { prefix },
            scripts: Arc::new(Scripts::new(Retention::default().max_events)),
            events: None,
            shards: None,
            subscriber: None,
            cache: None,
        };
        store.with_event_log(Some(Retention::default().max_events))
    }

    /// Records events and keeps about `max_events` of them between two trims (the reaper trims
    /// exactly, by count and age: [`EventLog::trim_events`]); `None` records none, and the
    /// store then has no [`event_log`](Maintenance::event_log).
    #[must_use]
    pub fn with_event_log(self, max_events: Option<NonZeroU64>) -> RedisStore {
        let Some(max_events) = max_events else { return RedisStore { events: None, shards: None, ..self } };
        let cluster = matches!(self.connection, RedisConnection::Cluster(_));
        RedisStore {
            events: Some(self.keys.events().into()),
            shards: cluster.then(Arc::default),
            scripts: Arc::new(Scripts::new(max_events)),
            ..self
        }
    }

    /// The prefix of the store's keys.
    pub fn prefix(&self) -> &KeyPrefix {
        &self.keys.prefix
    }

    /// A handle on the shared connection for one call.
    fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    /// Sends one command.
    async fn query(&self, cmd: &redis::Cmd) -> Result<Value, StoreError> {
        self.connection().req_packed_command(cmd).await.map_err(store_error)
    }

    /// Runs `script` with `key` as `KEYS[1]` (plus `extra_keys`), and the time of the change,
    /// the shard's hash tag, the event log and the acting service, then `args` as `ARGV`.
    async fn run(
        &self,
        script: &redis::Script,
        key: &str,
        extra_keys: &[&str],
        tag: &str,
        change: Change<'_>,
        args: &[&str],
    ) -> Result<Value, StoreError> {
        let mut invocation = script.key(key);
        for extra in extra_keys {
            invocation.key(*extra);
        }
        let log: Cow<'_, str> = match (&self.events, &self.shards) {
            (Some(_), Some(shards)) => {
                shards.written(tag);
                Cow::Owned(self.keys.shard_events(tag))
            }
            (Some(log), None) => Cow::Borrowed(log),
            (None, _) => Cow::Borrowed(""),
        };
        self.invoke(invocation, tag, &log, change, args).await
    }

    /// Runs `script`, which only reads (it records no event), on `keys` as [`run`](Self::run)
    /// does: with no log to write to, and no shard log to gather after it.
    async fn read(
        &self,
        script: &redis::Script,
        keys: &[String],
        tag: &str,
        now: Timestamp,
        args: &[&str],
    ) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        self.invoke(invocation, tag, "", Change::at(now), args).await
    }

    async fn invoke(
        &self,
        mut invocation: redis::ScriptInvocation<'_>,
        tag: &str,
        log: &str,
        change: Change<'_>,
        args: &[&str],
    ) -> Result<Value, StoreError> {
        invocation
            .arg(change.now.as_millis())
            .arg(self.keys.base(tag))
            .arg(log)
            .arg(change.service.map_or("", |service| service.as_ref()));
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.invoke_async(&mut self.connection()).await.map_err(store_error)
    }

    /// The keys an `attributes_changed` event names, as the scripts take them (a JSON array);
    /// empty, and never read, when the store records no events.
    fn event_keys<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Result<String, StoreError> {
        if self.events.is_none() {
            return Ok(String::new());
        }
        record::json(&keys.collect::<Vec<_>>())
    }

    /// Renews the idle deadline of session `id`, recording a `refreshed` event if `refresh`.
    async fn renew(&self, id: &SessionId, change: Change<'_>, refresh: bool) -> Result<Option<Session>, StoreError> {
        let key = self.keys.session(id);
        let args = [id.as_ref(), if refresh { "1" } else { "0" }];
        let reply = self.run(&self.scripts.touch, &key, &[], id.shard_tag(), change, &args).await;
        self.forget(id);
        decode(id.clone(), reply?)
    }

    /// Runs `per_tag` for every shard tag, `FAN_OUT` at a time, and collects the results.
    async fn every_shard<T, F, Fut>(&self, per_tag: F) -> Result<Vec<T>, StoreError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        stream::iter(all_tags().map(per_tag)).buffer_unordered(FAN_OUT).try_collect().await
    }

    /// How many entries of shard `tag`'s expiry sets have a deadline from `min` to `max`
    /// (`ZCOUNT`'s bounds): a `ZCOUNT` per set, in one pipeline (one slot). Not a script: a
    /// call of one costs Redis more than the five counts.
    async fn count_entries(&self, tag: &str, min: &str, max: &str) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        for set in self.keys.expiry_sets(tag) {
            pipe.cmd("ZCOUNT").arg(set).arg(min).arg(max);
        }
        let counts = self.connection().req_packed_commands(&pipe, 0, pipe.len()).await.map_err(store_error)?;
        counts.into_iter().map(count).sum()
    }
}

/// A session from a script's `fields` reply that only live sessions reach.
fn live_session(id: &SessionId, fields: Option<Value>) -> Result<Session, StoreError> {
    let fields = fields.ok_or_else(|| malformed(Malformed::Reply(Value::Nil)))?;
    decode(id.clone(), fields)?.ok_or_else(|| malformed(Malformed::Reply(Value::Array(Vec::new()))))
}

fn version(value: Option<Value>) -> Result<Version, StoreError> {
    let text = text(value.unwrap_or(Value::Nil))?;
    text.parse().map(Version).map_err(|_| malformed(Malformed::Invalid("version")))
}

fn unexpected(status: String) -> StoreError {
    malformed(Malformed::Reply(Value::SimpleString(status)))
}

fn parse_user(value: Value) -> Result<UserId, StoreError> {
    text(value)?.parse().map_err(|e: sessanger_core::IdError| StoreError::Decode(e.into()))
}

fn parse_id(value: Value) -> Result<SessionId, StoreError> {
    text(value)?.parse().map_err(|e: sessanger_core::IdError| StoreError::Decode(e.into()))
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let (kind, max) = match limit {
            UserLimit::Unlimited => ("unlimited", 0),
            UserLimit::Refuse(n) => ("refuse", n.get()),
            UserLimit::EvictOldest(n) => ("evict", n.get()),
        };
        let fields = record::encode(session)?;
        let (created_at, expires_at, max) =
            (session.created_at.as_millis().to_string(), session.expires_at.as_millis().to_string(), max.to_string());
        let mut args = vec![session.id.as_ref(), session.user_id.as_ref(), &created_at, &expires_at, kind, &max];
        args.extend(fields.iter().map(String::as_str));
        let key = self.keys.session(&session.id);
        let change = Change::at(now).by(session.created_by.as_ref());
        let reply = self.run(&self.scripts.create, &key, &[], session.id.shard_tag(), change, &args).await;
        self.forget(&session.id);
        let (status, rest) = status(reply?)?;
        match status.as_str() {
            "created" => {
                let evicted: Vec<SessionId> = rest.map(parse_id).collect::<Result<_, _>>()?;
                evicted.iter().for_each(|id| self.forget(id));
                Ok(Created::Created { evicted })
            }
            "taken" => Ok(Created::IdTaken),
            "limit" => Ok(Created::LimitReached),
            _ => Err(unexpected(status)),
        }
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        Ok(self.load_shared(id, now).await?.map(Arc::unwrap_or_clone))
    }

    async fn load_shared(&self, id: &SessionId, now: Timestamp) -> Result<Option<Arc<Session>>, StoreError> {
        let session = match &self.cache {
            Some(cache) => cache.session(id, || self.keys.session(id)).await?,
            // Boxed, as the cache's own reads through: see `NodeCache::read_session`.
            None => decode(id.clone(), Box::pin(self.query(redis::cmd("HGETALL").arg(self.keys.session(id)))).await?)?
                .map(Arc::new),
        };
        Ok(session.filter(|s| !s.is_expired(now)))
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.renew(id, Change::at(now), false).await
    }

    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        self.renew(id, change, true).await
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        let PatchOptions { expected, touch, cap, device, writes } = options;
        let expected = expected.map(|v| v.0.to_string()).unwrap_or_default();
        let counts = [patch.set.len().to_string(), patch.remove.len().to_string(), patch.incr.len().to_string()];
        let writes = writes.to_string();
        let [max_attributes, max_bytes] =
            cap.map_or_else(Default::default, |cap| [cap.max_attributes.to_string(), cap.max_bytes.to_string()]);
        let mut owned = record::attributes(&patch.set)?;
        owned.extend(patch.remove.iter().map(|key| record::attribute(key)));
        for (key, by) in &patch.incr {
            // The store is handed validated patches, but an increment that is not an integer
            // must still be refused rather than sent as text HINCRBY would misread.
            let by = by.as_i64().ok_or_else(|| PatchError::NotAnInteger(key.clone()));
            match by {
                Ok(by) => owned.extend([record::attribute(key), by.to_string()]),
                Err(rejected) => return Ok(Patched::Rejected(rejected)),
            }
        }
        let touch = if touch { "1" } else { "0" };
        let device = device.map(record::json).transpose()?.unwrap_or_default();
        let (max_attributes, max_bytes) = (max_attributes.as_str(), max_bytes.as_str());
        let keys = self.event_keys(patch.keys())?;
        let mut args = vec![
            id.as_ref(),
            &expected,
            touch,
            &counts[0],
            &counts[1],
            &counts[2],
            max_attributes,
            max_bytes,
            &device,
            &keys,
            &writes,
        ];
        args.extend(owned.iter().map(String::as_str));
        let key = self.keys.session(id);
        let reply = self.run(&self.scripts.patch, &key, &[], id.shard_tag(), change, &args).await;
        self.forget(id);
        let (status, mut rest) = status(reply?)?;
        match status.as_str() {
            "applied" => Ok(Patched::Applied(live_session(id, rest.next())?)),
            "missing" => Ok(Patched::NotFound),
            "mismatch" => Ok(Patched::VersionMismatch(version(rest.next())?)),
            "rejected" => {
                let field = text(rest.next().unwrap_or(Value::Nil))?;
                let key = field.strip_prefix(record::ATTRIBUTE).unwrap_or(&field).to_owned();
                Ok(Patched::Rejected(PatchError::NotAnInteger(key)))
            }
            "too_large" => {
                let cap = cap.ok_or_else(|| unexpected(status.clone()))?;
                Ok(Patched::Rejected(match text(rest.next().unwrap_or(Value::Nil))?.as_str() {
                    "attributes" => PatchError::TooManyAttributes(cap.max_attributes),
                    _ => PatchError::SessionTooLarge(cap.max_bytes),
                }))
            }
            _ => Err(unexpected(status)),
        }
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
        let expected = expected.map(|v| v.0.to_string()).unwrap_or_default();
        let device = device.map(record::json).transpose()?.unwrap_or_default();
        let deadline = absolute_expires_at.map_or_else(String::new, |at| at.as_millis().to_string());
        let fields = record::attributes(attributes)?;
        let keys = self.event_keys(attributes.keys().map(String::as_str))?;
        let mut args = vec![id.as_ref(), &expected, &deadline, &device, &keys];
        args.extend(fields.iter().map(String::as_str));
        let key = self.keys.session(id);
        let reply = self.run(&self.scripts.replace, &key, &[], id.shard_tag(), change, &args).await;
        self.forget(id);
        let (status, mut rest) = status(reply?)?;
        match status.as_str() {
            "applied" => Ok(Replaced::Applied(live_session(id, rest.next())?)),
            "missing" => Ok(Replaced::NotFound),
            "mismatch" => Ok(Replaced::VersionMismatch(version(rest.next())?)),
            _ => Err(unexpected(status)),
        }
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        // The contract's precondition (`SessionId::regenerate`) keeps the tag, so both keys
        // share a slot; refuse loudly rather than send a cross-slot script.
        if old.shard_tag() != new.shard_tag() {
            return Err(StoreError::Other("rename across shard tags: the new id must come from regenerate()".into()));
        }
        let (old_key, new_key) = (self.keys.session(old), self.keys.session(new));
        let args = [old.as_ref(), new.as_ref()];
        let reply = self.run(&self.scripts.rename, &old_key, &[&new_key], old.shard_tag(), change, &args).await;
        self.forget(old);
        self.forget(new);
        let (status, mut rest) = status(reply?)?;
        match status.as_str() {
            "renamed" => Ok(Renamed::Renamed(live_session(new, rest.next())?)),
            "missing" => Ok(Renamed::NotFound),
            "taken" => Ok(Renamed::IdTaken),
            _ => Err(unexpected(status)),
        }
    }

    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.keys.session(id);
        let args = [id.as_ref(), reason.as_str()];
        let reply = self.run(&self.scripts.delete, &key, &[], id.shard_tag(), change, &args).await;
        self.forget(id);
        Ok(decode(id.clone(), reply?)?.filter(|s| !s.is_expired(change.now)))
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let key = self.keys.user(user);
        let (after, after_id) = match &page.after {
            Some(position) => (position.created_at.as_millis().to_string(), position.id.to_string()),
            None => (String::new(), String::new()),
        };
        let args = [after.as_str(), &after_id, &page.limit.to_string(), user.as_ref()];
        let reply = self.run(&self.scripts.list_user, &key, &[], &user.shard_tag(), Change::at(now), &args).await?;
        let mut items = items(reply)?.into_iter();
        let mut sessions = Vec::with_capacity(items.len() / 2);
        while let (Some(id), Some(fields)) = (items.next(), items.next()) {
            sessions.push(live_session(&parse_id(id)?, Some(fields))?);
        }
        Ok(sessions)
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        let limit_arg = limit.get().to_string();
        let shards = self
            .every_shard(|tag| {
                let (sets, args) = (self.keys.expiry_sets(&tag), [prefix, limit_arg.as_str()]);
                async move {
                    let reply = self.read(&self.scripts.find_users, &sets, &tag, now, &args).await?;
                    items(reply)?.into_iter().map(parse_user).collect::<Result<Vec<UserId>, _>>()
                }
            })
            .await?;
        // A user's sessions are all in one shard: no user comes from two.
        let mut users: Vec<UserId> = shards.into_iter().flatten().collect();
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
        // Shard by shard in the order of `all_tags`, each shard's sessions by id: the shard of
        // `after` from after it, the later ones whole. Shards are read a wave at a time, as many
        // as the page still needs at the sessions per shard met so far: a store of few sessions
        // per shard reads `SCAN_AHEAD` at once, a full one little more than the page.
        let tags: Vec<String> = match after {
            Some(after) => all_tags().skip_while(|tag| tag != after.shard_tag()).collect(),
            None => all_tags().collect(),
        };
        let after = after.map_or("", AsRef::as_ref);
        let (mut page, mut read, mut met) = (Vec::new(), 0_usize, 0_usize);
        while read < tags.len() {
            let left = limit.get() as usize - page.len();
            // Sessions per shard so far, plus one so that empty shards count as small ones.
            let wave = met.checked_div(read).map_or(1, |per_shard| left.div_ceil(per_shard + 1).clamp(1, SCAN_AHEAD));
            let left_arg = left.to_string();
            let replies = futures::future::try_join_all(tags[read..(read + wave).min(tags.len())].iter().map(|tag| {
                let (sets, args) =
                    (self.keys.expiry_sets(tag), [if read == 0 { after } else { "" }, left_arg.as_str()]);
                async move { self.read(&self.scripts.scan_shard, &sets, tag, now, &args).await }
            }))
            .await?;
            read += replies.len();
            for reply in replies {
                let mut items = items(reply)?.into_iter();
                while let (Some(id), Some(fields)) = (items.next(), items.next()) {
                    met += 1;
                    page.push(live_session(&parse_id(id)?, Some(fields))?);
                    if page.len() == limit.get() as usize {
                        return Ok(page);
                    }
                }
            }
        }
        Ok(page)
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let key = self.keys.user(user);
        let reply = self.run(&self.scripts.delete_user, &key, &[], &user.shard_tag(), change, &[user.as_ref()]).await?;
        let deleted: Vec<SessionId> = items(reply)?.into_iter().map(parse_id).collect::<Result<_, _>>()?;
        deleted.iter().for_each(|id| self.forget(id));
        Ok(deleted)
    }
}

#[async_trait]
impl Maintenance for RedisStore {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        let after_now = format!("({}", now.as_millis());
        let after_now = after_now.as_str();
        let counts = self.every_shard(|tag| async move { self.count_entries(&tag, after_now, "+inf").await }).await?;
        Ok(counts.into_iter().sum())
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // First how many are due in each shard, then purge only those shards, handing out
        // `limit` so the whole call never removes more than it allows.
        let now_arg = now.as_millis().to_string();
        let due = self
            .every_shard(|tag| async {
                let due = self.count_entries(&tag, "-inf", &now_arg).await?;
                Ok((tag, due))
            })
            .await?;
        let mut left = limit as u64;
        let mut batches = Vec::new();
        for (tag, due) in due.into_iter().filter(|(_, due)| *due > 0) {
            let take = due.min(left);
            batches.push((tag, take));
            left -= take;
            if left == 0 {
                break;
            }
        }
        let purged: Vec<Vec<SessionRef>> = stream::iter(batches.into_iter().map(|(tag, take)| async move {
            let sets = self.keys.expiry_sets(&tag);
            let parts: Vec<&str> = sets[1..].iter().map(String::as_str).collect();
            let reply =
                self.run(&self.scripts.purge, &sets[0], &parts, &tag, Change::at(now), &[&take.to_string()]).await?;
            let mut items = items(reply)?.into_iter();
            let mut refs = Vec::new();
            while let (Some(id), Some(user)) = (items.next(), items.next()) {
                let (user_id, id) = (parse_user(user)?, parse_id(id)?);
                self.forget(&id);
                refs.push(SessionRef { id, user_id });
            }
            Ok::<_, StoreError>(refs)
        }))
        .buffer_unordered(FAN_OUT)
        .try_collect()
        .await?;
        Ok(purged.into_iter().flatten().collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query(&redis::cmd("PING")).await.map(drop)
    }

    fn event_log(&self) -> Option<&dyn EventLog> {
        self.events.is_some().then_some(self as &dyn EventLog)
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
    }
}

/// An integer reply as a count.
fn count(value: Value) -> Result<u64, StoreError> {
    match value {
        Value::Int(n) => Ok(u64::try_from(n).unwrap_or(0)),
        other => Err(malformed(Malformed::Reply(other))),
    }
}

#[async_trait]
impl ServiceStore for RedisStore {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let record = record::json(service)?;
        let cmd = redis::cmd("HSETNX").arg(self.keys.services()).arg(service.id.as_ref()).arg(record).to_owned();
        let created = count(self.query(&cmd).await?)? == 1;
        self.forget_services();
        if created {
            // The two keys may sit on different cluster nodes, so this is a second command:
            // a crash in between is repaired by the next `list_services`.
            let index = redis::cmd("ZADD").arg(self.keys.service_ids()).arg(0).arg(service.id.as_ref()).to_owned();
            self.query(&index).await?;
        }
        Ok(created)
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        Ok(self.load_service_shared(id).await?.map(Arc::unwrap_or_clone))
    }

    async fn load_service_shared(&self, id: &ServiceId) -> Result<Option<Arc<ServiceRecord>>, StoreError> {
        if let Some(cache) = &self.cache {
            return cache.service(id).await;
        }
        let cmd = redis::cmd("HGET").arg(self.keys.services()).arg(id.as_ref()).to_owned();
        // Boxed, as the cache's own reads through: see `NodeCache::read_session`.
        match Box::pin(self.query(&cmd)).await? {
            Value::Nil => Ok(None),
            value => decode_service(value).map(|service| Some(Arc::new(service))),
        }
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let (services, ids) = (self.keys.services(), self.keys.service_ids());
        // An index that disagrees with the records (services stored before it existed, or a
        // crash between a record's write and its index entry's) is rebuilt from them: O(n)
        // once, then two O(1) counts per page.
        let stored = count(self.query(redis::cmd("HLEN").arg(&services)).await?)?;
        if count(self.query(redis::cmd("ZCARD").arg(&ids)).await?)? != stored {
            let all = items(self.query(redis::cmd("HKEYS").arg(&services)).await?)?;
            let mut rebuild = redis::cmd("ZADD");
            rebuild.arg(&ids);
            for id in all {
                rebuild.arg(0).arg(text(id)?);
            }
            self.query(redis::cmd("DEL").arg(&ids)).await?;
            if stored > 0 {
                self.query(&rebuild).await?;
            }
        }
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let range =
            redis::cmd("ZRANGEBYLEX").arg(&ids).arg(start).arg("+").arg("LIMIT").arg(0).arg(limit.get()).to_owned();
        let page = items(self.query(&range).await?)?.into_iter().map(text).collect::<Result<Vec<_>, _>>()?;
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let values = items(self.query(redis::cmd("HMGET").arg(&services).arg(&page)).await?)?;
        // A record deleted since its id was read is simply not listed.
        values.into_iter().filter(|value| *value != Value::Nil).map(decode_service).collect()
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.replace_service.key(self.keys.services());
        invocation.arg(service.id.as_ref()).arg(record::json(service)?);
        let replaced = count(invocation.invoke_async(&mut self.connection()).await.map_err(store_error)?)? == 1;
        self.forget_services();
        if replaced {
            self.announce_service_change(&service.id).await?;
        }
        Ok(replaced)
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let cmd = redis::cmd("HDEL").arg(self.keys.services()).arg(id.as_ref()).to_owned();
        let deleted = count(self.query(&cmd).await?)? == 1;
        self.forget_services();
        self.query(redis::cmd("ZREM").arg(self.keys.service_ids()).arg(id.as_ref())).await?;
        if deleted {
            self.announce_service_change(id).await?;
        }
        Ok(deleted)
    }

    fn caches_services(&self) -> bool {
        self.cache.is_some()
    }

    async fn watch_service_changes(&self) -> Result<Option<ServiceChanges>, StoreError> {
        let Some(client) = self.subscriber.clone() else { return Ok(None) };
        let channel = self.keys.changed_services();
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            // Subscribed until the receiver is dropped; a lost connection is made again after
            // a pause (changes announced meanwhile are missed: the cache lifetime bounds them).
            while !sender.is_closed() {
                if let Ok(mut pubsub) = client.get_async_pubsub().await
                    && pubsub.subscribe(&channel).await.is_ok()
                {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let id = message.get_payload::<String>().ok().and_then(|id| id.parse().ok());
                        if let Some(id) = id
                            && sender.send(id).await.is_err()
                        {
                            return;
                        }
                    }
                }
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
            }
        });
        Ok(Some(receiver))
    }
}

fn decode_service(value: Value) -> Result<ServiceRecord, StoreError> {
    serde_json::from_str(&text(value)?).map_err(|e| StoreError::Decode(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_user_carries_the_same_hash_tag() {
        let keys = Keys { prefix: "p".parse().unwrap() };
        let user: UserId = "alice".parse().unwrap();
        let id = SessionId::generate_for(&user);
        let tag = format!("{{p:{}}}", user.shard_tag());
        for key in [keys.session(&id), keys.user(&user), keys.expiry(&user.shard_tag()), keys.session(&id.regenerate())]
        {
            assert!(key.starts_with(&tag), "{key}");
        }
    }

    #[test]
    fn keys_keep_their_names() {
        // Data written by earlier versions must still be found: the names never change.
        let keys = Keys { prefix: "p".parse().unwrap() };
        let user: UserId = "alice".parse().unwrap();
        let (tag, id) = (user.shard_tag(), SessionId::generate_for(&user));
        let names = [
            keys.session(&id),
            keys.user(&user),
            keys.expiry(&tag),
            keys.base(&tag),
            keys.events(),
            keys.shard_events(&tag),
            keys.services(),
            keys.changed_services(),
            keys.service_ids(),
        ];
        let expected = [
            format!("{{p:{tag}}}:s:{id}"),
            format!("{{p:{tag}}}:u:alice"),
            format!("{{p:{tag}}}:x"),
            format!("{{p:{tag}}}"),
            "{p}:events".to_owned(),
            format!("{{p:{tag}}}:events"),
            "p:services".to_owned(),
            "p:services:changed".to_owned(),
            "p:services:ids".to_owned(),
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn there_are_4096_distinct_tags_covering_generated_ids() {
        let tags: std::collections::HashSet<String> = all_tags().collect();
        assert_eq!(tags.len(), 4096);
        for _ in 0..1000 {
            assert!(tags.contains(SessionId::generate().shard_tag()));
        }
    }
}
