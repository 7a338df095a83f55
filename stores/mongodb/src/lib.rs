//! `MongoStore`: sessanger's session store on MongoDB, with the official [`mongodb`] driver.
//! It is the store of the original sessman's deployments: it takes the settings of sessman's
//! `sessman.json` ([`SessmanSettings`], [`MongoOptions::from_sessman`]) as well as a
//! `mongodb://` URL.
//!
//! Every read and every write of one session (`load`, `touch`, `patch`, `replace`, `delete`) is
//! **one command** when it succeeds: a `findOneAndUpdate` whose filter holds every condition
//! (live, version, increment types) and whose update touches only the fields it changes, so concurrent writers of different attributes never lose each
//! other's writes. Operations over several documents (create under a per-user limit, rename)
//! run in a **transaction** where the server has them (a replica set or a sharded cluster);
//! on a standalone server they take a per-user lease lock instead (see `# Atomicity`).
//!
//! # Layout
//!
//! Three collections in one database; `<c>` is the sessions collection (default `sessions`,
//! see [`MongoOptions::with_collection`]):
//!
//! | collection | one document per | fields | indexes |
//! |---|---|---|---|
//! | `<c>` | session | `_id` session id; `user_id`; `device {device_id?, ip?, user_agent?}`; `created_by?`; `created_at`, `last_access_at`, `absolute_expires_at`, `expires_at` (BSON dates, ms); `idle_ttl_ms`, `version` (Int64); `attributes` (sub-document, one field per attribute) | unique `_id`; TTL index `expires_at_ttl` on `expires_at`; `user_id_created_at` on `(user_id, created_at, _id)` |
//! | `<c>.services` | registered service | `_id` service id, `name`, `permissions` (array of names), `secret_sha256`, `created_at` | `_id` |
//! | `<c>.users` | user who created a session under a limit in the last day | `creates` (the transaction guard), `lock`, `lock_until` (the lease lock), `seen_at` (date of the last such create) | `_id`; TTL index `seen_at_ttl` (one day) |
//!
//! **Attribute keys.** MongoDB reads `.` in an update path as nesting and `$` as an operator,
//! so each attribute is stored under its key with `%`, `.`, `$` and NUL percent-encoded
//! (`a.b` → `attributes.a%2Eb`); keys of objects nested in values are encoded the same way.
//! Every other character is kept, so documents stay readable and every attribute has its own
//! path for `$set`, `$unset` and `$inc`. (An array of `{k, v}` pairs would need no encoding
//! but turns every attribute write into an array rewrite by pipeline.)
//!
//! **Attribute values** are JSON as native BSON: integers as Int64 (so `$inc` applies),
//! other numbers as doubles, an integer above `i64::MAX` as `{"%u64": "<digits>"}` (a field
//! name no encoded key can have). MongoDB refuses documents nested deeper than 100 levels, so a
//! value may nest about 97 levels deep; a deeper one fails as [`StoreError::Other`].
//!
//! # Operations
//!
//! | operation | commands | how |
//! |---|---|---|
//! | `load` | `find` | `{_id, expires_at: {$gt: now}}` |
//! | `touch` | `findOneAndUpdate` | pipeline: `expires_at = min(now + idle_ttl_ms, absolute_expires_at)` |
//! | `patch` | `findOneAndUpdate` (+ `find` when it matched nothing) | `$set`/`$unset`/`$inc` on `attributes.<key>`, `$inc` version; the filter checks version and that every incremented value is missing or an int/long the increment cannot overflow (`$expr` + `$type`), so a refused patch writes nothing; with touch the same as one update pipeline. Only when nothing matched, a `find` tells not-found, version mismatch and refusal apart |
//! | `replace` | `findOneAndUpdate` (+ `find` when it matched nothing) | filter on version; `$set` attributes and device; with a new absolute deadline one update pipeline that also caps `expires_at` |
//! | `create` | `find`, `insert` (+ `deleteOne` of a dead doc with the id); limited: + guard `update` or lock `update` ×2, `find` of the user's live sessions, `deleteMany` of the evicted | unlimited: the unique `_id` refuses a live id; limited: in a transaction with the user's guard document, or under the user's lock — count the live sessions, evict the oldest, insert |
//! | `rename` | `find` ×2, `insert`, `deleteOne` | in a transaction, or insert the new id then delete the old one *at the version read* (else undo and retry) |
//! | `delete` | `findOneAndDelete` | |
//! | `list_user` | `find` | `(user_id, created_at, _id)` index, `expires_at > now` |
//! | `delete_user` | `find`, `deleteMany` | deletes the ids it found (`$in`), in a transaction where the server has them |
//! | `count_active` | `countDocuments` | `expires_at > now` on the TTL index |
//! | `delete_expired` | `find` + `findOneAndDelete` per due session | `expires_at <= now`, oldest first, at most `limit` |
//! | services | `insert`, `find`, `deleteOne` | duplicate `_id` → taken |
//!
//! # Expiry
//!
//! Every read carries `expires_at > now` with the caller's `now`, never the server's clock, so
//! a session is dead exactly at its deadline. The TTL index deletes dead documents by itself,
//! but only [`MongoOptions::expiry_grace`] (default one hour) after their deadline: until then
//! the reaper's `delete_expired` finds them, deletes them and reports their expiry, so the
//! manager still announces every expiry when its reaper runs at least once per grace period.
//! The TTL monitor (every ~60 s) is the backstop that keeps the collection clean when no reaper
//! runs; what it deletes is not reported.
//!
//! # Atomicity
//!
//! At connect the store asks the server (`hello`) whether it is a replica set member or a
//! `mongos` ([`Atomicity::Transactions`]), else it is standalone ([`Atomicity::UserLock`]).
//!
//! - **Transactions.** A limited `create` runs in a transaction that first writes the user's
//!   guard document in `<c>.users`: two creates for one user conflict on it and the driver
//!   retries one, so none counts a stale set of sessions (snapshot isolation alone would let
//!   both insert). `rename` is one transaction. The user limit holds at every instant.
//! - **User lock** (standalone). A limited `create` first takes the user's lease lock in
//!   `<c>.users` (an upsert that only matches a free or run-out lock; a held one fails with a
//!   duplicate key and is retried for up to 5 s), then counts, evicts and inserts, then frees
//!   it. Creates of one user are serialised, so the limit holds while each holder finishes
//!   within its 5 s lease; a crashed holder blocks that user's limited creates for at most the
//!   lease. The lease is measured in the callers' `now`. Evictions are not undone if the
//!   insert then fails (only a concurrent create of the same id, astronomically unlikely).
//!   `rename` inserts the new id, then deletes the old one only if its version is still the
//!   one read (else it deletes the new one and starts again): for that moment a listing may
//!   show the session under both ids, and a limit check counts it twice (it may refuse or
//!   evict one session too many, never allow one too many).
//!
//! `delete_user` deletes the sessions it listed (in a transaction where the server has them): a
//! session created while it runs survives it. Without transactions, a session deleted by
//! another caller between its `find` and its `deleteMany` is reported by both.
//!
//! Requires MongoDB 4.4 or later (update pipelines, `$expr` in `findAndModify`, and
//! transactions that may write to collections created just before).
//!
//! # Why these driver features
//!
//! `mongodb` 3.x is built with `default-features = false` and only `compat-3-3-0` (the
//! driver's required API level), `bson-3` and `rustls-tls` (TLS through rustls on ring, no
//! OpenSSL). Left out: `dns-resolver` (hickory, a large dependency tree) — so
//! `mongodb+srv://` URLs are refused; list the hosts in a `mongodb://` URL instead — and
//! compression, AWS/Kerberos/OIDC auth and in-use encryption. The driver runs on Tokio.
//!
//! # Errors
//!
//! A server that cannot be reached or selected in time (5 s unless the URL sets
//! `serverSelectionTimeoutMS`), a pool cleared after a network error, a stepping-down
//! primary: [`StoreError::Unavailable`]. Other driver errors: [`StoreError::Other`].
//! Documents this version cannot read: [`StoreError::Decode`].
//!
//! # Examples
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use sessanger_core::{NewSession, SessionManager};
//! use sessanger_store_mongodb::{MongoOptions, MongoStore, SessmanSettings};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MongoStore::connect("mongodb://127.0.0.1:27017/?replicaSet=rs0", "sessanger").await?;
//! // or with the original sessman's settings, or options built step by step:
//! let mut sessman = SessmanSettings::default();
//! sessman.server_url = Some("127.0.0.1:27017".into());
//! let _sessman = MongoStore::from_sessman(&sessman).await?;
//! let options = MongoOptions::from_url("mongodb://db1,db2/?replicaSet=rs0")?
//!     .with_database("tenant_a")?
//!     .with_expiry_grace(Duration::from_secs(600));
//! let _tenant = MongoStore::open(&options).await?;
//! let manager = SessionManager::new(Arc::new(store), "web".parse()?, Duration::from_secs(3600));
//! let user = "alice".parse()?;
//! manager.create_session(&user, NewSession::default()).await?;
//! assert_eq!(manager.list_user_sessions(&user, &sessanger_core::Page::DEFAULT).await?.len(), 1);
//! # Ok(()) }
//! ```

