//! [`PostgresStore`]: every statement PostgreSQL receives, as it receives it.
//!
//! Attributes are `jsonb`, changed in place: `-` removes keys, `||` sets them, and the
//! increments are summed from `jsonb_each_text` of the patch's increments, all inside the one
//! `UPDATE` that also checks the version. Writes return the written row with `RETURNING`, so
//! most operations are one statement. JSON columns are read as text (`device::text`) and
//! bound as text cast to `jsonb` (`$8::jsonb`).

use std::str::FromStr;

use async_trait::async_trait;
use sessanger_core::{
    Attributes, Created, Device, Maintenance, Patch, PatchOptions, Patched, Renamed, Replaced, ServiceId,
    ServiceRecord, ServiceStore, Session, SessionId, SessionRef, SessionStore, StoreError, Timestamp, UserId,
    UserLimit, Version,
};
use sqlx::{
    PgPool, Postgres,
    migrate::Migrator,
    postgres::{PgArguments, PgConnectOptions},
    query::{Query, QueryAs},
};

use crate::{
    error::{is_unique_violation, migrate_error, pool_options, redact, retry_deadlocks, store_error},
    outcome::{Updated, admit, explain_patch, insert_or_reuse_dead, integer_increments, replaced, settle_patch},
    row::{self, ServiceRow, SessionRow, encode},
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Sessions and services in PostgreSQL (`postgres://` or `postgresql://` URLs).
///
/// Every method of the contract is one statement, or one transaction where it needs a
/// decision between statements; see the crate docs for which.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/db`, also
    /// `postgresql://`) with a pool of up to 10 connections, and applies the migrations.
    /// An unreachable server is retried for up to 10 seconds.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the server cannot be reached, [`StoreError::Other`] for
    /// a malformed URL or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Other(format!("not a PostgreSQL URL: {}", redact(url)).into()));
        }
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        Self::connect_with(options).await
    }

    /// Connects with ready connect options (e.g. a `search_path` set through
    /// [`PgConnectOptions::options`]) and applies the migrations.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool: PgPool = pool_options().connect_with(options).await.map_err(store_error)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on a ready pool. Does not run migrations: call [`migrate`](Self::migrate)
    /// (or use `connect`, which does).
    pub fn new(pool: PgPool) -> Self {
        PostgresStore { pool }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations embedded in the binary that the database has not seen yet;
    /// running it again is a no-op, and concurrent runs wait for each other.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the server cannot be reached, [`StoreError::Other`] for
    /// a failed migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(migrate_error)
    }

    /// What an `UPDATE ... RETURNING` of the session `id` did: the row it wrote, or, when it
    /// matched nothing, the live session as it is now, to say why.
    async fn updated(
        &self,
        written: Result<Option<SessionRow>, sqlx::Error>,
        id: &SessionId,
        now: Timestamp,
    ) -> Result<Updated, StoreError> {
        Ok(match written.map_err(store_error)? {
            Some(row) => Updated { matched: true, session: Some(row.try_into()?) },
            None => Updated { matched: false, session: self.load(id, now).await? },
        })
    }

    /// `create` under a limit: one transaction that locks the user, reads their sessions,
    /// decides with [`UserLimit::admit`], evicts, and inserts. A concurrent create for the
    /// same user waits for the lock, so it counts this one.
    async fn create_limited(
        &self,
        row: &SessionRow,
        limit: UserLimit,
        now: Timestamp,
        id: &SessionId,
    ) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // A transaction-scoped advisory lock on the user: it exists before the user has any
        // row to lock, so the first creates of a user serialize too, and commit or rollback
        // releases it. A hash collision only makes two users wait for each other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&row.user_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let sessions: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, expires_at FROM sessions WHERE user_id = $1 ORDER BY created_at, id FOR UPDATE")
                .bind(&row.user_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(store_error)?;
        // A refusal writes nothing: dropping the transaction rolls it back.
        let evicted = match admit(&sessions, id, limit, now) {
            Ok(evicted) => evicted,
            Err(refused) => return Ok(refused),
        };
        let evicted_ids: Vec<&str> = evicted.iter().map(AsRef::as_ref).collect();
        sqlx::query("DELETE FROM sessions WHERE (id = $1 AND expires_at <= $2) OR id = ANY($3)")
            .bind(id.as_ref())
            .bind(now.as_millis())
            .bind(evicted_ids)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        match insert(row).execute(&mut *tx).await {
            Ok(_) => tx.commit().await.map_err(store_error)?,
            Err(e) if is_unique_violation(&e) => return Ok(Created::IdTaken),
            Err(e) => return Err(store_error(e)),
        }
        Ok(Created::Created { evicted })
    }

    /// `rename`: one transaction that deletes a dead session holding the new id, then moves
    /// the live one there.
    async fn rename_once(&self, old: &SessionId, new: &SessionId, now: Timestamp) -> Result<Renamed, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("DELETE FROM sessions WHERE id = $1 AND expires_at <= $2")
            .bind(new.as_ref())
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let moved: Option<SessionRow> = match sqlx::query_as(
            "UPDATE sessions
             SET id = $2, version = version + 1,
                 last_access_at = $3, expires_at = LEAST($3 + idle_ttl_ms, absolute_expires_at)
             WHERE id = $1 AND expires_at > $3
             RETURNING id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                       device::text AS device, created_by, attributes::text AS attributes, version",
        )
        .bind(old.as_ref())
        .bind(new.as_ref())
        .bind(now.as_millis())
        .fetch_optional(&mut *tx)
        .await
        {
            Ok(moved) => moved,
            Err(e) if is_unique_violation(&e) => return Ok(Renamed::IdTaken),
            Err(e) => return Err(store_error(e)),
        };
        let Some(moved) = moved else { return Ok(Renamed::NotFound) };
        tx.commit().await.map_err(store_error)?;
        Ok(Renamed::Renamed(moved.try_into()?))
    }
}

