//! [`MySqlStore`]: every statement MySQL or MariaDB receives, as it receives it.
//!
//! Attributes are `JSON` (LONGTEXT with a validity check on MariaDB), changed in place with
//! `JSON_REMOVE` and `JSON_SET` inside the one `UPDATE` that also checks the version. That
//! `UPDATE` is the one statement built at run time, since `JSON_SET` takes one argument pair
//! per key (with [`QueryBuilder`]); so is the id list of a batch delete. There is no
//! `UPDATE ... RETURNING`, so a write and the read of its result share a transaction, and a
//! delete that reports what it deleted first locks and reads the rows, then deletes them by id.
//! JSON columns are read as text (`CAST(device AS CHAR)`) and bound as text marked as a
//! JSON document (`JSON_EXTRACT(?, '$')`, as MariaDB has no `CAST(... AS JSON)`), so
//! `JSON_SET` embeds a value rather than a string.
//!
//! Every change writes its event into `events` in its transaction: an `INSERT ... SELECT` from
//! the row it wrote, or, for rows it removes, from the rows it locked before deleting them.
//! Consumers read events by `seq`, given by one sequencer at a time to the committed rows in
//! the order they were written (see the migration), as on PostgreSQL.

use std::{num::NonZeroU32, str::FromStr, sync::LazyLock};

use async_trait::async_trait;
use sessanger_core::{
    Change, Created, DeleteReason, EventLog, Maintenance, Page, Patch, PatchOptions, Patched, Renamed, Replaced,
    Replacement, Retention, ServiceId, ServiceRecord, ServiceStore, Session, SessionId, SessionRef, SessionStore,
    StoreError, Timestamp, UserId, UserLimit, Version,
};
use sessanger_tls::TlsOptions;
use sqlx::{
    MySql, MySqlConnection, QueryBuilder,
    migrate::Migrator,
    mysql::{MySqlArguments, MySqlConnectOptions, MySqlExecutor, MySqlQueryResult, MySqlSslMode},
    query::Query,
};

