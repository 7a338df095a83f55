//! `EmbeddedStore`: the default store of sessanger. Sessions and services live in one
//! [redb](https://www.redb.org) file on local disk: persistent, crash-safe, no server to run.
//!
//! Every operation of the [`SessionStore`] and [`ServiceStore`] contract is **one redb
//! transaction**. Writes take redb's single write transaction, so each read-modify-write
//! (a patch, a compare-and-set, a create under a per-user limit) is atomic with respect to
//! every other write. Reads take a read transaction: a consistent snapshot that never waits
//! for a writer and never writes, so `load` stays cheap. redb is a blocking library; every
//! write and every read that scans runs on Tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]), so store methods must be called from within a Tokio
//! runtime.
//!
//! # Reads
//!
//! `load` and `load_service` (point lookups: `GET /v1/sessions/{id}` and every request's
//! service check) run their read transaction inline on the calling async thread instead. The
//! hop to the blocking pool and back costs many times the lookup itself (BENCHMARKS.md has the
//! figures), and the
//! inline work is bounded: beginning a read transaction takes redb's transaction-tracker lock
//! for a few instructions and never waits for a writer (writers hold it only as briefly, to
//! publish a commit; the long part of a commit, the `fsync`, happens outside it), and one key
//! lookup reads one B-tree path, a handful of pages that redb's page cache keeps in memory for
//! a hot data set. The worst case is a cache miss: a few `pread`s of 4 KiB pages from the OS
//! page cache or the disk, the same order as a file read any async handler might do. Reads
//! whose cost grows with the data (`list_user`, `count_active`, `list_services`) stay on the
//! blocking pool.
//!
//! # Layout
//!
//! The database file is `<dir>/sessions.redb` and holds seven tables:
//!
//! | table | key | value | why |
//! |---|---|---|---|
//! | `sessions` | session id | the [`Session`] as a binary record (older data dirs: JSON) | the records; `load` is one lookup |
//! | `sessions_by_user` | (user id, `created_at` ms, session id) | `()` | a user's sessions are one key range, oldest first: `list_user`, `delete_user` and the per-user limit cost O(k) in that user's sessions |
//! | `sessions_by_expiry` | (`expires_at` ms, session id) | `()` | sessions in the order they die: `delete_expired` reads only due entries, and `count_active` is the record count minus the due entries, so neither scans live sessions |
//! | `services` | service id | the [`ServiceRecord`] as JSON | the service registry, listed in id order |
//! | `events` | event id | the [`EventRecord`] as JSON | the event log, oldest first: a consumer resumes with one range read |
//! | `relays` | relay name | its [`RelayState`] as JSON | who forwards the log elsewhere (to RabbitMQ), until when, and how far it got |
//! | `counters` | name | `u64` | `trimmed_through`, the newest event id trimming dropped: it says what a late consumer missed, and where ids go on when trimming emptied the log (they never come back) |
//!
//! Every write keeps the three session tables consistent in the same transaction, and
//! records the events of what it changed in that transaction too. A session
//! record is a version byte and a compact binary record whose attributes are JSON (the layout
//! is in `src/record.rs`); records written as JSON by earlier versions are still read, and are
//! rewritten in the binary form by their next write. Service records are JSON. A record that
//! no longer decodes makes reads
//! of it fail with [`StoreError::Decode`] rather than vanish; once it is due,
//! `delete_expired` removes it (its deadline is in the index) without reporting it.
//!
//! # Durability
//!
//! redb's default is kept: every commit is written with checksums and `fsync`ed before the
//! call returns ([`redb::Durability::Immediate`]), so an acknowledged write survives a crash
//! or power loss, and a crash never leaves a half-applied operation. After an unclean
//! shutdown, [`EmbeddedStore::open`] repairs the file by walking it; session data is small and
//! short-lived, so that walk is short, and we do not pay redb's "quick repair" (a second
//! `fsync` on every commit) to skip it. Writes that change nothing (a refused create, a stale
//! compare-and-set, a purge with nothing due) are aborted, not committed, and cost no `fsync`.
//!
//! # Examples
//! ```
//! use std::{sync::Arc, time::Duration};
//! use sessanger_core::{NewSession, SessionManager};
//! use sessanger_store_embedded::EmbeddedStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = EmbeddedStore::open(dir.path().join("data"))?;
//! assert!(store.path().ends_with("data/sessions.redb"));
//!
//! let manager = SessionManager::new(Arc::new(store), "web".parse()?, Duration::from_secs(3600));
//! let user = "alice".parse()?;
//! let session = manager.create_session(&user, NewSession::default()).await?;
//! assert_eq!(*manager.get_session(&session.id).await?, session);
//! assert_eq!(manager.list_user_sessions(&user, &sessanger_core::Page::DEFAULT).await?.len(), 1);
//! # Ok(()) }
//! ```

