//! What both SQL stores share: the dialect seam, statement building, row ↔ [`Session`]
//! mapping, error mapping, and every operation of the contract written once over a
//! [`Dialect`].
//!
//! The engine never touches sqlx rows or argument types: a backend turns a [`Stmt`] (SQL text
//! plus [`Arg`]s plus the [`Kind`]s of the columns it returns) into [`Cell`]s, so the generic
//! code carries no driver bounds and each backend only says how its dialect spells things.

use std::{fmt, future::Future, marker::PhantomData, time::Duration};

use async_trait::async_trait;
use sessanger_core::{
    Attributes, BoxError, Created, Device, Maintenance, Patch, PatchOptions, Patched, Renamed, Replaced, ServiceId,
    ServiceRecord, ServiceStore, Session, SessionId, SessionRef, SessionStore, StoreError, Timestamp, UserId,
    UserLimit, Version,
};
use sqlx::{Database, Pool};

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text (ids, JSON documents, attribute keys and paths).
    Text(String),
    /// Text or SQL `NULL`.
    NullableText(Option<String>),
    /// A 64-bit integer (times in ms, versions, limits).
    Int(i64),
}

/// The SQL type of a returned column, so a backend knows how to read it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Text, never `NULL`.
    Text,
    /// Text or `NULL`.
    NullableText,
    /// A 64-bit integer.
    Int,
}

/// One column of a returned row.
#[derive(Debug, Clone)]
pub enum Cell {
    /// A text column (`None` for `NULL`).
    Text(Option<String>),
    /// An integer column.
    Int(i64),
}

/// A statement with its arguments and the shape of the rows it returns.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// The SQL text, with the dialect's placeholders.
    pub sql: String,
    /// The values of the placeholders, in order.
    pub args: Vec<Arg>,
    /// The kinds of the returned columns (empty for statements returning nothing).
    pub shape: &'static [Kind],
}

mod sealed {
    // The supertrait that keeps `Dialect` closed: its methods are the engine's internals,
    // not an extension point.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A SQL dialect the stores speak: PostgreSQL ([`PgDialect`](crate::PgDialect)) or
/// MySQL/MariaDB ([`MySqlDialect`](crate::MySqlDialect)). Sealed: its methods are the
/// stores' internals.
pub trait Dialect: Sealed + fmt::Debug + Send + Sync + Sized + 'static {
    /// The sqlx driver.
    type DB: Database;

    /// Whether `UPDATE`/`DELETE ... RETURNING` exists; without it a write and the read of
    /// its result share a transaction.
    #[doc(hidden)]
    const RETURNING: bool;

    /// The `n`-th placeholder (from 1).
    #[doc(hidden)]
    fn placeholder(n: usize) -> String;
    /// A JSON document column read as text.
    #[doc(hidden)]
    fn json_text(column: &str) -> String;
    /// A placeholder whose text is a JSON document, as a JSON value.
    #[doc(hidden)]
    fn json_arg(placeholder: &str) -> String;
    /// How an attribute key is passed to the JSON functions (a key or a JSON path).
    #[doc(hidden)]
    fn key_arg(key: &str) -> String;
    /// `doc` without the attribute named by the key placeholder `key`.
    #[doc(hidden)]
    fn json_remove(doc: &str, key: &str) -> String;
    /// `doc` with the attribute named by `key` set to the JSON value `value`.
    #[doc(hidden)]
    fn json_set(doc: &str, key: &str, value: &str) -> String;
    /// The attribute `key` of `doc` plus `by`, as an exact number; SQL `NULL` when the
    /// attribute is present but not an integer. Binds what it needs through `sql`.
    #[doc(hidden)]
    fn int_sum(sql: &mut SqlBuilder<Self>, doc: &str, key: &str, by: i64) -> String;
    /// An exact integer expression as a JSON value.
    #[doc(hidden)]
    fn int_json(expr: &str) -> String;
    /// A statement run before reading a user's sessions in `create` under a limit, to
    /// serialize creates of one user even while they have no session row to lock.
    #[doc(hidden)]
    fn lock_user(user: &UserId) -> Option<Stmt>;

    /// Runs `stmt` on `conn` and reads every returned row as `stmt.shape` says.
    #[doc(hidden)]
    fn fetch(
        conn: &mut <Self::DB as Database>::Connection,
        stmt: &Stmt,
    ) -> impl Future<Output = Result<Vec<Vec<Cell>>, sqlx::Error>> + Send;
    /// Runs `stmt` on `conn`; the number of rows it matched.
    #[doc(hidden)]
    fn execute(
        conn: &mut <Self::DB as Database>::Connection,
        stmt: &Stmt,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    /// Applies the embedded migrations not yet applied.
    #[doc(hidden)]
    fn migrate(pool: &Pool<Self::DB>) -> impl Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send;
}

/// Builds a statement's text and arguments together, so a placeholder always matches its
/// argument.
#[derive(Debug)]
pub struct SqlBuilder<D> {
    args: Vec<Arg>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> SqlBuilder<D> {
    pub(crate) fn new() -> Self {
        SqlBuilder { args: Vec::new(), dialect: PhantomData }
    }

    /// Binds `arg` and returns its placeholder.
    pub(crate) fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        D::placeholder(self.args.len())
    }