mod document;
mod error;
mod options;
mod query;

use std::{fmt, num::NonZeroU32, time::Duration};

use async_trait::async_trait;
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use mongodb::{
    Client, ClientSession, Collection, Database, IndexModel,
    bson::{Bson, Document, doc},
    options::{IndexOptions, ReturnDocument},
};
use sessanger_core::{
    Change, Created, DeleteReason, Maintenance, Page, Patch, PatchOptions, Patched, Renamed, Replaced, Replacement,
    ServiceId, ServiceRecord, ServiceStore, Session, SessionId, SessionRef, SessionStore, StoreError, Timestamp,
    UserId, UserLimit, Version,
};

pub use crate::options::{ConnectError, MongoOptions, SessmanSettings};
use crate::{
    document::{date, decode_ref, decode_service, decode_session, encode_service, encode_session, field},
    error::{is_duplicate_key, is_namespace_exists, store_error},
    query::AttributeChanges,
};

/// How long a user document (guard or lock) outlives the user's last limited create.
const USER_TTL: Duration = Duration::from_secs(86_400);
/// How long a user's lease lock is held at most (standalone servers only).
const LOCK_LEASE: Duration = Duration::from_secs(5);
/// Pause between two attempts to take a busy user lock.
const LOCK_RETRY: Duration = Duration::from_millis(10);
/// How many times an operation that lost a race (its conditions changed between its write and
/// the read that explains why the write matched nothing, or between a cap check and the write)
/// starts again before giving up.
const ATTEMPTS: usize = 64;
/// How many due sessions `delete_expired` deletes at once.
const PURGE_FAN_OUT: usize = 16;