use std::{
    fmt, io,
    num::NonZeroU32,
    ops::Bound,
    path::{Path, PathBuf},
    sync::Arc,
};

mod record;

use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};
use sessanger_core::{
    BoxError, Change, Created, DeleteReason, EventId, EventLog, EventRecord, Maintenance, Page, Patch, PatchOptions,
    Patched, RelayClaim, RelayState, Renamed, Replaced, Replacement, Retention, ServiceId, ServiceRecord, ServiceStore,
    Session, SessionEvent, SessionId, SessionRef, SessionStore, StoreError, Timestamp, UserId, UserLimit,
};

/// The name of the database file inside the data directory.
pub const FILE_NAME: &str = "sessions.redb";

/// Session id → the session as a versioned binary record (see [`record`]).
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (user id, `created_at` in ms, session id) → nothing: each user's sessions, oldest first.
const BY_USER: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("sessions_by_user");
/// (`expires_at` in ms, session id) → nothing: sessions in the order they die.
const BY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("sessions_by_expiry");
/// Service id → the service record as JSON.
const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
/// Event id → the event record as JSON, oldest first.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Counters that outlive what they count.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// Relay name → its [`RelayState`] as JSON: who forwards the log, until when, how far.
const RELAYS: TableDefinition<&str, &[u8]> = TableDefinition::new("relays");
/// In [`COUNTERS`]: the newest event id trimming dropped.
const TRIMMED_THROUGH: &str = "trimmed_through";

/// Why [`EmbeddedStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The data directory does not exist and could not be created.
    #[error("cannot create the data directory {}", path.display())]
    CreateDir {
        /// The data directory.
        path: PathBuf,
        /// Why it could not be created.
        #[source]
        source: io::Error,
    },
    /// Another process (or another store in this process) holds the database open.
    #[error("the database {} is already in use by another process or store", path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The file could not be opened as a database, or its tables could not be created.
    #[error("cannot open the database {}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause, from redb or the file system.
        #[source]
        source: BoxError,
    },
}

/// Sessions and services in a redb file: persistent, crash-safe, no server.
///
/// One process holds the file at a time; a second [`open`](Self::open) of the same directory
/// fails with [`OpenError::Locked`] until the first store is dropped. Within the process, share
/// the store through an `Arc`.
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store kept in the data directory `dir`, creating the directory (with its
    /// parents) and the database file `dir/sessions.redb` if they are missing.
    ///
    /// Blocks while redb opens the file, which after a crash includes repairing it.
    ///
    /// # Examples
    /// ```
    /// use sessanger_store_embedded::{EmbeddedStore, OpenError};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = EmbeddedStore::open(dir.path()).unwrap();
    /// assert!(matches!(EmbeddedStore::open(dir.path()), Err(OpenError::Locked { .. })));
    /// drop(store);
    /// assert!(EmbeddedStore::open(dir.path()).is_ok());
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<EmbeddedStore, OpenError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir { path: dir.to_owned(), source })?;
        let path = dir.join(FILE_NAME);
        let failed = |source: BoxError| OpenError::Database { path: path.clone(), source };
        let db = Database::create(&path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::Locked { path: path.clone() },
            other => failed(other.into()),
        })?;
        // Create every table up front, so a read transaction never meets a missing one.
        let txn = db.begin_write().map_err(|e| failed(e.into()))?;
        SessionTables::open(&txn).map_err(|e| failed(e.into()))?;
        txn.open_table(SERVICES).map_err(|e| failed(e.into()))?;
        txn.open_table(RELAYS).map_err(|e| failed(e.into()))?;
        txn.commit().map_err(|e| failed(e.into()))?;
        Ok(EmbeddedStore { db: Arc::new(db), path })
    }

    /// The database file: `sessions.redb` in the data directory given to [`open`](Self::open).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `op` in one read transaction on the blocking pool.
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || op(&db.begin_read().map_err(store_error)?)).await
    }

    /// Runs `op` in one read transaction right here, on the calling (async) thread: for
    /// point lookups only, whose work is bounded and short (see "Reads" in the crate docs).
    fn read_inline<T>(&self, op: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        op(&self.db.begin_read().map_err(store_error)?)
    }

    /// Writes `service` if the registry holds a record of its id already (`replace`) or holds
    /// none (`!replace`); `Ok(false)` and nothing written otherwise.
    async fn put_service(&self, service: &ServiceRecord, replace: bool) -> Result<bool, StoreError> {
        let service = service.clone();
        self.write(move |txn| {
            let mut services = txn.open_table(SERVICES).map_err(store_error)?;
            let id = service.id.as_ref();
            if services.get(id).map_err(store_error)?.is_some() != replace {
                return Ok((false, false));
            }
            services.insert(id, encode(&service)?.as_slice()).map_err(store_error)?;
            Ok((true, true))
        })
        .await
    }

    /// Runs `op` in one write transaction on the blocking pool. The transaction commits if
    /// `op` says it changed something, and is aborted if not or if `op` fails.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_write().map_err(store_error)?;
            let (outcome, changed) = op(&txn)?;
            if changed {
                txn.commit().map_err(store_error)?
            } else {
                txn.abort().map_err(store_error)?
            }
            Ok(outcome)
        })
        .await
    }

    /// Runs `op` on the session tables in one write transaction.
    async fn write_sessions<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SessionTables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write(|txn| {
            let mut tables = SessionTables::open(txn).map_err(store_error)?;
            let outcome = op(&mut tables)?;
            Ok((outcome, tables.changed))
        })
        .await
    }
}