    pub(crate) fn text(&mut self, s: impl Into<String>) -> String {
        self.arg(Arg::Text(s.into()))
    }

    pub(crate) fn int(&mut self, i: i64) -> String {
        self.arg(Arg::Int(i))
    }

    pub(crate) fn json(&mut self, json: String) -> String {
        let placeholder = self.text(json);
        D::json_arg(&placeholder)
    }

    /// `IN (...)` over `ids`; never empty (an empty list matches nothing).
    fn id_list<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> String {
        let list: Vec<String> = ids.into_iter().map(|id| self.text(id)).collect();
        if list.is_empty() { "(NULL)".to_owned() } else { format!("({})", list.join(", ")) }
    }

    pub(crate) fn finish(self, sql: String, shape: &'static [Kind]) -> Stmt {
        Stmt { sql, args: self.args, shape }
    }
}

const SESSION_SHAPE: &[Kind] = &[
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Text,
    Kind::NullableText,
    Kind::Text,
    Kind::Int,
];
const REF_SHAPE: &[Kind] = &[Kind::Text, Kind::Text];
const SERVICE_SHAPE: &[Kind] = &[Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int];
const ONE_INT: &[Kind] = &[Kind::Int];
const ID_AND_EXPIRY: &[Kind] = &[Kind::Text, Kind::Int];

/// The session columns in [`SESSION_SHAPE`] order.
fn session_columns<D: Dialect>() -> String {
    format!(
        "id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at, {} AS device, \
         created_by, {} AS attributes, version",
        D::json_text("device"),
        D::json_text("attributes")
    )
}

fn service_columns<D: Dialect>() -> String {
    format!("id, name, {} AS permissions, secret_sha256, created_at", D::json_text("permissions"))
}

/// A sqlx error as a store error, keeping it as the source: a lost or unreachable server (or
/// an exhausted pool) may pass, so it is `Unavailable`; a value that does not read is
/// `Decode`; anything else is `Other`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match error {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(error.into())
        }
        E::ColumnDecode { .. } | E::Decode(_) => StoreError::Decode(error.into()),
        E::Database(ref db) if db.code().is_some_and(|code| lost_connection(&code)) => {
            StoreError::Unavailable(error.into())
        }
        other => StoreError::Other(other.into()),
    }
}

/// SQLSTATEs that mean the server went away or is shutting down (class 08: connection
/// exception; 57P0x: PostgreSQL operator intervention such as shutdown; 08S01: MySQL's
/// communication link failure).
fn lost_connection(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0")
}

/// The pool `connect` builds: sqlx's defaults (10 connections), but a caller waits at most
/// 10 s for a connection, then gets `Unavailable`, rather than hanging on a dead server for
/// sqlx's 30 s.
pub(crate) fn pool_options<DB: Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new().acquire_timeout(Duration::from_secs(10))
}

/// The URL without its password, for error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A deadlock or serialization failure: the transaction was rolled back and may simply be
/// run again. InnoDB gap locks make concurrent first creates of one user deadlock.
fn is_retryable(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40001" || c == "40P01"))
}

fn decode_error(what: impl Into<BoxError>) -> StoreError {
    StoreError::Decode(what.into())
}

fn text(cell: Option<&Cell>) -> Result<Option<&str>, StoreError> {
    match cell {
        Some(Cell::Text(t)) => Ok(t.as_deref()),
        _ => Err(decode_error("expected a text column")),
    }
}

fn required_text(cell: Option<&Cell>) -> Result<&str, StoreError> {
    text(cell)?.ok_or_else(|| decode_error("unexpected NULL"))
}

fn int(cell: Option<&Cell>) -> Result<i64, StoreError> {
    match cell {
        Some(Cell::Int(i)) => Ok(*i),
        _ => Err(decode_error("expected an integer column")),
    }
}

fn unsigned(cell: Option<&Cell>, what: &str) -> Result<u64, StoreError> {
    u64::try_from(int(cell)?).map_err(|_| decode_error(format!("negative {what}")))
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(decode_error)
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(decode_error)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.into()))
}