/// How the store makes multi-document operations atomic (see the crate's `# Atomicity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Atomicity {
    /// Replica set or sharded cluster: limited creates and renames are transactions.
    Transactions,
    /// Standalone server: limited creates take a per-user lease lock; rename is insert-then-delete.
    UserLock,
}

impl Atomicity {
    /// What a server's `hello` reply allows: a replica set member (`setName`) or a `mongos`
    /// (`msg: "isdbgrid"`) runs transactions; a standalone server does not.
    fn of_server(hello: &Document) -> Atomicity {
        if hello.contains_key("setName") || hello.get_str("msg").is_ok_and(|msg| msg == "isdbgrid") {
            Atomicity::Transactions
        } else {
            Atomicity::UserLock
        }
    }
}

/// Sessions and services in a MongoDB database. Cheap to clone: clones share the client's
/// connection pool.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    database: Database,
    sessions: Collection<Document>,
    services: Collection<Document>,
    users: Collection<Document>,
    atomicity: Atomicity,
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.database.name())
            .field("collection", &self.sessions.name())
            .field("atomicity", &self.atomicity)
            .finish_non_exhaustive()
    }
}

/// Runs a driver action inside the transaction's session when there is one.
macro_rules! on {
    ($action:expr, $session:expr) => {{
        let action = $action;
        match $session.as_deref_mut() {
            Some(session) => action.session(session).await,
            None => action.await,
        }
    }};
}