/// Runs `op` on Tokio's blocking pool; a panic inside it resumes in the caller.
async fn blocking<T, F>(op: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        // The runtime is shutting down and dropped the task before it ran.
        Err(join) => Err(StoreError::Unavailable(join.into())),
    }
}

/// A redb error as a store error: I/O failures may pass (a full disk), the rest are bugs or
/// damage.
fn store_error(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        error @ redb::Error::Io(_) => StoreError::Unavailable(error.into()),
        error => StoreError::Other(error.into()),
    }
}

/// Encodes a service record as stored: JSON.
fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Encode(e.into()))
}

/// Decodes a stored service record.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode(e.into()))
}

/// The service record stored under `key`, decoded.
fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    table.get(key).map_err(store_error)?.map(|bytes| decode(bytes.value())).transpose()
}

/// The session stored under `id`, decoded (binary or JSON, see [`record`]).
fn get_session(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<Session>, StoreError> {
    table.get(id).map_err(store_error)?.map(|bytes| record::decode_session(bytes.value())).transpose()
}

/// The keys of `user`'s sessions in the user index, as (`created_at` ms, session id), oldest
/// first: one range scan, O(k) in the user's sessions.
fn user_keys(
    by_user: &impl ReadableTable<(&'static str, i64, &'static str), ()>,
    user: &UserId,
) -> Result<Vec<(i64, String)>, StoreError> {
    let user = user.as_ref();
    let mut keys = Vec::new();
    for entry in by_user.range((user, i64::MIN, "")..).map_err(store_error)? {
        let (key, _) = entry.map_err(store_error)?;
        let (owner, created_at, id) = key.value();
        if owner != user {
            break;
        }
        keys.push((created_at, id.to_owned()));
    }
    Ok(keys)
}

/// `user`'s sessions, live or not, oldest first. An index entry without a record (left by
/// purging a record that no longer decodes) is skipped.
fn user_sessions(
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    by_user: &impl ReadableTable<(&'static str, i64, &'static str), ()>,
    user: &UserId,
) -> Result<Vec<Session>, StoreError> {
    let mut found = Vec::new();
    for (_, id) in user_keys(by_user, user)? {
        found.extend(get_session(sessions, &id)?);
    }
    Ok(found)
}

/// The expiry index entries dead at `now`, at most `limit`, soonest first. Reads only those.
fn due(
    by_expiry: &impl ReadableTable<(i64, &'static str), ()>,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    let mut keys = Vec::new();
    for entry in by_expiry.iter().map_err(store_error)?.take(limit) {
        let (key, _) = entry.map_err(store_error)?;
        let (expires_at, id) = key.value();
        if expires_at > now.as_millis() {
            break;
        }
        keys.push((expires_at, id.to_owned()));
    }
    Ok(keys)
}

/// The newest event id trimming dropped.
fn trimmed_through(counters: &impl ReadableTable<&'static str, u64>) -> Result<Option<EventId>, StoreError> {
    Ok(counters.get(TRIMMED_THROUGH).map_err(store_error)?.map(|n| EventId(n.value())))
}

/// The newest event id ever given: the log's last key, or, when trimming emptied the log, the
/// newest id it dropped.
fn last_event(
    events: &impl ReadableTable<u64, &'static [u8]>,
    counters: &impl ReadableTable<&'static str, u64>,
) -> Result<Option<EventId>, StoreError> {
    let last = events.last().map_err(store_error)?.map(|(id, _)| EventId(id.value()));
    Ok(last.max(trimmed_through(counters)?))
}

/// What an edit of a stored session decided, with the answer to return either way.
enum Edit<T> {
    /// Write the edited session back.
    Write(T),
    /// Leave the stored session as it was.
    Keep(T),
}

/// The session tables of one write transaction, kept consistent with each other by every
/// method; `changed` records whether anything was written, to decide commit or abort.
struct SessionTables<'txn> {
    sessions: Table<'txn, &'static str, &'static [u8]>,
    by_user: Table<'txn, (&'static str, i64, &'static str), ()>,
    by_expiry: Table<'txn, (i64, &'static str), ()>,
    events: Table<'txn, u64, &'static [u8]>,
    counters: Table<'txn, &'static str, u64>,
    changed: bool,
}