/// The `INSERT` of a new session, its values bound.
fn insert(row: &SessionRow) -> Query<'static, Postgres, PgArguments> {
    row.bind(sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at,
                               expires_at, device, created_by, attributes, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10::jsonb, $11)",
    ))
}

/// The `UPDATE` that applies a patch in place, in the order of [`Session::apply`]: removals
/// (`-`), then sets (`||`), then increments, each summed from the value stored before the
/// patch. The `WHERE` checks the version, and that every increment lands on an absent key or
/// an integer (jsonb keeps a number's text: `5` is an integer, `5.0` is not, exactly as
/// serde reads it) with a sum in range, so a rejected patch writes nothing.
fn patch_query<'a>(
    id: &'a SessionId,
    patch: &'a Patch,
    increments: &[(&str, i64)],
    options: PatchOptions,
    now: Timestamp,
) -> Result<QueryAs<'a, Postgres, SessionRow, PgArguments>, StoreError> {
    let increments: serde_json::Map<String, serde_json::Value> =
        increments.iter().map(|(key, by)| ((*key).to_owned(), (*by).into())).collect();
    let expected = options.expected.map(|v| i64::try_from(v.0).unwrap_or(i64::MAX));
    Ok(sqlx::query_as(
        "UPDATE sessions
         SET attributes = (attributes - $3::text[]) || $4::jsonb || COALESCE(
                 (SELECT jsonb_object_agg(incr.key, (
                      CASE WHEN attributes -> incr.key IS NULL THEN incr.value::numeric
                           WHEN jsonb_typeof(attributes -> incr.key) = 'number'
                                AND (attributes ->> incr.key) ~ '^-?[0-9]+$'
                           THEN (attributes ->> incr.key)::numeric + incr.value::numeric END
                  )::bigint)
                  FROM jsonb_each_text($5::jsonb) AS incr),
                 '{}'::jsonb),
             version = version + 1,
             last_access_at = CASE WHEN $6 THEN $2 ELSE last_access_at END,
             expires_at = CASE WHEN $6 THEN LEAST($2 + idle_ttl_ms, absolute_expires_at) ELSE expires_at END
         WHERE id = $1 AND expires_at > $2 AND version = COALESCE($7, version)
           AND NOT EXISTS (
               SELECT FROM jsonb_each_text($5::jsonb) AS incr
               WHERE (CASE WHEN attributes -> incr.key IS NULL THEN incr.value::numeric
                           WHEN jsonb_typeof(attributes -> incr.key) = 'number'
                                AND (attributes ->> incr.key) ~ '^-?[0-9]+$'
                           THEN (attributes ->> incr.key)::numeric + incr.value::numeric END
                      BETWEEN -9223372036854775808 AND 9223372036854775807) IS NOT TRUE)
         RETURNING id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                   device::text AS device, created_by, attributes::text AS attributes, version",
    )
    .bind(id.as_ref())
    .bind(now.as_millis())
    .bind(patch.remove.as_slice())
    .bind(encode(&patch.set)?)
    .bind(encode(&increments)?)
    .bind(options.touch)
    .bind(expected))
}