use crate::{
    error::{inserted, is_unique_violation, redact, retry_deadlocks, store_error},
    events::{self, LogStatements, Numbering},
    outcome::{Headroom, Updated, admit, replaced, settle_patch},
    row::{self, ServiceRow, SessionRow, encode},
    store::SqlStore,
    tls::Mode,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/mysql");

/// The `JSON_OBJECT` of a [`SessionEvent`](sessanger_core::SessionEvent) of type `kind` about
/// the row in scope (its `id` and `user_id`), with `extra` members, as serde writes it.
fn event(kind: &str, extra: &str) -> String {
    format!("JSON_OBJECT('type', '{kind}', 'session_id', id, 'user_id', user_id{extra})")
}

/// The `INSERT INTO events` of one `kind` of event about the session row `id`, written by the
/// statement before it in the transaction. Binds: the time, the service, the `extra` members'
/// values, the id.
fn row_event(kind: &str, extra: &str) -> String {
    format!("INSERT INTO events (at, service, event) SELECT ?, ?, {} FROM sessions WHERE id = ?", event(kind, extra))
}

/// A statement built once from the fragments above.
macro_rules! statement {
    ($name:ident, $build:expr) => {
        static $name: LazyLock<String> = LazyLock::new(|| $build);
    };
}

statement!(CREATED, row_event("created", ""));
statement!(REFRESHED, row_event("refreshed", ""));
statement!(CHANGED, row_event("attributes_changed", ", 'keys', JSON_EXTRACT(?, '$')"));
statement!(REGENERATED, row_event("regenerated", ", 'old_session_id', ?"));
statement!(EXPIRED, event("expired", ""));

/// Sessions and services in MySQL or MariaDB (`mysql://` or `mariadb://` URLs).
pub type MySqlStore = SqlStore<MySql>;

impl SqlStore<MySql> {
    /// Connects to the MySQL or MariaDB database at `url` (`mysql://user@host:port/db`, also
    /// `mariadb://`) with a pool of up to 10 connections, and applies the migrations.
    /// An unreachable server is retried for up to 10 seconds.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the server cannot be reached, [`StoreError::Other`] for
    /// a malformed URL or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_tls(url, &TlsOptions::default()).await
    }

    /// Connects like [`connect`](Self::connect), over TLS as the URL asks (`ssl-mode=required`,
    /// `verify_ca`, `verify_identity`, with `ssl-ca` and the like) and as `tls` says: its CAs
    /// and client certificate are used, a URL without `ssl-mode` then verifies the server's
    /// certificate and name (`verify_identity`), and `insecure` encrypts without verifying
    /// (`required`).
    ///
    /// # Errors
    /// As [`connect`](Self::connect); a TLS file that cannot be used is [`StoreError::Other`],
    /// naming it.
    pub async fn connect_tls(url: &str, tls: &TlsOptions) -> Result<Self, StoreError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None if url.starts_with("mysql://") => url.to_owned(),
            None => return Err(StoreError::Other(format!("not a MySQL URL: {}", redact(url)).into())),
        };
        let mut options = MySqlConnectOptions::from_str(&url).map_err(store_error)?;
        let tls = tls.load().map_err(|e| StoreError::Other(e.into()))?;
        if let Some(ca) = tls.ca_pem.clone() {
            options = options.ssl_ca_from_pem(ca);
        }
        if let Some(identity) = &tls.identity {
            options = options.ssl_client_cert_from_pem(&identity.cert_pem).ssl_client_key_from_pem(&identity.key_pem);
        }
        match crate::tls::mode(&url, &tls) {
            Some(Mode::Verify) => options = options.ssl_mode(MySqlSslMode::VerifyIdentity),
            Some(Mode::Encrypt) => options = options.ssl_mode(MySqlSslMode::Required),
            None => {}
        }
        Self::open(options, &MIGRATOR, &crate::tls::described(&url)).await
    }

    /// Connects with ready connect options and applies the migrations.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: MySqlConnectOptions) -> Result<Self, StoreError> {
        Self::open(options, &MIGRATOR, "mysql://").await
    }

    /// Applies the migrations of `migrations/mysql`, embedded in the binary, that the
    /// database has not seen yet; running it again is a no-op, and concurrent runs wait for
    /// each other.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), for a failed migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.apply(&MIGRATOR).await
    }

    /// Runs `update`, an `UPDATE` of the session `id`, then, if it matched, `event`, the
    /// `INSERT` of its event, and reads the live session after them, in one transaction.
    async fn update_then_load(
        &self,
        update: Query<'_, MySql, MySqlArguments>,
        event: Option<Query<'_, MySql, MySqlArguments>>,
        id: &SessionId,
        now: Timestamp,
    ) -> Result<Updated, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let matched = update.execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
        if let (true, Some(event)) = (matched, event) {
            event.execute(&mut *tx).await.map_err(store_error)?;
        }
        let current = select_live(&mut *tx, id, now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Updated { matched, session: row::session(current)? })
    }

    /// Renews the idle deadline of session `id`, recording a `refreshed` event if `refresh`.
    async fn renew(&self, id: &SessionId, change: Change<'_>, refresh: bool) -> Result<Option<Session>, StoreError> {
        let now = change.now;
        // Renewing the idle deadline moves the row in the `expires_at` index: concurrent
        // writers of one session deadlock on InnoDB's index locks now and then.
        let renewed = retry_deadlocks(|| {
            let update = sqlx::query(
                "UPDATE sessions SET last_access_at = ?, expires_at = LEAST(? + idle_ttl_ms, absolute_expires_at)
                 WHERE id = ? AND expires_at > ?",
            )
            .bind(now.as_millis())
            .bind(now.as_millis())
            .bind(id.as_ref())
            .bind(now.as_millis());
            let refreshed = refresh.then(|| {
                let event = sqlx::query(REFRESHED.as_str()).bind(now.as_millis()).bind(service(change));
                event.bind(id.as_ref())
            });
            self.update_then_load(update, refreshed, id, now)
        })
        .await?;
        Ok(renewed.session)
    }

    /// A patch decided exactly: one transaction that reads the session under its row lock,
    /// patches it as [`Session::patched`] says and writes the result. Concurrent writers wait
    /// for the lock, so none is lost; the in-place `UPDATE` stays the common path.
    async fn patch_locked(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        let now = change.now;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let select = sqlx::query_as(
            "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                    CAST(device AS CHAR) AS device, created_by, CAST(attributes AS CHAR) AS attributes, version
             FROM sessions WHERE id = ? AND expires_at > ? FOR UPDATE",
        );
        let current = select.bind(id.as_ref()).bind(now.as_millis()).fetch_optional(&mut *tx).await;
        let Some(mut session) = row::session(current.map_err(store_error)?)? else { return Ok(Patched::NotFound) };
        let outcome = session.patched(patch, options, now);
        if let Patched::Applied(written) = &outcome {
            sqlx::query(
                "UPDATE sessions
                 SET attributes = JSON_EXTRACT(?, '$'), device = JSON_EXTRACT(?, '$'), version = ?, last_access_at = ?,
                     expires_at = ?
                 WHERE id = ?",
            )
            .bind(encode(&written.attributes)?)
            .bind(encode(&written.device)?)
            .bind(version(written.version))
            .bind(written.last_access_at.as_millis())
            .bind(written.expires_at.as_millis())
            .bind(id.as_ref())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            changed(id, patch.keys(), change).execute(&mut *tx).await.map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
        }
        Ok(outcome)
    }

    /// `create` under a limit: one transaction that locks the user's sessions, decides with
    /// [`UserLimit::admit`], evicts, and inserts. A concurrent create for the same user waits
    /// for the locks, so it counts this one.
    async fn create_limited(&self, row: &SessionRow, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // `FOR UPDATE` on the user's index range takes next-key locks, which also cover the
        // gap where a user without sessions would get their first: InnoDB blocks (or, for two
        // first creates, deadlocks and retries) any concurrent insert there.
        let select =
            sqlx::query_as("SELECT id, expires_at FROM sessions WHERE user_id = ? ORDER BY created_at, id FOR UPDATE");
        let sessions: Vec<(String, i64)> = select.bind(&row.user_id).fetch_all(&mut *tx).await.map_err(store_error)?;
        let evicted = match admit(&sessions, &row.id, limit, now) {
            Ok(evicted) => evicted,
            // A refusal writes nothing: dropping the transaction rolls it back.
            Err(refused) => return Ok(refused),
        };
        delete_dead(&mut tx, &row.id, now).await?;
        let evicting = Change::at(now);
        remove(&mut tx, evicted.iter().map(AsRef::as_ref), evicting, row.created_by.as_deref(), DeleteReason::Evicted)
            .await?;
        match insert(row).execute(&mut *tx).await {
            Ok(_) => {}
            // Taken after all: dropping the transaction rolls it back.
            Err(e) if is_unique_violation(&e) => return Ok(Created::IdTaken),
            Err(e) => return Err(store_error(e)),
        }
        created(&mut tx, row).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Created::Created { evicted })
    }

    /// `create` without a limit: one transaction that inserts the session (removing first a
    /// dead session that holds its id) and records its creation.
    async fn create_unlimited(&self, row: &SessionRow, now: Timestamp) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let mut inserted = insert(row).execute(&mut *tx).await;
        // A failed statement leaves an InnoDB transaction open: the insert can go again.
        if let Err(e) = &inserted
            && is_unique_violation(e)
            && delete_dead(&mut tx, &row.id, now).await? > 0
        {
            inserted = insert(row).execute(&mut *tx).await;
        }
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Created::IdTaken),
            Err(e) => return Err(store_error(e)),
        }
        created(&mut tx, row).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Created::Created { evicted: Vec::new() })
    }

    /// `rename`: one transaction that deletes a dead session holding the new id, moves the
    /// live one there, and reads it back.
    async fn rename_once(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        let now = change.now;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        delete_dead(&mut tx, new.as_ref(), now).await?;
        let moved = sqlx::query(
            "UPDATE sessions
             SET id = ?, version = version + 1,
                 last_access_at = ?, expires_at = LEAST(? + idle_ttl_ms, absolute_expires_at)
             WHERE id = ? AND expires_at > ?",
        )
        .bind(new.as_ref())
        .bind(now.as_millis())
        .bind(now.as_millis())
        .bind(old.as_ref())
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(done) if done.rows_affected() == 0 => return Ok(Renamed::NotFound),
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Renamed::IdTaken),
            Err(e) => return Err(store_error(e)),
        }
        let regenerated = sqlx::query(REGENERATED.as_str()).bind(now.as_millis()).bind(service(change));
        regenerated.bind(old.as_ref()).bind(new.as_ref()).execute(&mut *tx).await.map_err(store_error)?;
        let Some(moved) = select_live(&mut *tx, new, now).await? else { return Ok(Renamed::NotFound) };
        tx.commit().await.map_err(store_error)?;
        Ok(Renamed::Renamed(moved.try_into()?))
    }

    /// Locks and reads the rows `select` returns, removes them by id (their first column),
    /// recording the deletion of the live ones for `reason` and the expiry of the dead ones,
    /// and returns them: a `DELETE ... RETURNING` in one transaction.
    async fn delete_selected<T>(
        &self,
        select: sqlx::query::QueryAs<'_, MySql, T, MySqlArguments>,
        change: Change<'_>,
        reason: DeleteReason,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin + HasId,
    {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let rows = select.fetch_all(&mut *tx).await.map_err(store_error)?;
        remove(&mut tx, rows.iter().map(HasId::id), change, service(change), reason).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(rows)
    }
}