/// A row in [`SESSION_SHAPE`] as a session.
fn session_from(row: &[Cell]) -> Result<Session, StoreError> {
    let mut cells = row.iter();
    Ok(Session {
        id: parse(required_text(cells.next())?)?,
        user_id: parse(required_text(cells.next())?)?,
        created_at: Timestamp::from_millis(int(cells.next())?),
        last_access_at: Timestamp::from_millis(int(cells.next())?),
        idle_ttl: Duration::from_millis(unsigned(cells.next(), "idle_ttl_ms")?),
        absolute_expires_at: Timestamp::from_millis(int(cells.next())?),
        expires_at: Timestamp::from_millis(int(cells.next())?),
        device: json(required_text(cells.next())?)?,
        created_by: text(cells.next())?.map(parse).transpose()?,
        attributes: json(required_text(cells.next())?)?,
        version: Version(unsigned(cells.next(), "version")?),
    })
}

fn service_from(row: &[Cell]) -> Result<ServiceRecord, StoreError> {
    let mut cells = row.iter();
    Ok(ServiceRecord {
        id: parse(required_text(cells.next())?)?,
        name: required_text(cells.next())?.to_owned(),
        permissions: json(required_text(cells.next())?)?,
        secret_sha256: required_text(cells.next())?.to_owned(),
        created_at: Timestamp::from_millis(int(cells.next())?),
    })
}