impl<'txn> SessionTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(SessionTables {
            sessions: txn.open_table(SESSIONS)?,
            by_user: txn.open_table(BY_USER)?,
            by_expiry: txn.open_table(BY_EXPIRY)?,
            events: txn.open_table(EVENTS)?,
            counters: txn.open_table(COUNTERS)?,
            changed: false,
        })
    }

    /// Appends `event` to the log, in this transaction. Only the log's own page changes: the
    /// newest id is read off it (or off `trimmed_through` when trimming emptied it), so a
    /// write dirties, and `fsync`s, no counter page.
    fn record(&mut self, at: Timestamp, service: Option<&ServiceId>, event: SessionEvent) -> Result<(), StoreError> {
        let last = last_event(&self.events, &self.counters)?.map_or(0, |id| id.0);
        let id = last + 1;
        let record = EventRecord { id: EventId(id), at, service: service.cloned(), event };
        self.events.insert(id, encode(&record)?.as_slice()).map_err(store_error)?;
        self.changed = true;
        Ok(())
    }

    /// Records the end of a session removed at `now`: `deleted` for `reason` if it was live,
    /// `expired` if it was already dead (only the reaper had not reached it: its expiry is
    /// announced once, by whoever removes it). Returns the session if it was live.
    fn ended(
        &mut self,
        session: Session,
        reason: DeleteReason,
        now: Timestamp,
        service: Option<&ServiceId>,
    ) -> Result<Option<Session>, StoreError> {
        let (session_id, user_id) = (session.id.clone(), session.user_id.clone());
        if session.is_expired(now) {
            self.record(now, None, SessionEvent::Expired { session_id, user_id })?;
            return Ok(None);
        }
        self.record(now, service, SessionEvent::Deleted { session_id, user_id, reason })?;
        Ok(Some(session))
    }

    fn live(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        Ok(get_session(&self.sessions, id.as_ref())?.filter(|s| !s.is_expired(now)))
    }

    /// Stores `session` under its id (overwriting a record there) and indexes it.
    fn insert(&mut self, session: &Session) -> Result<(), StoreError> {
        let id = session.id.as_ref();
        self.sessions.insert(id, record::encode_session(session)?.as_slice()).map_err(store_error)?;
        self.by_user.insert((session.user_id.as_ref(), session.created_at.as_millis(), id), ()).map_err(store_error)?;
        self.by_expiry.insert((session.expires_at.as_millis(), id), ()).map_err(store_error)?;
        self.changed = true;
        Ok(())
    }

    /// Removes `session`'s index entries.
    fn unindex(&mut self, session: &Session) -> Result<(), StoreError> {
        let id = session.id.as_ref();
        self.by_user.remove((session.user_id.as_ref(), session.created_at.as_millis(), id)).map_err(store_error)?;
        self.by_expiry.remove((session.expires_at.as_millis(), id)).map_err(store_error)?;
        self.changed = true;
        Ok(())
    }

    /// Removes the session with this id, live or not, with its index entries.
    fn remove(&mut self, id: &str) -> Result<Option<Session>, StoreError> {
        let Some(bytes) = self.sessions.remove(id).map_err(store_error)? else {
            return Ok(None);
        };
        let session = record::decode_session(bytes.value())?;
        drop(bytes);
        self.unindex(&session)?;
        Ok(Some(session))
    }

    /// Removes a session already read in this transaction, with its index entries.
    fn discard(&mut self, session: &Session) -> Result<(), StoreError> {
        self.sessions.remove(session.id.as_ref()).map_err(store_error)?;
        self.unindex(session)
    }

    /// Lets `change` edit the live session with this id, and writes it back re-indexed if it
    /// says [`Edit::Write`]. `None` if no live session has the id.
    fn update<T>(
        &mut self,
        id: &SessionId,
        now: Timestamp,
        change: impl FnOnce(&mut Session) -> Edit<T>,
    ) -> Result<Option<T>, StoreError> {
        let Some(stored) = self.live(id, now)? else {
            return Ok(None);
        };
        let mut session = stored.clone();
        match change(&mut session) {
            Edit::Write(outcome) => {
                self.rewrite(&stored, &session)?;
                Ok(Some(outcome))
            }
            Edit::Keep(outcome) => Ok(Some(outcome)),
        }
    }

    /// Writes `session` over `stored` (the same id, read in this transaction), moving only the
    /// index entries whose keys changed: a patch without touch rewrites the record alone.
    fn rewrite(&mut self, stored: &Session, session: &Session) -> Result<(), StoreError> {
        debug_assert_eq!(stored.id, session.id);
        let id = session.id.as_ref();
        self.sessions.insert(id, record::encode_session(session)?.as_slice()).map_err(store_error)?;
        if (&stored.user_id, stored.created_at) != (&session.user_id, session.created_at) {
            self.by_user.remove((stored.user_id.as_ref(), stored.created_at.as_millis(), id)).map_err(store_error)?;
            self.by_user
                .insert((session.user_id.as_ref(), session.created_at.as_millis(), id), ())
                .map_err(store_error)?;
        }
        if stored.expires_at != session.expires_at {
            self.by_expiry.remove((stored.expires_at.as_millis(), id)).map_err(store_error)?;
            self.by_expiry.insert((session.expires_at.as_millis(), id), ()).map_err(store_error)?;
        }
        self.changed = true;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let session = session.clone();
        self.write_sessions(move |t| {
            let previous = get_session(&t.sessions, session.id.as_ref())?;
            if previous.as_ref().is_some_and(|s| !s.is_expired(now)) {
                return Ok(Created::IdTaken);
            }
            let live = match limit {
                UserLimit::Unlimited => Vec::new(),
                _ => user_sessions(&t.sessions, &t.by_user, &session.user_id)?
                    .into_iter()
                    .filter(|s| !s.is_expired(now))
                    .collect(),
            };
            let Some(excess) = limit.admit(live.len()) else {
                return Ok(Created::LimitReached);
            };
            let service = session.created_by.as_ref();
            if let Some(dead) = previous {
                t.discard(&dead)?;
                t.ended(dead, DeleteReason::Evicted, now, service)?;
            }
            let mut evicted = Vec::with_capacity(excess);
            for oldest in live.into_iter().take(excess) {
                t.discard(&oldest)?;
                evicted.extend(t.ended(oldest, DeleteReason::Evicted, now, service)?.map(|s| s.id));
            }
            t.insert(&session)?;
            let (session_id, user_id) = (session.id.clone(), session.user_id.clone());
            t.record(now, service, SessionEvent::Created { session_id, user_id })?;
            Ok(Created::Created { evicted })
        })
        .await
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.read_inline(|txn| {
            let sessions = txn.open_table(SESSIONS).map_err(store_error)?;
            Ok(get_session(&sessions, id.as_ref())?.filter(|s| !s.is_expired(now)))
        })
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let id = id.clone();
        self.write_sessions(move |t| {
            t.update(&id, now, |s| {
                s.touch(now);
                Edit::Write(s.clone())
            })
        })
        .await
    }

    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        let (id, now, service) = (id.clone(), change.now, change.service.cloned());
        self.write_sessions(move |t| {
            let refreshed = t.update(&id, now, |s| {
                s.touch(now);
                Edit::Write(s.clone())
            })?;
            if let Some(s) = &refreshed {
                let (session_id, user_id) = (s.id.clone(), s.user_id.clone());
                t.record(now, service.as_ref(), SessionEvent::Refreshed { session_id, user_id })?;
            }
            Ok(refreshed)
        })
        .await
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        // The write runs on a blocking thread: it owns what it needs.
        let PatchOptions { expected, touch, cap, device, writes } = options;
        let (id, patch, device) = (id.clone(), patch.clone(), device.cloned());
        let (now, service) = (change.now, change.service.cloned());
        self.write_sessions(move |t| {
            let options = PatchOptions { expected, touch, cap, device: device.as_ref(), writes };
            let outcome = t.update(&id, now, |s| match s.patched(&patch, options, now) {
                applied @ Patched::Applied(_) => Edit::Write(applied),
                refused => Edit::Keep(refused),
            })?;
            if let Some(Patched::Applied(s)) = &outcome {
                let keys = patch.keys().map(str::to_owned).collect();
                let (session_id, user_id) = (s.id.clone(), s.user_id.clone());
                t.record(now, service.as_ref(), SessionEvent::AttributesChanged { session_id, user_id, keys })?;
            }
            Ok(outcome.unwrap_or(Patched::NotFound))
        })
        .await
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
        let (id, attributes, device) = (id.clone(), attributes.clone(), device.cloned());
        let (now, service) = (change.now, change.service.cloned());
        self.write_sessions(move |t| {
            let outcome = t.update(&id, now, |s| {
                if expected.is_some_and(|v| v != s.version) {
                    return Edit::Keep(Replaced::VersionMismatch(s.version));
                }
                s.attributes = attributes;
                if let Some(device) = device {
                    s.device = device;
                }
                if let Some(at) = absolute_expires_at {
                    s.set_absolute_expires_at(at);
                }
                s.version = s.version.next();
                Edit::Write(Replaced::Applied(s.clone()))
            })?;
            if let Some(Replaced::Applied(s)) = &outcome {
                let keys = s.attributes.keys().cloned().collect();
                let (session_id, user_id) = (s.id.clone(), s.user_id.clone());
                t.record(now, service.as_ref(), SessionEvent::AttributesChanged { session_id, user_id, keys })?;
            }
            Ok(outcome.unwrap_or(Replaced::NotFound))
        })
        .await
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        let (old, new) = (old.clone(), new.clone());
        let (now, service) = (change.now, change.service.cloned());
        self.write_sessions(move |t| {
            let Some(mut session) = t.live(&old, now)? else {
                return Ok(Renamed::NotFound);
            };
            if t.live(&new, now)?.is_some() {
                return Ok(Renamed::IdTaken);
            }
            if let Some(dead) = t.remove(new.as_ref())? {
                t.ended(dead, DeleteReason::Evicted, now, service.as_ref())?;
            }
            t.discard(&session)?;
            session.id = new;
            session.version = session.version.next();
            session.touch(now);
            t.insert(&session)?;
            let user_id = session.user_id.clone();
            let event = SessionEvent::Regenerated { old_session_id: old, session_id: session.id.clone(), user_id };
            t.record(now, service.as_ref(), event)?;
            Ok(Renamed::Renamed(session))
        })
        .await
    }

    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        let (id, now, service) = (id.clone(), change.now, change.service.cloned());
        self.write_sessions(move |t| match t.remove(id.as_ref())? {
            Some(session) => t.ended(session, reason, now, service.as_ref()),
            None => Ok(None),
        })
        .await
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let (user, page) = (user.clone(), page.clone());
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS).map_err(store_error)?;
            let by_user = txn.open_table(BY_USER).map_err(store_error)?;
            let after = page.after.as_ref().map(|p| (p.created_at.as_millis(), p.id.to_string()));
            let (from_ms, from_id) = after.clone().unwrap_or((i64::MIN, String::new()));
            let mut found = Vec::with_capacity(page.size().min(64));
            for entry in by_user.range((user.as_ref(), from_ms, from_id.as_str())..).map_err(store_error)? {
                let (key, _) = entry.map_err(store_error)?;
                let (owner, created_at, id) = key.value();
                if owner != user.as_ref() || found.len() == page.size() {
                    break;
                }
                if after.as_ref().is_some_and(|(ms, after_id)| (*ms, after_id.as_str()) == (created_at, id)) {
                    continue;
                }
                found.extend(get_session(&sessions, id)?.filter(|s| !s.is_expired(now)));
            }
            Ok(found)
        })
        .await
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS).map_err(store_error)?;
            let by_user = txn.open_table(BY_USER).map_err(store_error)?;
            let mut found: Vec<UserId> = Vec::new();
            // The index is ordered by user id: the matching users are one range from the prefix.
            for entry in by_user.range((prefix.as_str(), i64::MIN, "")..).map_err(store_error)? {
                let (key, _) = entry.map_err(store_error)?;
                let (owner, _, id) = key.value();
                if !owner.starts_with(prefix.as_str()) || found.len() == limit.get() as usize {
                    break;
                }
                if found.last().is_some_and(|last| last.as_ref() == owner) {
                    continue;
                }
                if get_session(&sessions, id)?.is_some_and(|s| !s.is_expired(now)) {
                    found.push(owner.parse().map_err(|e: sessanger_core::IdError| StoreError::Decode(e.into()))?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let after = after.map(|id| id.to_string());
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS).map_err(store_error)?;
            let range = match &after {
                Some(after) => sessions.range::<&str>((Bound::Excluded(after.as_str()), Bound::Unbounded)),
                None => sessions.range::<&str>(..),
            };
            let mut page = Vec::with_capacity((limit.get() as usize).min(1024));
            for entry in range.map_err(store_error)? {
                let (_, bytes) = entry.map_err(store_error)?;
                let session = record::decode_session(bytes.value())?;
                if !session.is_expired(now) {
                    page.push(session);
                    if page.len() == limit.get() as usize {
                        break;
                    }
                }
            }
            Ok(page)
        })
        .await
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let (user, now, service) = (user.clone(), change.now, change.service.cloned());
        self.write_sessions(move |t| {
            let mut deleted = Vec::new();
            for (created_at, id) in user_keys(&t.by_user, &user)? {
                match t.remove(&id)? {
                    Some(s) => deleted.extend(t.ended(s, DeleteReason::Revoked, now, service.as_ref())?.map(|s| s.id)),
                    None => {
                        // An index entry whose record was purged undecodable: drop it too.
                        t.by_user.remove((user.as_ref(), created_at, id.as_str())).map_err(store_error)?;
                        t.changed = true;
                    }
                }
            }
            Ok(deleted)
        })
        .await
    }
}