/// A row whose first column is a session id.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for SessionRow {
    fn id(&self) -> &str {
        &self.id
    }
}

impl<T> HasId for (String, T) {
    fn id(&self) -> &str {
        &self.0
    }
}

/// The live session `id`, on the pool or inside a transaction.
async fn select_live(
    conn: impl MySqlExecutor<'_>,
    id: &SessionId,
    now: Timestamp,
) -> Result<Option<SessionRow>, StoreError> {
    sqlx::query_as(
        "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                CAST(device AS CHAR) AS device, created_by, CAST(attributes AS CHAR) AS attributes, version
         FROM sessions WHERE id = ? AND expires_at > ?",
    )
    .bind(id.as_ref())
    .bind(now.as_millis())
    .fetch_optional(conn)
    .await
    .map_err(store_error)
}

/// The `INSERT` of a new session, its values bound.
fn insert(row: &SessionRow) -> Query<'static, MySql, MySqlArguments> {
    row.bind(sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at,
                               expires_at, device, created_by, attributes, version)
         VALUES (?, ?, ?, ?, ?, ?, ?, JSON_EXTRACT(?, '$'), ?, JSON_EXTRACT(?, '$'), ?)",
    ))
}

/// Removes the dead session with this id, if any, recording its expiry: the id may be reused.
/// The number of sessions removed.
async fn delete_dead(conn: &mut MySqlConnection, id: &str, now: Timestamp) -> Result<u64, StoreError> {
    let select = sqlx::query_scalar("SELECT id FROM sessions WHERE id = ? AND expires_at <= ? FOR UPDATE");
    let dead: Vec<String> = select.bind(id).bind(now.as_millis()).fetch_all(&mut *conn).await.map_err(store_error)?;
    // Dead, so recorded as expired whatever the reason says.
    remove(conn, dead.iter().map(String::as_str), Change::at(now), None, DeleteReason::Logout).await?;
    Ok(dead.len() as u64)
}