fn version(v: Version) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let row = SessionRow::new(session)?;
        if limit != UserLimit::Unlimited {
            return retry_deadlocks(|| self.create_limited(&row, limit, now, &session.id)).await;
        }
        insert_or_reuse_dead(
            || async { Ok(insert(&row).execute(&self.pool).await?.rows_affected()) },
            || async {
                let dead = sqlx::query("DELETE FROM sessions WHERE id = $1 AND expires_at <= $2")
                    .bind(session.id.as_ref())
                    .bind(now.as_millis());
                Ok(dead.execute(&self.pool).await?.rows_affected())
            },
        )
        .await
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        row::session(
            sqlx::query_as(
                "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                        device::text AS device, created_by, attributes::text AS attributes, version
                 FROM sessions WHERE id = $1 AND expires_at > $2",
            )
            .bind(id.as_ref())
            .bind(now.as_millis())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?,
        )
    }

    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        row::session(
            sqlx::query_as(
                "UPDATE sessions SET last_access_at = $2, expires_at = LEAST($2 + idle_ttl_ms, absolute_expires_at)
                 WHERE id = $1 AND expires_at > $2
                 RETURNING id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                           device::text AS device, created_by, attributes::text AS attributes, version",
            )
            .bind(id.as_ref())
            .bind(now.as_millis())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?,
        )
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions,
        now: Timestamp,
    ) -> Result<Patched, StoreError> {
        let Some(increments) = integer_increments(patch) else {
            // An increment by a non-integer: nothing to run; say why from the session.
            let current = self.load(id, now).await?;
            return Ok(explain_patch(current, patch, options.expected).unwrap_or(Patched::NotFound));
        };
        settle_patch(patch, options.expected, || async {
            let written = patch_query(id, patch, &increments, options, now)?.fetch_optional(&self.pool).await;
            self.updated(written, id, now).await
        })
        .await
    }

    async fn replace(
        &self,
        id: &SessionId,
        attributes: &Attributes,
        device: &Device,
        expected: Version,
        now: Timestamp,
    ) -> Result<Replaced, StoreError> {
        let written = sqlx::query_as(
            "UPDATE sessions SET attributes = $3::jsonb, device = $4::jsonb, version = version + 1
             WHERE id = $1 AND expires_at > $2 AND version = $5
             RETURNING id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                       device::text AS device, created_by, attributes::text AS attributes, version",
        )
        .bind(id.as_ref())
        .bind(now.as_millis())
        .bind(encode(attributes)?)
        .bind(encode(device)?)
        .bind(version(expected))
        .fetch_optional(&self.pool)
        .await;
        Ok(replaced(self.updated(written, id, now).await?))
    }

    async fn rename(&self, old: &SessionId, new: &SessionId, now: Timestamp) -> Result<Renamed, StoreError> {
        retry_deadlocks(|| self.rename_once(old, new, now)).await
    }

    async fn delete(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let deleted = sqlx::query_as(
            "DELETE FROM sessions WHERE id = $1
             RETURNING id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                       device::text AS device, created_by, attributes::text AS attributes, version",
        )
        .bind(id.as_ref())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row::session(deleted)?.filter(|s| !s.is_expired(now)))
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        row::sessions(
            sqlx::query_as(
                "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                        device::text AS device, created_by, attributes::text AS attributes, version
                 FROM sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, id",
            )
            .bind(user.as_ref())
            .bind(now.as_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?,
        )
    }

    async fn delete_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let deleted = sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 RETURNING id, expires_at")
            .bind(user.as_ref())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        row::live_ids(deleted, now)
    }
}

#[async_trait]
impl Maintenance for PostgresStore {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        let count = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE expires_at > $1")
            .bind(now.as_millis())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        row::count(count)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Soonest first through the expiry index, so a batch reads only due entries; SKIP
        // LOCKED lets two purgers share the work instead of waiting on each other.
        let purged = sqlx::query_as(
            "DELETE FROM sessions WHERE id IN (
                 SELECT id FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, user_id",
        )
        .bind(now.as_millis())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row::session_refs(purged))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(store_error)
    }
}

#[async_trait]
impl ServiceStore for PostgresStore {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let created = sqlx::query(
            "INSERT INTO services (id, name, permissions, secret_sha256, created_at) VALUES ($1, $2, $3::jsonb, $4, $5)",
        )
        .bind(service.id.as_ref())
        .bind(&service.name)
        .bind(encode(&service.permissions)?)
        .bind(&service.secret_sha256)
        .bind(service.created_at.as_millis())
        .execute(&self.pool)
        .await;
        match created {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let row: Option<ServiceRow> = sqlx::query_as(
            "SELECT id, name, permissions::text AS permissions, secret_sha256, created_at FROM services WHERE id = $1",
        )
        .bind(id.as_ref())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(ServiceRecord::try_from).transpose()
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows: Vec<ServiceRow> = sqlx::query_as(
            "SELECT id, name, permissions::text AS permissions, secret_sha256, created_at FROM services ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(ServiceRecord::try_from).collect()
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM services WHERE id = $1").bind(id.as_ref()).execute(&self.pool).await;
        Ok(deleted.map_err(store_error)?.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlx::Execute;

    use super::*;

    #[test]
    fn the_patch_statement_numbers_every_argument() {
        let patch = Patch::default().set("a", json!({"x": 1})).set("b\"q", json!("s")).remove("c").incr("n", 2);
        let id = SessionId::generate();
        let increments = integer_increments(&patch).unwrap();
        let mut query = patch_query(&id, &patch, &increments, PatchOptions::new(), Timestamp::from_millis(0)).unwrap();
        let bound = query.take_arguments().unwrap().map_or(0, |args| sqlx::Arguments::len(&args));
        let sql = query.sql();
        let highest = (1..=bound + 1).rev().find(|n| sql.as_str().contains(&format!("${n}"))).unwrap();
        assert_eq!(highest, bound);
        assert!(sql.as_str().contains("(attributes - $3::text[]) || $4::jsonb"));
    }
}