/// What one attempt of a multi-step operation came to.
enum Step<T> {
    Done(T),
    Failed(StoreError),
    /// Lost a race without writing anything lasting; start again.
    Again,
}

impl MongoStore {
    /// Connects to the server at `url` (`mongodb://…`, see [`MongoOptions::from_url`]) and keeps
    /// everything in `database`, in the default collections. Creates the indexes if missing.
    pub async fn connect(url: &str, database: &str) -> Result<MongoStore, ConnectError> {
        MongoStore::open(&MongoOptions::from_url(url)?.with_database(database)?).await
    }

    /// Connects as `options` say, creates the indexes if missing, and asks the server whether
    /// it runs transactions.
    pub async fn open(options: &MongoOptions) -> Result<MongoStore, ConnectError> {
        let client = Client::with_options(options.client_options().await?).map_err(ConnectError::Mongo)?;
        let database = client.database(options.database());
        MongoStore::init(client, database, options.collection(), options.expiry_grace()).await
    }

    /// Connects with the original sessman's settings (see [`MongoOptions::from_sessman`]).
    pub async fn from_sessman(settings: &SessmanSettings) -> Result<MongoStore, ConnectError> {
        MongoStore::open(&MongoOptions::from_sessman(settings)?).await
    }

    /// A store on a database handle made by the caller, in the default collection and expiry
    /// grace ([`MongoOptions::DEFAULT_COLLECTION`], [`MongoOptions::DEFAULT_EXPIRY_GRACE`]).
    /// Creates the indexes if missing.
    pub async fn new(database: Database) -> Result<MongoStore, ConnectError> {
        let client = database.client().clone();
        MongoStore::init(client, database, MongoOptions::DEFAULT_COLLECTION, MongoOptions::DEFAULT_EXPIRY_GRACE).await
    }

    async fn init(
        client: Client,
        database: Database,
        collection: &str,
        grace: Duration,
    ) -> Result<MongoStore, ConnectError> {
        let hello = database.run_command(doc! { "hello": 1 }).await.map_err(ConnectError::Mongo)?;
        let atomicity = Atomicity::of_server(&hello);
        let store = MongoStore {
            sessions: database.collection(collection),
            services: database.collection(&format!("{collection}.services")),
            users: database.collection(&format!("{collection}.users")),
            client,
            database,
            atomicity,
        };
        store.create_indexes(grace).await.map_err(ConnectError::Mongo)?;
        Ok(store)
    }

    async fn create_indexes(&self, grace: Duration) -> mongodb::error::Result<()> {
        // Collections written inside transactions must exist beforehand on servers before 4.4.
        for name in [self.sessions.name(), self.users.name()] {
            match self.database.create_collection(name).await {
                Err(e) if !is_namespace_exists(&e) => return Err(e),
                _ => {}
            }
        }
        let ttl = IndexModel::builder()
            .keys(query::expiry_index_keys())
            .options(IndexOptions::builder().name("expires_at_ttl".to_owned()).expire_after(grace).build())
            .build();
        if let Err(e) = self.sessions.create_index(ttl).await {
            // The index exists with another grace period: change it in place.
            let changed = doc! { "collMod": self.sessions.name(), "index": {
                "name": "expires_at_ttl",
                "expireAfterSeconds": i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
            } };
            self.database.run_command(changed).await.map_err(|_| e)?;
        }
        let by_user = IndexModel::builder()
            .keys(query::user_index_keys())
            .options(IndexOptions::builder().name("user_id_created_at".to_owned()).build())
            .build();
        self.sessions.create_index(by_user).await?;
        let idle_users = IndexModel::builder()
            .keys(query::user_seen_index_keys())
            .options(IndexOptions::builder().name("seen_at_ttl".to_owned()).expire_after(USER_TTL).build())
            .build();
        self.users.create_index(idle_users).await?;
        Ok(())
    }

    /// How this store makes multi-document operations atomic on its server.
    pub fn atomicity(&self) -> Atomicity {
        self.atomicity
    }