/// Records the end of the sessions `ids`, locked by the caller, and deletes them: `deleted`
/// for `reason` by `service` if a session is live at `change.now`; `expired`, by nobody, if it
/// is dead already (only the reaper had not reached it: its expiry is told once, by whoever
/// removes it). Nothing for no ids.
async fn remove<'a>(
    conn: &mut MySqlConnection,
    ids: impl Iterator<Item = &'a str>,
    change: Change<'_>,
    service: Option<&str>,
    reason: DeleteReason,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = ids.collect();
    if ids.is_empty() {
        return Ok(());
    }
    let now = change.now.as_millis();
    let mut ended = QueryBuilder::<MySql>::new("INSERT INTO events (at, service, event) SELECT ");
    ended.push_bind(now).push(", CASE WHEN expires_at > ").push_bind(now).push(" THEN ").push_bind(service);
    ended.push(" END, CASE WHEN expires_at > ").push_bind(now);
    ended.push(" THEN JSON_OBJECT('type', 'deleted', 'session_id', id, 'user_id', user_id, 'reason', ");
    ended.push_bind(reason.as_str()).push(") ELSE ").push(EXPIRED.as_str()).push(" END FROM sessions");
    in_ids(&mut ended, &ids).build().execute(&mut *conn).await.map_err(store_error)?;
    let mut delete = QueryBuilder::<MySql>::new("DELETE FROM sessions");
    in_ids(&mut delete, &ids).build().execute(conn).await.map(drop).map_err(store_error)
}

/// ` WHERE id IN (?, ?, ...)` with `ids` bound.
fn in_ids<'b>(sql: &'b mut QueryBuilder<MySql>, ids: &[&str]) -> &'b mut QueryBuilder<MySql> {
    sql.push(" WHERE id IN (");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    sql.push(")")
}