#[async_trait]
impl Maintenance for EmbeddedStore {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS).map_err(store_error)?;
            let by_expiry = txn.open_table(BY_EXPIRY).map_err(store_error)?;
            // Dead sessions sit at the front of the expiry order until they are purged.
            let dead = due(&by_expiry, now, usize::MAX)?.len() as u64;
            Ok(sessions.len().map_err(store_error)?.saturating_sub(dead))
        })
        .await
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        self.write_sessions(move |t| {
            let mut purged = Vec::new();
            for (expires_at, id) in due(&t.by_expiry, now, limit)? {
                t.by_expiry.remove((expires_at, id.as_str())).map_err(store_error)?;
                t.changed = true;
                let Some(bytes) = t.sessions.remove(id.as_str()).map_err(store_error)? else {
                    continue;
                };
                // A record that no longer decodes is dead by its index entry all the same: drop
                // it rather than stop every later purge on it. Its user entry cannot be found
                // without the record; reads skip it, and `delete_user` removes it.
                let Ok(session) = record::decode_session(bytes.value()) else {
                    continue;
                };
                drop(bytes);
                let key = (session.user_id.as_ref(), session.created_at.as_millis(), session.id.as_ref());
                t.by_user.remove(key).map_err(store_error)?;
                let (session_id, user_id) = (session.id, session.user_id);
                t.record(
                    now,
                    None,
                    SessionEvent::Expired { session_id: session_id.clone(), user_id: user_id.clone() },
                )?;
                purged.push(SessionRef { id: session_id, user_id });
            }
            Ok(purged)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|txn| txn.open_table(SESSIONS).map(drop).map_err(store_error)).await
    }

    fn event_log(&self) -> Option<&dyn EventLog> {
        Some(self)
    }
}