    /// The database the store keeps its collections in.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The user's sessions that `filter` selects, oldest first, as documents with only the
    /// fields in `projection` (all when `None`).
    async fn user_sessions(
        &self,
        filter: Document,
        projection: Option<Document>,
        session: Option<&mut ClientSession>,
    ) -> mongodb::error::Result<Vec<Document>> {
        let find = self.sessions.find(filter).sort(query::user_order());
        let find = match projection {
            Some(projection) => find.projection(projection),
            None => find,
        };
        match session {
            Some(session) => {
                let mut cursor = find.session(&mut *session).await?;
                cursor.stream(session).try_collect().await
            }
            None => find.await?.try_collect().await,
        }
    }

    async fn create_step(
        &self,
        mut txn: Option<&mut ClientSession>,
        session: &Session,
        limit: UserLimit,
        now: Timestamp,
    ) -> mongodb::error::Result<Created> {
        let existing = on!(
            self.sessions.find_one(doc! { "_id": session.id.as_ref() }).projection(doc! { field::EXPIRES_AT: 1 }),
            txn
        )?;
        if let Some(existing) = existing {
            if is_live(&existing, now) {
                return Ok(Created::IdTaken);
            }
            on!(self.sessions.delete_one(query::dead_by_id(&session.id, now)), txn)?;
        }
        let mut evicted = Vec::new();
        if limit != UserLimit::Unlimited {
            if txn.is_some() {
                on!(
                    self.users
                        .update_one(doc! { "_id": session.user_id.as_ref() }, query::guard_update(now))
                        .upsert(true),
                    txn
                )?;
            }
            let live = self
                .user_sessions(query::user_live(&session.user_id, now), Some(doc! { "_id": 1 }), txn.as_deref_mut())
                .await?;
            let Some(excess) = limit.admit(live.len()) else {
                return Ok(Created::LimitReached);
            };
            for oldest in live.iter().take(excess) {
                let id = oldest.get_str("_id").map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
                evicted.push(id.to_owned());
            }
            if !evicted.is_empty() {
                on!(self.sessions.delete_many(doc! { "_id": { "$in": &evicted } }), txn)?;
            }
        }
        on!(self.sessions.insert_one(encode_session(session)), txn)?;
        let evicted = evicted.iter().filter_map(|id| id.parse().ok()).collect();
        Ok(Created::Created { evicted })
    }

    /// Deletes the sessions of `user` it finds (a session created meanwhile survives) and
    /// returns their `_id` and `expires_at`.
    async fn delete_user_step(
        &self,
        mut txn: Option<&mut ClientSession>,
        user: &UserId,
    ) -> mongodb::error::Result<Vec<Document>> {
        let projection = doc! { "_id": 1, field::EXPIRES_AT: 1 };
        let found = self.user_sessions(query::user_all(user), Some(projection), txn.as_deref_mut()).await?;
        if !found.is_empty() {
            let ids: Vec<Bson> = found.iter().filter_map(|d| d.get("_id").cloned()).collect();
            on!(self.sessions.delete_many(doc! { "_id": { "$in": ids } }), txn)?;
        }
        Ok(found)
    }