/// Records the creation of the session `row`, just inserted.
async fn created(conn: &mut MySqlConnection, row: &SessionRow) -> Result<(), StoreError> {
    let query = sqlx::query(CREATED.as_str()).bind(row.created_at).bind(&row.created_by).bind(&row.id);
    query.execute(conn).await.map(drop).map_err(store_error)
}

/// The `attributes_changed` event of a change of session `id` that named `keys`, for the
/// transaction that wrote it.
fn changed<'a, 'k>(
    id: &'a SessionId,
    keys: impl Iterator<Item = &'k str>,
    change: Change<'a>,
) -> Query<'a, MySql, MySqlArguments> {
    let keys = serde_json::to_string(&keys.collect::<Vec<_>>()).expect("keys serialize");
    sqlx::query(CHANGED.as_str()).bind(change.now.as_millis()).bind(service(change)).bind(keys).bind(id.as_ref())
}

/// The acting service as the `service` column holds it.
fn service(change: Change<'_>) -> Option<&str> {
    change.service.map(AsRef::as_ref)
}

/// A JSON path naming one member: `$."key"`, the key quoted as a JSON string so any
/// character (dots, spaces, quotes) stays part of the name.
fn json_path(key: &str) -> String {
    format!("$.{}", serde_json::Value::from(key))
}

/// The `UPDATE` that applies a patch in place, in the order of [`Session::apply`]: removals
/// (`JSON_REMOVE`), then sets, then increments (`JSON_SET`, left to right), each increment
/// summed from the value stored before the patch. The `WHERE` checks the version, and that
/// every increment lands on an absent key or an integer with a sum in range, and the
/// [`Headroom`] a patch that adds needs, so a rejected patch writes nothing. `?` are positional: every value is bound where its `?` stands.
fn patch_statement(
    id: &SessionId,
    patch: &Patch,
    increments: &[(&str, i64)],
    options: PatchOptions<'_>,
    now: Timestamp,
) -> Result<QueryBuilder<MySql>, StoreError> {
    let PatchOptions { expected, touch, cap, device, writes } = options;
    let mut sql = QueryBuilder::new("UPDATE sessions SET attributes = ");
    let sets = !(patch.set.is_empty() && increments.is_empty());
    if sets {
        sql.push("JSON_SET(");
    }
    if patch.remove.is_empty() {
        sql.push("attributes");
    } else {
        let mut paths = sql.separated(", ");
        paths.push("JSON_REMOVE(attributes");
        for key in &patch.remove {
            paths.push_bind(json_path(key));
        }
        sql.push(")");
    }
    for (key, value) in &patch.set {
        sql.push(", ").push_bind(json_path(key)).push(", JSON_EXTRACT(").push_bind(encode(value)?).push(", '$')");
    }
    for &(key, by) in increments {
        sql.push(", ").push_bind(json_path(key)).push(", CAST(");
        push_sum(&mut sql, key, by);
        sql.push(" AS SIGNED)");
    }
    if sets {
        sql.push(")");
    }
    if let Some(device) = device {
        sql.push(", device = JSON_MERGE_PATCH(device, JSON_EXTRACT(").push_bind(encode(device)?).push(", '$'))");
    }
    sql.push(", version = version + ").push_bind(writes.get());
    if touch {
        sql.push(", last_access_at = ").push_bind(now.as_millis());
        sql.push(", expires_at = LEAST(").push_bind(now.as_millis()).push(" + idle_ttl_ms, absolute_expires_at)");
    }
    sql.push(" WHERE id = ").push_bind(id.as_ref()).push(" AND expires_at > ").push_bind(now.as_millis());
    if let Some(expected) = expected {
        sql.push(" AND version = ").push_bind(version(expected));
    }
    for &(key, by) in increments {
        sql.push(" AND ");
        push_sum(&mut sql, key, by);
        sql.push(" BETWEEN -9223372036854775808 AND 9223372036854775807");
    }
    if let Some(room) = Headroom::of(patch, cap) {
        sql.push(" AND LENGTH(CAST(attributes AS CHAR)) + ").push_bind(room.added_bytes);
        sql.push(" <= ").push_bind(room.max_bytes);
        sql.push(" AND JSON_LENGTH(attributes) + ").push_bind(room.new_keys);
        sql.push(" <= ").push_bind(room.max_attributes);
    }
    Ok(sql)
}