#[async_trait]
impl EventLog for EmbeddedStore {
    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let from = after.map_or(0, |after| after.0.saturating_add(1));
        self.read(move |txn| {
            let events = txn.open_table(EVENTS).map_err(store_error)?;
            let mut found = Vec::with_capacity(limit.min(1024));
            for entry in events.range(from..).map_err(store_error)?.take(limit) {
                let (_, bytes) = entry.map_err(store_error)?;
                found.push(decode(bytes.value())?);
            }
            Ok(found)
        })
        .await
    }

    async fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        self.read_inline(|txn| {
            let events = txn.open_table(EVENTS).map_err(store_error)?;
            last_event(&events, &txn.open_table(COUNTERS).map_err(store_error)?)
        })
    }

    async fn trimmed_through(&self) -> Result<Option<EventId>, StoreError> {
        self.read_inline(|txn| trimmed_through(&txn.open_table(COUNTERS).map_err(store_error)?))
    }

    async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<RelayClaim, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |txn| {
            let mut relays = txn.open_table(RELAYS).map_err(store_error)?;
            let current = get(&relays, &name)?;
            let (claim, state) = RelayState::claim(current, &holder, until, now);
            if let Some(state) = &state {
                relays.insert(name.as_str(), encode(state)?.as_slice()).map_err(store_error)?;
            }
            Ok((claim, state.is_some()))
        })
        .await
    }

    async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        position: Option<EventId>,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |txn| {
            let mut relays = txn.open_table(RELAYS).map_err(store_error)?;
            match get::<RelayState>(&relays, &name)? {
                Some(state) if state.holder == holder => {
                    let state = RelayState { position, until, ..state };
                    relays.insert(name.as_str(), encode(&state)?.as_slice()).map_err(store_error)?;
                    Ok((true, true))
                }
                _ => Ok((false, false)),
            }
        })
        .await
    }

    async fn trim_events(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError> {
        let (max_events, cutoff) = (retention.max_events.get(), now - retention.max_age);
        self.write(move |txn| {
            let mut events = txn.open_table(EVENTS).map_err(store_error)?;
            let mut trimmed = 0;
            loop {
                let over = events.len().map_err(store_error)? > max_events;
                let Some((_, bytes)) = events.first().map_err(store_error)? else { break };
                let record: EventRecord = decode(bytes.value())?;
                drop(bytes);
                if !over && record.at >= cutoff {
                    break;
                }
                events.pop_first().map_err(store_error)?;
                trimmed += 1;
                txn.open_table(COUNTERS)
                    .map_err(store_error)?
                    .insert(TRIMMED_THROUGH, record.id.0)
                    .map_err(store_error)?;
            }
            Ok((trimmed, trimmed > 0))
        })
        .await
    }
}

