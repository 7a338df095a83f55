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

use std::{num::NonZeroU32, str::FromStr};

use async_trait::async_trait;
use sessanger_core::{
    Change, Created, DeleteReason, Maintenance, Page, Patch, PatchOptions, Patched, Renamed, Replaced, Replacement,
    ServiceId, ServiceRecord, ServiceStore, Session, SessionId, SessionRef, SessionStore, StoreError, Timestamp,
    UserId, UserLimit, Version,
};
use sqlx::{
    MySql, MySqlConnection, QueryBuilder,
    migrate::Migrator,
    mysql::{MySqlArguments, MySqlConnectOptions, MySqlExecutor},
    query::Query,
};

use crate::{
    error::{inserted, is_unique_violation, redact, retry_deadlocks, store_error},
    outcome::{Headroom, Updated, admit, finish_create, insert_or_reuse_dead, replaced, settle_patch},
    row::{self, ServiceRow, SessionRow, encode},
    store::SqlStore,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/mysql");

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
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None if url.starts_with("mysql://") => url.to_owned(),
            None => return Err(StoreError::Other(format!("not a MySQL URL: {}", redact(url)).into())),
        };
        let options = MySqlConnectOptions::from_str(&url).map_err(store_error)?;
        Self::connect_with(options).await
    }

    /// Connects with ready connect options and applies the migrations.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: MySqlConnectOptions) -> Result<Self, StoreError> {
        Self::open(options, &MIGRATOR).await
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

    /// Runs `update`, an `UPDATE` of the session `id`, and reads the live session after it,
    /// in one transaction.
    async fn update_then_load(
        &self,
        update: Query<'_, MySql, MySqlArguments>,
        id: &SessionId,
        now: Timestamp,
    ) -> Result<Updated, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let matched = update.execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
        let current = select_live(&mut *tx, id, now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Updated { matched, session: row::session(current)? })
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
        delete_dead(&mut tx, &row.id, now).await.map_err(store_error)?;
        delete_ids(&mut tx, evicted.iter().map(AsRef::as_ref)).await?;
        let inserted = insert(row).execute(&mut *tx).await;
        finish_create(tx, inserted, evicted).await
    }

    /// `rename`: one transaction that deletes a dead session holding the new id, moves the
    /// live one there, and reads it back.
    async fn rename_once(&self, old: &SessionId, new: &SessionId, now: Timestamp) -> Result<Renamed, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        delete_dead(&mut tx, new.as_ref(), now).await.map_err(store_error)?;
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
        let Some(moved) = select_live(&mut *tx, new, now).await? else { return Ok(Renamed::NotFound) };
        tx.commit().await.map_err(store_error)?;
        Ok(Renamed::Renamed(moved.try_into()?))
    }

    /// Locks and reads the rows `select` returns, deletes them by id (their first column),
    /// and returns them: a `DELETE ... RETURNING` in one transaction.
    async fn delete_selected<T>(
        &self,
        select: sqlx::query::QueryAs<'_, MySql, T, MySqlArguments>,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin + HasId,
    {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let rows = select.fetch_all(&mut *tx).await.map_err(store_error)?;
        delete_ids(&mut tx, rows.iter().map(HasId::id)).await?;
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

/// Deletes the dead session with this id, if any: the id may be reused. The number of rows
/// deleted.
async fn delete_dead(conn: &mut MySqlConnection, id: &str, now: Timestamp) -> Result<u64, sqlx::Error> {
    let dead = sqlx::query("DELETE FROM sessions WHERE id = ? AND expires_at <= ?").bind(id).bind(now.as_millis());
    Ok(dead.execute(conn).await?.rows_affected())
}

/// `DELETE FROM sessions WHERE id IN (?, ?, ...)`; nothing for no ids.
async fn delete_ids<'a>(conn: &mut MySqlConnection, ids: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
    let mut delete = QueryBuilder::<MySql>::new("DELETE FROM sessions WHERE id IN (");
    let mut list = delete.separated(", ");
    let mut any = false;
    for id in ids {
        list.push_bind(id);
        any = true;
    }
    if !any {
        return Ok(());
    }
    delete.push(")");
    delete.build().execute(conn).await.map(drop).map_err(store_error)
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
    let PatchOptions { expected, touch, cap, device } = options;
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
    sql.push(", version = version + 1");
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
        insert_or_reuse_dead(
            || async { Ok(insert(&row).execute(&self.pool).await?.rows_affected()) },
            || async { delete_dead(&mut *self.pool.acquire().await?, &row.id, now).await },
        )
        .await
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        row::session(select_live(&self.pool, id, now).await?)
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        // Renewing the idle deadline moves the row in the `expires_at` index: concurrent
        // writers of one session deadlock on InnoDB's index locks now and then.
        let touched = retry_deadlocks(|| {
            let update = sqlx::query(
                "UPDATE sessions SET last_access_at = ?, expires_at = LEAST(? + idle_ttl_ms, absolute_expires_at)
                 WHERE id = ? AND expires_at > ?",
            )
            .bind(now.as_millis())
            .bind(now.as_millis())
            .bind(id.as_ref())
            .bind(now.as_millis());
            self.update_then_load(update, id, now)
        })
        .await?;
        Ok(touched.session)
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
        // Renewing the idle deadline moves the row in the `expires_at` index: concurrent
        // patches of one session then deadlock on InnoDB's index locks now and then.
        let write = async |increments: Vec<(&str, i64)>| {
            retry_deadlocks(|| async {
                let mut update = patch_statement(id, patch, &increments, options, now)?;
                self.update_then_load(update.build(), id, now).await
            })
            .await
        };
        let locked = || retry_deadlocks(|| self.patch_locked(id, patch, options, change));
        settle_patch(patch, options, now, || self.load(id, now), write, locked).await
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let now = change.now;
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
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
            self.update_then_load(update, id, now)
        })
        .await?;
        Ok(replaced(updated))
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        let now = change.now;
        retry_deadlocks(|| self.rename_once(old, new, now)).await
    }

    async fn delete(
        &self,
        id: &SessionId,
        _reason: DeleteReason,
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

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let now = change.now;
        let select = sqlx::query_as("SELECT id, expires_at FROM sessions WHERE user_id = ? FOR UPDATE");
        row::live_ids(self.delete_selected(select.bind(user.as_ref())).await?, now)
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
        Ok(row::session_refs(self.delete_selected(select.bind(now.as_millis()).bind(limit)).await?))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(store_error)
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