/// `CASE WHEN NOT JSON_CONTAINS_PATH(attributes, 'one', ?) THEN CAST(? AS DECIMAL(20,0))
/// WHEN JSON_TYPE(JSON_EXTRACT(attributes, ?)) = 'INTEGER' THEN CAST(JSON_EXTRACT(attributes,
/// ?) AS DECIMAL(20,0)) + ? END`: the attribute `key` as stored plus `by`, `NULL` when it is
/// present but not an integer. DECIMAL(20,0) holds any sum of two 64-bit integers exactly, so
/// an overflow shows as out of range instead of failing the statement.
fn push_sum(sql: &mut QueryBuilder<MySql>, key: &str, by: i64) {
    sql.push("CASE WHEN NOT JSON_CONTAINS_PATH(attributes, 'one', ").push_bind(json_path(key));
    sql.push(") THEN CAST(").push_bind(by).push(" AS DECIMAL(20,0))");
    sql.push(" WHEN JSON_TYPE(JSON_EXTRACT(attributes, ").push_bind(json_path(key)).push(")) = 'INTEGER'");
    sql.push(" THEN CAST(JSON_EXTRACT(attributes, ").push_bind(json_path(key)).push(") AS DECIMAL(20,0)) + ");
    sql.push_bind(by).push(" END");
}