    /// Takes the user's lease lock; returns its token.
    async fn lock_user(&self, user: &UserId, now: Timestamp) -> Result<String, StoreError> {
        let token = SessionId::generate().to_string();
        let attempts = LOCK_LEASE.as_millis() / LOCK_RETRY.as_millis();
        for _ in 0..attempts {
            let take =
                self.users.update_one(query::lock_free(user, now), query::lock_take(&token, now, now + LOCK_LEASE));
            match take.upsert(true).await {
                Ok(_) => return Ok(token),
                // Held by someone else: the upsert collided with their lock document.
                Err(e) if is_duplicate_key(&e) => tokio::time::sleep(LOCK_RETRY).await,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(StoreError::Unavailable(format!("the session limit lock of user {user} stayed busy").into()))
    }

    /// Frees the lock if `token` still holds it. A failure is ignored: the lease runs out.
    async fn unlock_user(&self, user: &UserId, token: &str) {
        let _ = self.users.update_one(query::lock_held(user, token), query::lock_release()).await;
    }

    async fn rename_step(
        &self,
        mut txn: Option<&mut ClientSession>,
        old: &SessionId,
        new: &SessionId,
        now: Timestamp,
    ) -> mongodb::error::Result<Step<Renamed>> {
        let Some(stored) = on!(self.sessions.find_one(query::live_by_id(old, now)), txn)? else {
            return Ok(Step::Done(Renamed::NotFound));
        };
        let mut session = match decode_session(&stored) {
            Ok(session) => session,
            Err(e) => return Ok(Step::Failed(e)),
        };
        let read_version = session.version;
        let existing =
            on!(self.sessions.find_one(doc! { "_id": new.as_ref() }).projection(doc! { field::EXPIRES_AT: 1 }), txn)?;
        if let Some(existing) = existing {
            if is_live(&existing, now) {
                return Ok(Step::Done(Renamed::IdTaken));
            }
            on!(self.sessions.delete_one(query::dead_by_id(new, now)), txn)?;
        }
        session.id = new.clone();
        session.version = session.version.next();
        session.touch(now);
        on!(self.sessions.insert_one(encode_session(&session)), txn)?;
        let deleted = on!(self.sessions.delete_one(query::live_at_version(old, read_version, now)), txn)?;
        if deleted.deleted_count == 0 {
            // The old session changed or went away after it was read: the copy is stale.
            on!(self.sessions.delete_one(doc! { "_id": new.as_ref(), field::VERSION: version(session.version) }), txn)?;
            return Ok(Step::Again);
        }
        Ok(Step::Done(Renamed::Renamed(session)))
    }

    /// Deletes `due` if it is still dead at `now`; returns it if this call deleted it.
    async fn purge(&self, due: SessionRef, now: Timestamp) -> Result<Option<SessionRef>, StoreError> {
        let deleted = self
            .sessions
            .find_one_and_delete(query::dead_by_id(&due.id, now))
            .projection(doc! { "_id": 1 })
            .await
            .map_err(store_error)?;
        Ok(deleted.map(|_| due))
    }

    async fn find_live(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let found = self.sessions.find_one(query::live_by_id(id, now)).await.map_err(store_error)?;
        found.as_ref().map(decode_session).transpose()
    }
}

fn is_live(document: &Document, now: Timestamp) -> bool {
    document.get_datetime(field::EXPIRES_AT).is_ok_and(|at| *at > date(now))
}

fn version(v: Version) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let created = match (limit, self.atomicity) {
            (UserLimit::Unlimited, _) => self.create_step(None, session, limit, now).await,
            (_, Atomicity::Transactions) => {
                let mut txn = self.client.start_session().await.map_err(store_error)?;
                let context = (self, session, limit, now);
                txn.start_transaction()
                    .and_run(context, |txn, &mut (store, session, limit, now)| {
                        async move { store.create_step(Some(txn), session, limit, now).await }.boxed()
                    })
                    .await
            }
            (_, Atomicity::UserLock) => {
                let token = self.lock_user(&session.user_id, now).await?;
                let created = self.create_step(None, session, limit, now).await;
                self.unlock_user(&session.user_id, &token).await;
                created
            }
        };
        match created {
            Ok(created) => Ok(created),
            // The unique `_id` refused a session created meanwhile under the same id.
            Err(e) if is_duplicate_key(&e) => Ok(Created::IdTaken),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.find_live(id, now).await
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let touched = self
            .sessions
            .find_one_and_update(query::live_by_id(id, now), query::touch_pipeline(now))
            .return_document(ReturnDocument::After)
            .await
            .map_err(store_error)?;
        touched.as_ref().map(decode_session).transpose()
    }

    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        self.touch(id, change.now).await
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        let now = change.now;
        let PatchOptions { expected, touch, cap, device, writes } = options;
        let changes = match AttributeChanges::of(patch) {
            Ok(changes) => changes,
            Err(rejected) => return Ok(Patched::Rejected(rejected)),
        };
        // MongoDB cannot measure the result as compact JSON inside an update, so under a cap
        // a patch that adds is checked on the session as read, and written only at the
        // version it was checked on (field by field still, so a lost race is a retry, never
        // a lost write).
        let checked = cap.is_some() && patch.adds();
        for _ in 0..ATTEMPTS {
            let at = if checked {
                let Some(current) = self.find_live(id, now).await? else {
                    return Ok(Patched::NotFound);
                };
                match current.clone().patched(patch, options, now) {
                    Patched::Applied(_) => Some(current.version),
                    refused => return Ok(refused),
                }
            } else {
                expected
            };
            let applied = self
                .sessions
                .find_one_and_update(
                    query::patch_filter(id, &changes.increments, at, now),
                    query::patch_modifications(&changes, device, touch, writes, now),
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(store_error)?;
            if let Some(applied) = applied {
                return Ok(Patched::Applied(decode_session(&applied)?));
            }
            if checked {
                // Another write came between the check and this one: check again.
                continue;
            }
            // Nothing matched and nothing was written: the stored session says why.
            let Some(mut current) = self.find_live(id, now).await? else {
                return Ok(Patched::NotFound);
            };
            match current.patched(patch, options, now) {
                // Changed between the two calls so that the patch now applies: try again.
                Patched::Applied(_) => {}
                refused => return Ok(refused),
            }
        }
        Err(StoreError::Other("a patch kept losing races with concurrent writers".into()))
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let now = change.now;
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
        for _ in 0..ATTEMPTS {
            let replaced = self
                .sessions
                .find_one_and_update(
                    query::live_at(id, expected, now),
                    query::replace_modifications(attributes, device, absolute_expires_at),
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(store_error)?;
            if let Some(replaced) = replaced {
                return Ok(Replaced::Applied(decode_session(&replaced)?));
            }
            match self.find_live(id, now).await? {
                None => return Ok(Replaced::NotFound),
                Some(current) if expected.is_some_and(|v| v != current.version) => {
                    return Ok(Replaced::VersionMismatch(current.version));
                }
                Some(_) => {}
            }
        }
        Err(StoreError::Other("a replace kept losing races with concurrent writers".into()))
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        let now = change.now;
        for _ in 0..ATTEMPTS {
            let step = match self.atomicity {
                Atomicity::Transactions => {
                    let mut txn = self.client.start_session().await.map_err(store_error)?;
                    txn.start_transaction()
                        .and_run((self, old, new, now), |txn, &mut (store, old, new, now)| {
                            async move { store.rename_step(Some(txn), old, new, now).await }.boxed()
                        })
                        .await
                }
                Atomicity::UserLock => self.rename_step(None, old, new, now).await,
            };
            match step {
                Ok(Step::Done(renamed)) => return Ok(renamed),
                Ok(Step::Failed(e)) => return Err(e),
                Ok(Step::Again) => {}
                Err(e) if is_duplicate_key(&e) => return Ok(Renamed::IdTaken),
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(StoreError::Other("a rename kept losing races with concurrent writers".into()))
    }

    async fn delete(
        &self,
        id: &SessionId,
        _reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        let now = change.now;
        let deleted = self.sessions.find_one_and_delete(doc! { "_id": id.as_ref() }).await.map_err(store_error)?;
        Ok(deleted.as_ref().map(decode_session).transpose()?.filter(|s| !s.is_expired(now)))
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let find = self.sessions.find(query::user_page(user, page, now)).sort(query::user_order());
        let documents: Vec<Document> = find
            .limit(i64::from(page.limit.get()))
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        documents.iter().map(decode_session).collect()
    }

    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let mut filter = query::all_live(now);
        if let Some(after) = after {
            filter.insert("_id", doc! { "$gt": after.as_ref() });
        }
        first_by_id(&self.sessions, filter, limit).await?.iter().map(decode_session).collect()
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        let groups: Vec<Document> = self
            .sessions
            .aggregate(query::users_starting_with(prefix, limit, now))
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        groups
            .iter()
            .map(|group| {
                let user = group.get_str("_id").map_err(|e| StoreError::Decode(Box::new(e)))?;
                user.parse().map_err(|e: sessanger_core::IdError| StoreError::Decode(e.into()))
            })
            .collect()
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let now = change.now;
        let deleted = match self.atomicity {
            // In a transaction, a session deleted by someone else meanwhile is a write
            // conflict (retried), so every id is reported by exactly one caller.
            Atomicity::Transactions => {
                let mut txn = self.client.start_session().await.map_err(store_error)?;
                txn.start_transaction()
                    .and_run((self, user), |txn, &mut (store, user)| {
                        async move { store.delete_user_step(Some(txn), user).await }.boxed()
                    })
                    .await
            }
            Atomicity::UserLock => self.delete_user_step(None, user).await,
        };
        deleted
            .map_err(store_error)?
            .iter()
            .filter(|d| is_live(d, now))
            .map(|d| document::parse_id(d.get_str("_id").unwrap_or_default()))
            .collect()
    }
}

#[async_trait]
impl Maintenance for MongoStore {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.sessions.count_documents(query::all_live(now)).await.map_err(store_error)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let due: Vec<Document> = self
            .sessions
            .find(query::all_dead(now))
            .sort(doc! { field::EXPIRES_AT: 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! { "_id": 1, field::USER_ID: 1 })
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        // One findOneAndDelete per session: only the caller that really deleted a session
        // reports it, even with two reapers running, and a session whose id was taken again
        // meanwhile (now live) is left alone by the `expires_at <= now` filter.
        let due: Vec<SessionRef> = due.iter().map(decode_ref).collect::<Result<_, _>>()?;
        let purged: Vec<Option<SessionRef>> =
            stream::iter(due).map(|due| self.purge(due, now)).buffer_unordered(PURGE_FAN_OUT).try_collect().await?;
        Ok(purged.into_iter().flatten().collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database.run_command(doc! { "ping": 1 }).await.map(drop).map_err(store_error)
    }
}

#[async_trait]
impl ServiceStore for MongoStore {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        match self.services.insert_one(encode_service(service)).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let found = self.services.find_one(doc! { "_id": id.as_ref() }).await.map_err(store_error)?;
        found.as_ref().map(decode_service).transpose()
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let filter = after.map_or_else(Document::new, |id| doc! { "_id": { "$gt": id.as_ref() } });
        first_by_id(&self.services, filter, limit).await?.iter().map(decode_service).collect()
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let filter = doc! { "_id": service.id.as_ref() };
        let replaced = self.services.replace_one(filter, encode_service(service)).await.map_err(store_error)?;
        Ok(replaced.matched_count == 1)
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let deleted = self.services.delete_one(doc! { "_id": id.as_ref() }).await.map_err(store_error)?;
        Ok(deleted.deleted_count == 1)
    }
}

/// The first `limit` documents of `collection` that `filter` keeps, in `_id` order: a page.
async fn first_by_id(
    collection: &Collection<Document>,
    filter: Document,
    limit: NonZeroU32,
) -> Result<Vec<Document>, StoreError> {
    let found = collection.find(filter).sort(doc! { "_id": 1 }).limit(i64::from(limit.get())).await;
    found.map_err(store_error)?.try_collect().await.map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_sets_and_mongos_run_transactions_and_standalone_servers_do_not() {
        let member = doc! { "isWritablePrimary": true, "setName": "rs0", "maxWireVersion": 21 };
        assert_eq!(Atomicity::of_server(&member), Atomicity::Transactions);
        let mongos = doc! { "isWritablePrimary": true, "msg": "isdbgrid" };
        assert_eq!(Atomicity::of_server(&mongos), Atomicity::Transactions);
        let standalone = doc! { "isWritablePrimary": true, "maxWireVersion": 21 };
        assert_eq!(Atomicity::of_server(&standalone), Atomicity::UserLock);
    }

    #[test]
    fn a_session_is_live_strictly_before_its_deadline() {
        let document = doc! { "expires_at": date(Timestamp::from_millis(1_000)) };
        assert!(is_live(&document, Timestamp::from_millis(999)));
        assert!(!is_live(&document, Timestamp::from_millis(1_000)));
        assert!(!is_live(&doc! {}, Timestamp::from_millis(0)), "a document without a deadline is not live");
    }
}