fn sessions_from(rows: &[Vec<Cell>]) -> Result<Vec<Session>, StoreError> {
    rows.iter().map(|row| session_from(row)).collect()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The `SET` clause that renews the idle deadline from `now`, never past the absolute
/// deadline, as [`Session::touch`] does.
fn touch_clause<D: Dialect>(sql: &mut SqlBuilder<D>, now: Timestamp) -> String {
    let (access, from) = (sql.int(now.as_millis()), sql.int(now.as_millis()));
    format!("last_access_at = {access}, expires_at = LEAST({from} + idle_ttl_ms, absolute_expires_at)")
}

/// The new attributes of a patch as one SQL expression over the column `attributes`, in
/// the order of [`Session::apply`]: removals, then sets, then increments, each increment
/// reading the value stored before the patch.
///
/// `None` if an increment's amount is not an integer: then no statement can apply it.
///
/// Arguments are bound in the order their placeholders appear in the text, since MySQL's
/// `?` are positional; a nested call wraps `doc` and adds its own arguments to its right.
fn patch_expr<D: Dialect>(sql: &mut SqlBuilder<D>, patch: &Patch) -> Result<Option<String>, StoreError> {
    let mut doc = "attributes".to_owned();
    for key in &patch.remove {
        let key = sql.text(D::key_arg(key));
        doc = D::json_remove(&doc, &key);
    }
    for (key, value) in &patch.set {
        let key = sql.text(D::key_arg(key));
        let value = sql.json(encode(value)?);
        doc = D::json_set(&doc, &key, &value);
    }
    for (key, by) in &patch.incr {
        let Some(by) = by.as_i64() else { return Ok(None) };
        let path = sql.text(D::key_arg(key));
        let value = D::int_json(&D::int_sum(sql, "attributes", key, by));
        doc = D::json_set(&doc, &path, &value);
    }
    Ok(Some(doc))
}

/// The conditions under which a patch's increments apply: each lands on an absent key or an
/// integer, and the sum stays in range. Checked in the `WHERE` of the same `UPDATE`, so a
/// rejected patch writes nothing.
fn patch_conditions<D: Dialect>(sql: &mut SqlBuilder<D>, patch: &Patch) -> Vec<String> {
    let increments = patch.incr.iter().filter_map(|(key, by)| Some((key, by.as_i64()?)));
    increments
        .map(|(key, by)| format!("({}) BETWEEN {} AND {}", D::int_sum(sql, "attributes", key, by), i64::MIN, i64::MAX))
        .collect()
}

/// Why a patch matched no row, from the session as it is now; `None` if nothing forbids it
/// any more (a concurrent write changed the session in between), so it is tried again.
fn explain_patch(current: Option<Session>, patch: &Patch, expected: Option<Version>) -> Option<Patched> {
    let Some(mut session) = current else { return Some(Patched::NotFound) };
    if expected.is_some_and(|v| v != session.version) {
        return Some(Patched::VersionMismatch(session.version));
    }
    session.apply(patch).err().map(Patched::Rejected)
}

/// How often an operation is run again after a deadlock or a race before giving up.
const ATTEMPTS: usize = 64;

/// Waits a random 0 to 2^attempt ms (at most 256 ms) before running a transaction again
/// after a deadlock, so the transactions that deadlocked do not meet again in lockstep. The
/// window keeps growing past the first few attempts: 40 concurrent first creates of one user
/// on InnoDB deadlock in waves, and a window capped at 32 ms let one of them lose all 64.
async fn backoff(attempt: usize) {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded per instance: randomness enough for jitter, without a dependency.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let ceiling = 1u64 << attempt.min(8);
    tokio::time::sleep(Duration::from_millis(random % (ceiling + 1))).await;
}

/// A session store on a SQL database: [`PostgresStore`](crate::PostgresStore) or
/// [`MySqlStore`](crate::MySqlStore).
///
/// Every method of the contract is one statement, or one transaction where a dialect needs
/// more; see the crate docs for which.
pub struct SqlStore<D: Dialect> {
    pool: Pool<D::DB>,
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore").field("dialect", &std::any::type_name::<D>()).finish_non_exhaustive()
    }
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore { pool: self.pool.clone() }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store on a ready pool. Does not run migrations: call [`migrate`](Self::migrate)
    /// (or use `connect`, which does).
    pub fn new(pool: Pool<D::DB>) -> Self {
        SqlStore { pool }
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool<D::DB> {
        &self.pool
    }

    /// Applies the migrations embedded in the binary that the database has not seen yet;
    /// running it again is a no-op, and concurrent runs wait for each other.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        D::migrate(&self.pool).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(e) => store_error(e),
            other => StoreError::Other(other.into()),
        })
    }

    async fn fetch(&self, stmt: &Stmt) -> Result<Vec<Vec<Cell>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        D::fetch(&mut conn, stmt).await.map_err(store_error)
    }

    async fn execute(&self, stmt: &Stmt) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        D::execute(&mut conn, stmt).await.map_err(store_error)
    }

    fn select_live(id: &SessionId, now: Timestamp) -> Stmt {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!(
            "SELECT {} FROM sessions WHERE id = {} AND expires_at > {}",
            session_columns::<D>(),
            sql.text(id.as_ref()),
            sql.int(now.as_millis())
        );
        sql.finish(text, SESSION_SHAPE)
    }

    /// Runs an `UPDATE sessions SET <set> WHERE id = <id> AND expires_at > <now> AND <conditions>`
    /// (`sql` holds the arguments of `set`; `conditions` binds its own after id and now)
    /// and reads the session as it is after it: whether the update matched, and the live
    /// session. With `RETURNING` that is one statement (plus a read when nothing matched, to
    /// tell why); without, the update and the read share a transaction.
    async fn update_then_read(
        &self,
        mut sql: SqlBuilder<D>,
        set: &str,
        conditions: impl FnOnce(&mut SqlBuilder<D>) -> Vec<String>,
        id: &SessionId,
        now: Timestamp,
    ) -> Result<(bool, Option<Session>), StoreError> {
        let mut clause = format!("id = {} AND expires_at > {}", sql.text(id.as_ref()), sql.int(now.as_millis()));
        for condition in conditions(&mut sql) {
            clause.push_str(" AND ");
            clause.push_str(&condition);
        }
        let update = format!("UPDATE sessions SET {set} WHERE {clause}");
        if D::RETURNING {
            let stmt = sql.finish(format!("{update} RETURNING {}", session_columns::<D>()), SESSION_SHAPE);
            if let Some(row) = self.fetch(&stmt).await?.first() {
                return Ok((true, Some(session_from(row)?)));
            }
            let current = self.fetch(&Self::select_live(id, now)).await?;
            return Ok((false, current.first().map(|row| session_from(row)).transpose()?));
        }
        let stmt = sql.finish(update, &[]);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let matched = D::execute(&mut tx, &stmt).await.map_err(store_error)? > 0;
        let current = D::fetch(&mut tx, &Self::select_live(id, now)).await.map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok((matched, current.first().map(|row| session_from(row)).transpose()?))
    }

    /// Deletes the sessions matching `clause` (with `tail`, e.g. an order and a limit) and
    /// returns them as rows of `shape`, in one statement with `RETURNING`, else in one
    /// transaction that locks the rows, reads them and deletes them by id.
    async fn delete_returning(
        &self,
        sql: SqlBuilder<D>,
        clause: &str,
        tail: &str,
        shape: &'static [Kind],
        columns: &str,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        if D::RETURNING {
            let text = if tail.is_empty() {
                format!("DELETE FROM sessions WHERE {clause} RETURNING {columns}")
            } else {
                // A bounded delete picks its rows in a subquery; SKIP LOCKED lets two purgers
                // share the work instead of waiting on each other.
                format!(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE {clause} {tail} FOR UPDATE SKIP LOCKED) \
                     RETURNING {columns}"
                )
            };
            return self.fetch(&sql.finish(text, shape)).await;
        }
        let lock = if tail.is_empty() { "FOR UPDATE" } else { "FOR UPDATE SKIP LOCKED" };
        let select = sql.finish(format!("SELECT {columns} FROM sessions WHERE {clause} {tail} {lock}"), shape);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let rows = D::fetch(&mut tx, &select).await.map_err(store_error)?;
        if !rows.is_empty() {
            let mut sql = SqlBuilder::<D>::new();
            let ids = rows.iter().map(|row| match row.first() {
                Some(Cell::Text(Some(id))) => id.as_str(),
                _ => "",
            });
            let list = sql.id_list(ids);
            let delete = sql.finish(format!("DELETE FROM sessions WHERE id IN {list}"), &[]);
            D::execute(&mut tx, &delete).await.map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(rows)
    }

    fn insert(session: &Session) -> Result<Stmt, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let values = [
            sql.text(session.id.as_ref()),
            sql.text(session.user_id.as_ref()),
            sql.int(session.created_at.as_millis()),
            sql.int(session.last_access_at.as_millis()),
            sql.int(ms(session.idle_ttl)),
            sql.int(session.absolute_expires_at.as_millis()),
            sql.int(session.expires_at.as_millis()),
            sql.json(encode(&session.device)?),
            sql.arg(Arg::NullableText(session.created_by.as_ref().map(|s| s.as_ref().to_owned()))),
            sql.json(encode(&session.attributes)?),
            sql.int(i64::try_from(session.version.0).map_err(|e| StoreError::Encode(e.into()))?),
        ];
        let text = format!(
            "INSERT INTO sessions (id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, \
             expires_at, device, created_by, attributes, version) VALUES ({})",
            values.join(", ")
        );
        Ok(sql.finish(text, &[]))
    }

    /// Deletes the dead session with this id, if any; the ids in `also` too.
    fn delete_dead_twin(id: &SessionId, now: Timestamp, also: &[SessionId]) -> Stmt {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!(
            "DELETE FROM sessions WHERE (id = {} AND expires_at <= {}) OR id IN {}",
            sql.text(id.as_ref()),
            sql.int(now.as_millis()),
            sql.id_list(also.iter().map(AsRef::as_ref))
        );
        sql.finish(text, &[])
    }

    /// `create` without a limit: one `INSERT`. Only if the id is taken, a dead session with
    /// that id is deleted and the insert tried again; a live one is never touched.
    async fn create_unlimited(&self, session: &Session, now: Timestamp) -> Result<Created, StoreError> {
        let insert = Self::insert(session)?;
        for _ in 0..2 {
            match self.execute(&insert).await {
                Ok(_) => return Ok(Created::Created { evicted: Vec::new() }),
                Err(StoreError::Other(e)) if e.downcast_ref().is_some_and(is_unique_violation) => {}
                Err(e) => return Err(e),
            }
            if self.execute(&Self::delete_dead_twin(&session.id, now, &[])).await? == 0 {
                return Ok(Created::IdTaken);
            }
        }
        Ok(Created::IdTaken)
    }

    /// `create` under a limit: one transaction that locks the user's sessions, decides with
    /// [`UserLimit::admit`], evicts, and inserts. A concurrent create for the same user waits
    /// for the lock, so it counts this one.
    async fn create_limited(
        &self,
        session: &Session,
        limit: UserLimit,
        now: Timestamp,
    ) -> Result<Result<Created, sqlx::Error>, StoreError> {
        let insert = Self::insert(session)?;
        let lock = D::lock_user(&session.user_id);
        let mut sql = SqlBuilder::<D>::new();
        let text = format!(
            "SELECT id, expires_at FROM sessions WHERE user_id = {} ORDER BY created_at, id FOR UPDATE",
            sql.text(session.user_id.as_ref())
        );
        let select = sql.finish(text, ID_AND_EXPIRY);
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(e) => return Ok(Err(e)),
        };
        let outcome = async {
            if let Some(lock) = &lock {
                D::fetch(&mut tx, lock).await?;
            }
            let mut live = Vec::new();
            for row in D::fetch(&mut tx, &select).await? {
                if let [Cell::Text(Some(id)), Cell::Int(expires_at)] = row.as_slice()
                    && *expires_at > now.as_millis()
                {
                    live.push(id.clone());
                }
            }
            if live.iter().any(|id| id == session.id.as_ref()) {
                return Ok(Created::IdTaken);
            }
            let Some(excess) = limit.admit(live.len()) else { return Ok(Created::LimitReached) };
            let evicted: Vec<SessionId> = live.iter().take(excess).filter_map(|id| id.parse().ok()).collect();
            D::execute(&mut tx, &Self::delete_dead_twin(&session.id, now, &evicted)).await?;
            match D::execute(&mut tx, &insert).await {
                Ok(_) => Ok(Created::Created { evicted }),
                Err(e) if is_unique_violation(&e) => Ok(Created::IdTaken),
                Err(e) => Err(e),
            }
        }
        .await;
        match outcome {
            Ok(created @ Created::Created { .. }) => Ok(tx.commit().await.map(|()| created)),
            // Nothing to keep: a rollback (also by dropping) leaves the store as it was.
            Ok(refused) => Ok(tx.rollback().await.map(|()| refused)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn rename_once(&self, old: &SessionId, new: &SessionId, now: Timestamp) -> Result<Renamed, sqlx::Error> {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!(
            "UPDATE sessions SET id = {}, version = version + 1, {} WHERE id = {} AND expires_at > {}",
            sql.text(new.as_ref()),
            touch_clause(&mut sql, now),
            sql.text(old.as_ref()),
            sql.int(now.as_millis())
        );
        let update = sql.finish(text, &[]);
        let mut tx = self.pool.begin().await?;
        D::execute(&mut tx, &Self::delete_dead_twin(new, now, &[])).await?;
        let matched = match D::execute(&mut tx, &update).await {
            Ok(n) => n > 0,
            Err(e) if is_unique_violation(&e) => return Ok(Renamed::IdTaken),
            Err(e) => return Err(e),
        };
        if !matched {
            return Ok(Renamed::NotFound);
        }
        let rows = D::fetch(&mut tx, &Self::select_live(new, now)).await?;
        tx.commit().await?;
        match rows.first().map(|row| session_from(row)) {
            Some(Ok(session)) => Ok(Renamed::Renamed(session)),
            Some(Err(e)) => Err(sqlx::Error::Decode(e.into())),
            None => Ok(Renamed::NotFound),
        }
    }
}

#[async_trait]
impl<D: Dialect> SessionStore for SqlStore<D> {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        if limit == UserLimit::Unlimited {
            return self.create_unlimited(session, now).await;
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if last.is_some() {
                backoff(attempt).await;
            }
            match self.create_limited(session, limit, now).await? {
                Ok(created) => return Ok(created),
                Err(e) if is_retryable(&e) => last = Some(e),
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(store_error(last.expect("at least one attempt")))
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.fetch(&Self::select_live(id, now)).await?.first().map(|row| session_from(row)).transpose()
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let set = touch_clause(&mut sql, now);
        Ok(self.update_then_read(sql, &set, |_| Vec::new(), id, now).await?.1)
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions,
        now: Timestamp,
    ) -> Result<Patched, StoreError> {
        let PatchOptions { expected, touch, .. } = options;
        for _ in 0..ATTEMPTS {
            let mut sql = SqlBuilder::<D>::new();
            let Some(attributes) = patch_expr(&mut sql, patch)? else {
                // An increment by a non-integer: nothing to run; say why from the session.
                let current = self.load(id, now).await?;
                return Ok(explain_patch(current, patch, expected).unwrap_or(Patched::NotFound));
            };
            let mut set = format!("attributes = {attributes}, version = version + 1");
            if touch {
                set = format!("{set}, {}", touch_clause(&mut sql, now));
            }
            let conditions = |sql: &mut SqlBuilder<D>| {
                let mut conditions = patch_conditions(sql, patch);
                if let Some(expected) = expected {
                    conditions.push(format!("version = {}", sql.int(i64::try_from(expected.0).unwrap_or(i64::MAX))));
                }
                conditions
            };
            match self.update_then_read(sql, &set, conditions, id, now).await? {
                (true, Some(session)) => return Ok(Patched::Applied(session)),
                (true, None) => return Ok(Patched::NotFound),
                (false, current) => {
                    if let Some(outcome) = explain_patch(current, patch, expected) {
                        return Ok(outcome);
                    }
                }
            }
        }
        Err(StoreError::Other("a patch kept racing with concurrent writes".into()))
    }

    async fn replace(
        &self,
        id: &SessionId,
        attributes: &Attributes,
        device: &Device,
        expected: Version,
        now: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let set = format!(
            "attributes = {}, device = {}, version = version + 1",
            sql.json(encode(attributes)?),
            sql.json(encode(device)?)
        );
        let condition = |sql: &mut SqlBuilder<D>| {
            vec![format!("version = {}", sql.int(i64::try_from(expected.0).unwrap_or(i64::MAX)))]
        };
        Ok(match self.update_then_read(sql, &set, condition, id, now).await? {
            (true, Some(session)) => Replaced::Applied(session),
            (_, None) => Replaced::NotFound,
            (false, Some(current)) => Replaced::VersionMismatch(current.version),
        })
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, now: Timestamp) -> Result<Renamed, StoreError> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if last.is_some() {
                backoff(attempt).await;
            }
            match self.rename_once(old, new, now).await {
                Ok(renamed) => return Ok(renamed),
                Err(e) if is_retryable(&e) => last = Some(e),
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(store_error(last.expect("at least one attempt")))
    }

    async fn delete(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let clause = format!("id = {}", sql.text(id.as_ref()));
        let rows = self.delete_returning(sql, &clause, "", SESSION_SHAPE, &session_columns::<D>()).await?;
        Ok(rows.first().map(|row| session_from(row)).transpose()?.filter(|s| !s.is_expired(now)))
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!(
            "SELECT {} FROM sessions WHERE user_id = {} AND expires_at > {} ORDER BY created_at, id",
            session_columns::<D>(),
            sql.text(user.as_ref()),
            sql.int(now.as_millis())
        );
        sessions_from(&self.fetch(&sql.finish(text, SESSION_SHAPE)).await?)
    }

    async fn delete_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let clause = format!("user_id = {}", sql.text(user.as_ref()));
        let rows = self.delete_returning(sql, &clause, "", ID_AND_EXPIRY, "id, expires_at").await?;
        let mut live = Vec::new();
        for row in &rows {
            if int(row.get(1))? > now.as_millis() {
                live.push(parse(required_text(row.first())?)?);
            }
        }
        Ok(live)
    }
}

#[async_trait]
impl<D: Dialect> Maintenance for SqlStore<D> {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!("SELECT COUNT(*) FROM sessions WHERE expires_at > {}", sql.int(now.as_millis()));
        let rows = self.fetch(&sql.finish(text, ONE_INT)).await?;
        unsigned(rows.first().and_then(|row| row.first()), "count")
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut sql = SqlBuilder::<D>::new();
        let clause = format!("expires_at <= {}", sql.int(now.as_millis()));
        // Soonest first through the expiry index, so a batch reads only due entries.
        let tail = format!("ORDER BY expires_at LIMIT {}", sql.int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let rows = self.delete_returning(sql, &clause, &tail, REF_SHAPE, "id, user_id").await?;
        // A purged row whose ids no longer parse is gone all the same; there is no one to tell.
        Ok(rows
            .iter()
            .filter_map(|row| {
                let id = required_text(row.first()).ok()?.parse().ok()?;
                let user_id = required_text(row.get(1)).ok()?.parse().ok()?;
                Some(SessionRef { id, user_id })
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.fetch(&SqlBuilder::<D>::new().finish("SELECT 1".to_owned(), &[])).await.map(drop)
    }
}

#[async_trait]
impl<D: Dialect> ServiceStore for SqlStore<D> {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!(
            "INSERT INTO services (id, name, permissions, secret_sha256, created_at) VALUES ({}, {}, {}, {}, {})",
            sql.text(service.id.as_ref()),
            sql.text(service.name.clone()),
            sql.json(encode(&service.permissions)?),
            sql.text(service.secret_sha256.clone()),
            sql.int(service.created_at.as_millis())
        );
        match self.execute(&sql.finish(text, &[])).await {
            Ok(_) => Ok(true),
            Err(StoreError::Other(e)) if e.downcast_ref().is_some_and(is_unique_violation) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!("SELECT {} FROM services WHERE id = {}", service_columns::<D>(), sql.text(id.as_ref()));
        self.fetch(&sql.finish(text, SERVICE_SHAPE)).await?.first().map(|row| service_from(row)).transpose()
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let text = format!("SELECT {} FROM services ORDER BY id", service_columns::<D>());
        let rows = self.fetch(&SqlBuilder::<D>::new().finish(text, SERVICE_SHAPE)).await?;
        rows.iter().map(|row| service_from(row)).collect()
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let mut sql = SqlBuilder::<D>::new();
        let text = format!("DELETE FROM services WHERE id = {}", sql.text(id.as_ref()));
        Ok(self.execute(&sql.finish(text, &[])).await? > 0)
    }
}

/// Implements the I/O methods of [`Dialect`] for a concrete sqlx driver: the same code for
/// both, written once, instantiated where the driver's types are known.
macro_rules! driver_io {
    ($db:ty, $migrator:expr) => {
        async fn fetch(
            conn: &mut <$db as sqlx::Database>::Connection,
            stmt: &$crate::shared::Stmt,
        ) -> Result<Vec<Vec<$crate::shared::Cell>>, sqlx::Error> {
            use sqlx::Row as _;
            let rows = Self::bind(stmt).fetch_all(&mut *conn).await?;
            rows.iter()
                .map(|row| {
                    stmt.shape
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| {
                            Ok(match kind {
                                $crate::shared::Kind::Text => $crate::shared::Cell::Text(Some(row.try_get(i)?)),
                                $crate::shared::Kind::NullableText => $crate::shared::Cell::Text(row.try_get(i)?),
                                $crate::shared::Kind::Int => $crate::shared::Cell::Int(row.try_get(i)?),
                            })
                        })
                        .collect()
                })
                .collect()
        }

        async fn execute(
            conn: &mut <$db as sqlx::Database>::Connection,
            stmt: &$crate::shared::Stmt,
        ) -> Result<u64, sqlx::Error> {
            Ok(Self::bind(stmt).execute(&mut *conn).await?.rows_affected())
        }

        async fn migrate(pool: &sqlx::Pool<$db>) -> Result<(), sqlx::migrate::MigrateError> {
            static MIGRATOR: sqlx::migrate::Migrator = $migrator;
            MIGRATOR.run(pool).await
        }
    };
}
pub(crate) use driver_io;

/// The statement as a sqlx query with its arguments bound.
macro_rules! driver_bind {
    ($db:ty) => {
        fn bind(stmt: &$crate::shared::Stmt) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(stmt.sql.clone()));
            for arg in &stmt.args {
                query = match arg {
                    $crate::shared::Arg::Text(s) => query.bind(s.clone()),
                    $crate::shared::Arg::NullableText(s) => query.bind(s.clone()),
                    $crate::shared::Arg::Int(i) => query.bind(*i),
                };
            }
            query
        }
    };
}
pub(crate) use driver_bind;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session() -> Session {
        let user: UserId = "u".parse().unwrap();
        Session::new(
            SessionId::generate_for(&user),
            user,
            Timestamp::from_millis(0),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
    }

    #[test]
    fn a_failed_patch_is_explained_from_the_current_session() {
        let patch = Patch::default().incr("name", 1);
        assert_eq!(explain_patch(None, &patch, None), Some(Patched::NotFound));
        let mut s = session();
        assert_eq!(
            explain_patch(Some(s.clone()), &patch, Some(Version(7))),
            Some(Patched::VersionMismatch(Version(1)))
        );
        assert_eq!(explain_patch(Some(s.clone()), &patch, None), None, "nothing forbids it: try again");
        s.attributes.insert("name".into(), json!("bob"));
        assert!(matches!(explain_patch(Some(s), &patch, None), Some(Patched::Rejected(_))));
    }

    fn patch() -> Patch {
        Patch::default().set("a", json!({"x": 1})).set("b\"q", json!("s")).remove("c").incr("n", 2).incr("m", -1)
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_patch_sql_binds_one_argument_per_placeholder_in_order() {
        let mut sql = SqlBuilder::<crate::MySqlDialect>::new();
        let doc = patch_expr(&mut sql, &patch()).unwrap().unwrap();
        let conditions = patch_conditions(&mut sql, &patch()).join(" AND ");
        let stmt = sql.finish(format!("{doc} {conditions}"), &[]);
        assert_eq!(stmt.sql.matches('?').count(), stmt.args.len());
        // The first argument is the first placeholder's: the removed key's path.
        assert!(matches!(&stmt.args[0], Arg::Text(path) if path == "$.\"c\""));
        assert!(stmt.sql.starts_with("JSON_SET(JSON_SET(JSON_SET(JSON_SET(JSON_REMOVE(attributes, ?)"));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_patch_sql_numbers_every_argument() {
        let mut sql = SqlBuilder::<crate::PgDialect>::new();
        let doc = patch_expr(&mut sql, &patch()).unwrap().unwrap();
        let stmt = sql.finish(doc, &[]);
        let highest = (1..=stmt.args.len()).rev().find(|n| stmt.sql.contains(&format!("${n}"))).unwrap();
        assert_eq!(highest, stmt.args.len());
        assert!(stmt.sql.contains("jsonb_set(") && stmt.sql.contains("(attributes - $1)"));
    }

    #[test]
    fn an_increment_by_a_non_integer_builds_no_statement() {
        let mut patch = Patch::default();
        patch.incr.insert("n".into(), json!(1.5));
        #[cfg(feature = "postgres")]
        assert_eq!(patch_expr(&mut SqlBuilder::<crate::PgDialect>::new(), &patch).unwrap(), None);
        #[cfg(feature = "mysql")]
        assert_eq!(patch_expr(&mut SqlBuilder::<crate::MySqlDialect>::new(), &patch).unwrap(), None);
    }

    #[test]
    fn a_session_row_round_trips() {
        let mut s = session();
        s.attributes.insert("k".into(), json!([1, {"a": null}]));
        s.created_by = Some("web".parse().unwrap());
        let row = vec![
            Cell::Text(Some(s.id.to_string())),
            Cell::Text(Some(s.user_id.to_string())),
            Cell::Int(s.created_at.as_millis()),
            Cell::Int(s.last_access_at.as_millis()),
            Cell::Int(ms(s.idle_ttl)),
            Cell::Int(s.absolute_expires_at.as_millis()),
            Cell::Int(s.expires_at.as_millis()),
            Cell::Text(Some(encode(&s.device).unwrap())),
            Cell::Text(Some("web".into())),
            Cell::Text(Some(encode(&s.attributes).unwrap())),
            Cell::Int(1),
        ];
        assert_eq!(session_from(&row).unwrap(), s);
        let mut bad = row;
        bad[9] = Cell::Text(Some("[1]".into()));
        assert!(matches!(session_from(&bad), Err(StoreError::Decode(_))));
    }
}