fn version(v: Version) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for SqlStore<MySql> {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let row = SessionRow::new(session)?;
        if limit != UserLimit::Unlimited {
            return retry_deadlocks(|| self.create_limited(&row, limit, now)).await;
        }
        retry_deadlocks(|| self.create_unlimited(&row, now)).await
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        row::session(select_live(&self.pool, id, now).await?)
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
        let now = change.now;
        // Renewing the idle deadline moves the row in the `expires_at` index: concurrent
        // patches of one session then deadlock on InnoDB's index locks now and then.
        let write = async |increments: Vec<(&str, i64)>| {
            retry_deadlocks(|| async {
                let mut update = patch_statement(id, patch, &increments, options, now)?;
                self.update_then_load(update.build(), Some(changed(id, patch.keys(), change)), id, now).await
            })
            .await
        };
        let locked = || retry_deadlocks(|| self.patch_locked(id, patch, options, change));
        settle_patch(patch, options, now, || self.load(id, now), write, locked).await
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let now = change.now;
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
        let new = Replacement { attributes, device, expected, absolute_expires_at };
        // MySQL assigns left to right, each assignment seeing the ones before it: the idle
        // deadline is capped by the absolute deadline just written.
        // Concurrent writers of one row deadlock on InnoDB's index locks now and then (a new
        // deadline moves the row in the `expires_at` index): retried.
        let (attributes, device) = (encode(attributes)?, device.map(encode).transpose()?);
        let updated = retry_deadlocks(|| {
            let update = sqlx::query(
                "UPDATE sessions
                 SET attributes = JSON_EXTRACT(?, '$'), device = COALESCE(JSON_EXTRACT(?, '$'), device),
                     version = version + 1, absolute_expires_at = COALESCE(?, absolute_expires_at),
                     expires_at = LEAST(last_access_at + idle_ttl_ms, absolute_expires_at)
                 WHERE id = ? AND expires_at > ? AND version = COALESCE(?, version)",
            )
            .bind(&attributes)
            .bind(&device)
            .bind(absolute_expires_at.map(Timestamp::as_millis))
            .bind(id.as_ref())
            .bind(now.as_millis())
            .bind(expected.map(version));
            let changed = changed(id, new.attributes.keys().map(String::as_str), change);
            self.update_then_load(update, Some(changed), id, now)
        })
        .await?;
        Ok(replaced(updated))
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        retry_deadlocks(|| self.rename_once(old, new, change)).await
    }

    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        let now = change.now;
        let deleted = self
            .delete_selected(
                sqlx::query_as(
                    "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                            CAST(device AS CHAR) AS device, created_by, CAST(attributes AS CHAR) AS attributes, version
                     FROM sessions WHERE id = ? FOR UPDATE",
                )
                .bind(id.as_ref()),
                change,
                reason,
            )
            .await?;
        Ok(row::session(deleted.into_iter().next())?.filter(|s| !s.is_expired(now)))
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let (after_ms, after_id) = row::page_start(page);
        // Spelled out rather than a row comparison, which older MySQL and MariaDB versions do
        // not serve from the (user_id, created_at, id) index.
        let select = sqlx::query_as(
            "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                    CAST(device AS CHAR) AS device, created_by, CAST(attributes AS CHAR) AS attributes, version
             FROM sessions
             WHERE user_id = ? AND created_at >= ? AND (created_at > ? OR id > ?) AND expires_at > ?
             ORDER BY created_at, id LIMIT ?",
        );
        let select = select.bind(user.as_ref()).bind(after_ms).bind(after_ms).bind(after_id).bind(now.as_millis());
        row::sessions(select.bind(i64::from(page.limit.get())).fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let select = sqlx::query_as(
            "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                    CAST(device AS CHAR) AS device, created_by, CAST(attributes AS CHAR) AS attributes, version
             FROM sessions WHERE id > ? AND expires_at > ? ORDER BY id LIMIT ?",
        );
        let select = select.bind(after.map_or("", AsRef::as_ref)).bind(now.as_millis()).bind(i64::from(limit.get()));
        row::sessions(select.fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        // `user_id` sorts byte by byte (`utf8mb4_bin`), so the prefix is a range of its index.
        let select = sqlx::query_as(
            "SELECT DISTINCT user_id FROM sessions WHERE user_id LIKE ? ESCAPE '!' AND expires_at > ?
             ORDER BY user_id LIMIT ?",
        );
        let select = select.bind(row::like_prefix(prefix)).bind(now.as_millis()).bind(i64::from(limit.get()));
        row::user_ids(select.fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let now = change.now;
        let select = sqlx::query_as("SELECT id, expires_at FROM sessions WHERE user_id = ? FOR UPDATE");
        row::live_ids(self.delete_selected(select.bind(user.as_ref()), change, DeleteReason::Revoked).await?, now)
    }
}

#[async_trait]
impl Maintenance for SqlStore<MySql> {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        let count = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE expires_at > ?").bind(now.as_millis());
        row::count(count.fetch_one(&self.pool).await.map_err(store_error)?)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Soonest first through the expiry index, so a batch reads only due entries; SKIP
        // LOCKED lets two purgers share the work instead of waiting on each other.
        let select = sqlx::query_as(
            "SELECT id, user_id FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED",
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Every row is dead: each removal records an expiry, whatever the reason says.
        let purged =
            self.delete_selected(select.bind(now.as_millis()).bind(limit), Change::at(now), DeleteReason::Logout);
        Ok(row::session_refs(purged.await?))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(store_error)
    }

    fn event_log(&self) -> Option<&dyn EventLog> {
        Some(self)
    }
}

#[async_trait]
impl Numbering for SqlStore<MySql> {
    /// Gives `seq` to the committed events that have none, in `id` order. One sequencer at a
    /// time: each takes the `last_seq` row's lock first; rows of transactions still open are
    /// locked by them and skipped, to be numbered by a later call, after the ones numbered now.
    /// READ COMMITTED, so the sequencer takes no gap locks that would hold up writers.
    async fn sequence(&self) -> Result<(), StoreError> {
        let pending: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE seq IS NULL)")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        if pending == 0 {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        // Applies to the next transaction only.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED").execute(&mut *conn).await.map_err(store_error)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(store_error)?;
        let last: i64 = sqlx::query_scalar("SELECT value FROM event_counters WHERE name = 'last_seq' FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT 10000 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(count) = i64::try_from(ids.len()).ok().filter(|&n| n > 0) else { return Ok(()) };
        let mut number = QueryBuilder::<MySql>::new("UPDATE events SET seq = CASE id");
        for (n, id) in (1..).zip(&ids) {
            number.push(" WHEN ").push_bind(*id).push(" THEN ").push_bind(last + n);
        }
        number.push(" END WHERE id IN (");
        let mut list = number.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        number.push(")");
        number.build().execute(&mut *tx).await.map_err(store_error)?;
        sqlx::query("UPDATE event_counters SET value = ? WHERE name = 'last_seq'")
            .bind(last + count)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn trim(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError> {
        let keep = events::bigint(retention.max_events.get());
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let last: i64 = sqlx::query_scalar("SELECT value FROM event_counters WHERE name = 'last_seq'")
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let (oldest_kept, cutoff) = (last.saturating_sub(keep), (now - retention.max_age).as_millis());
        // The first 100 000 due, oldest first: a long backlog is trimmed over several calls.
        let newest_due: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE seq IS NOT NULL AND (seq <= ? OR at < ?)
                                   ORDER BY seq LIMIT 100000) AS due",
        )
        .bind(oldest_kept)
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(newest_due) = newest_due else { return Ok(0) };
        let trimmed = sqlx::query("DELETE FROM events WHERE seq <= ? AND (seq <= ? OR at < ?)")
            .bind(newest_due)
            .bind(oldest_kept)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        sqlx::query("UPDATE event_counters SET value = GREATEST(value, ?) WHERE name = 'trimmed_through'")
            .bind(newest_due)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(trimmed)
    }
}