#[async_trait]
impl ServiceStore for EmbeddedStore {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.put_service(service, false).await
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        self.read_inline(|txn| get(&txn.open_table(SERVICES).map_err(store_error)?, id.as_ref()))
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let after = after.map(|id| id.to_string());
        self.read(move |txn| {
            let services = txn.open_table(SERVICES).map_err(store_error)?;
            let mut page = Vec::new();
            let range = match &after {
                Some(after) => services.range::<&str>((Bound::Excluded(after.as_str()), Bound::Unbounded)),
                None => services.range::<&str>(..),
            };
            for entry in range.map_err(store_error)?.take(limit.get() as usize) {
                let (_, bytes) = entry.map_err(store_error)?;
                page.push(decode(bytes.value())?);
            }
            Ok(page)
        })
        .await
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.put_service(service, true).await
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(move |txn| {
            let removed =
                txn.open_table(SERVICES).map_err(store_error)?.remove(id.as_ref()).map_err(store_error)?.is_some();
            Ok((removed, removed))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use sessanger_core::{Patch, PatchOptions};

    use super::*;

    /// A data directory written by an earlier version holds sessions as JSON: they are read,
    /// and the next write stores them in the binary format, indexes untouched.
    #[tokio::test(flavor = "multi_thread")]
    async fn sessions_stored_as_json_by_earlier_versions_are_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let user: UserId = "alice".parse().unwrap();
        let now = Timestamp::from_millis(1_763_900_000_000);
        let mut session = Session::new(
            SessionId::generate_for(&user),
            user.clone(),
            now,
            Duration::from_secs(600),
            Duration::from_secs(3600),
        );
        session.attributes.insert("role".into(), json!("admin"));
        let txn = store.db.begin_write().unwrap();
        {
            let mut t = SessionTables::open(&txn).unwrap();
            t.insert(&session).unwrap();
            // Overwrite the record as an earlier version wrote it.
            let id = session.id.as_ref();
            t.sessions.insert(id, serde_json::to_vec(&session).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(store.load(&session.id, now).await.unwrap(), Some(session.clone()));
        assert_eq!(store.list_user(&user, &Page::DEFAULT, now).await.unwrap(), vec![session.clone()]);
        let patched = store
            .patch(&session.id, &Patch::default().incr("n", 1), PatchOptions::new(), Change::at(now))
            .await
            .unwrap();
        let Patched::Applied(patched) = patched else { panic!("{patched:?}") };
        let raw = store.db.begin_read().unwrap().open_table(SESSIONS).unwrap().get(session.id.as_ref()).unwrap();
        assert_eq!(raw.unwrap().value().first(), Some(&record::BINARY_V1));
        assert_eq!(store.load(&session.id, now).await.unwrap(), Some(patched));
    }
}