impl LogStatements for MySql {
    const READ_EVENTS: &'static str =
        "SELECT seq, at, service, CAST(event AS CHAR) FROM events WHERE seq > ? ORDER BY seq LIMIT ?";
    const COUNTER: &'static str = "SELECT value FROM event_counters WHERE name = ?";
    const NEW_RELAY: &'static str = "INSERT IGNORE INTO event_relays (name, holder, until) VALUES (?, '', 0)";
    const LOCK_RELAY: &'static str = "SELECT holder, until, position FROM event_relays WHERE name = ? FOR UPDATE";
    const HOLD_RELAY: &'static str = "UPDATE event_relays SET holder = ?, until = ? WHERE name = ?";
    const ADVANCE_RELAY: &'static str = "UPDATE event_relays SET position = ?, until = ? WHERE name = ? AND holder = ?";

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }
}

#[async_trait]
impl ServiceStore for SqlStore<MySql> {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let insert = sqlx::query(
            "INSERT INTO services (id, name, permissions, secret_sha256, created_at)
             VALUES (?, ?, JSON_EXTRACT(?, '$'), ?, ?)",
        );
        inserted(ServiceRow::new(service)?.bind(insert).execute(&self.pool).await)
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let select = sqlx::query_as(
            "SELECT id, name, CAST(permissions AS CHAR) AS permissions, secret_sha256, created_at
             FROM services WHERE id = ?",
        );
        row::service(select.bind(id.as_ref()).fetch_optional(&self.pool).await.map_err(store_error)?)
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let select = sqlx::query_as(
            "SELECT id, name, CAST(permissions AS CHAR) AS permissions, secret_sha256, created_at
             FROM services WHERE id > ? ORDER BY id LIMIT ?",
        );
        let select = select.bind(after.map_or("", AsRef::as_ref)).bind(i64::from(limit.get()));
        row::services(select.fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        // The row's values are bound in the table's column order, `id` first: the derived
        // table names them for the `SET`.
        let update = sqlx::query(
            "UPDATE services s
             JOIN (SELECT ? AS id, ? AS name, ? AS permissions, ? AS secret_sha256, ? AS created_at) v ON s.id = v.id
             SET s.name = v.name, s.permissions = JSON_EXTRACT(v.permissions, '$'),
                 s.secret_sha256 = v.secret_sha256, s.created_at = v.created_at",
        );
        let updated = ServiceRow::new(service)?.bind(update).execute(&self.pool).await;
        Ok(updated.map_err(store_error)?.rows_affected() > 0)
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM services WHERE id = ?").bind(id.as_ref()).execute(&self.pool).await;
        Ok(deleted.map_err(store_error)?.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlx::Execute;

    use super::*;

    #[test]
    fn mysql_patch_sql_binds_one_argument_per_placeholder_in_order() {
        let patch =
            Patch::default().set("a", json!({"x": 1})).set("b\"q", json!("s")).remove("c").incr("n", 2).incr("m", -1);
        let id = SessionId::generate();
        let increments = crate::outcome::integer_increments(&patch).unwrap();
        let options = PatchOptions::new().with_touch(true).with_expected(Some(Version(3)));
        let mut sql = patch_statement(&id, &patch, &increments, options, Timestamp::from_millis(0)).unwrap();
        let mut query = sql.build();
        let bound = query.take_arguments().unwrap().map_or(0, |args| sqlx::Arguments::len(&args));
        let sql = query.sql();
        assert_eq!(sql.as_str().matches('?').count(), bound);
        // The first argument is the first placeholder's: the removed key's path.
        assert_eq!(json_path("c"), "$.\"c\"");
        assert!(sql.as_str().starts_with("UPDATE sessions SET attributes = JSON_SET(JSON_REMOVE(attributes, ?)"));
    }
}
