//! [`PostgresStore`]: every statement PostgreSQL receives, as it receives it.
//!
//! Attributes are `jsonb`, changed in place: `-` removes keys, `||` sets them, and the
//! increments are summed from `jsonb_each_text` of the patch's increments, all inside the one
//! `UPDATE` that also checks the version and the room the session cap leaves (a patch near
//! the cap is decided under the row lock instead). Writes return the written row with `RETURNING`, so
//! most operations are one statement. JSON columns are read as text (`device::text`) and
//! bound as text cast to `jsonb` (`$8::jsonb`).
//!
//! Every change writes its event into `events` in the same statement (a data-modifying `WITH`)
//! or transaction. Consumers read events by `seq`, which one sequencer at a time gives to the
//! committed rows in the order they were written (see the migration): a row whose transaction
//! commits late gets a later `seq` instead of being skipped by a reader that already went past
//! its `id`. A session's events keep their order, because its writers take turns on its row.

use std::{num::NonZeroU32, str::FromStr, sync::LazyLock};

use async_trait::async_trait;
use sessanger_core::{
    Change, Created, DeleteReason, EventLog, Maintenance, Page, Patch, PatchOptions, Patched, Renamed, Replaced,
    Replacement, Retention, ServiceChanges, ServiceId, ServiceRecord, ServiceStore, Session, SessionId, SessionRef,
    SessionStore, StoreError, Timestamp, UserId, UserLimit, Version,
};
use sessanger_tls::TlsOptions;
use sqlx::{
    Postgres,
    migrate::Migrator,
    postgres::{PgArguments, PgConnectOptions, PgListener, PgQueryResult, PgSslMode},
    query::{Query, QueryAs},
};
use tokio::sync::mpsc;

use crate::{
    error::{inserted, is_unique_violation, redact, retry_deadlocks, store_error},
    events::{self, LogStatements, Numbering},
    outcome::{Headroom, Updated, admit, finish_create, insert_or_reuse_dead, replaced, settle_patch},
    row::{self, ServiceRow, SessionRow, encode},
    store::SqlStore,
    tls::Mode,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The columns of a session row as the store reads them.
const SESSION_COLUMNS: &str = "id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
     device::text AS device, created_by, attributes::text AS attributes, version";

/// The `jsonb` of a [`SessionEvent`](sessanger_core::SessionEvent) of type `kind` about the row
/// in scope (its `id` and `user_id`), with `extra` fields (`, 'keys', $7`), as serde writes it.
fn event(kind: &str, extra: &str) -> String {
    format!("jsonb_build_object('type', '{kind}', 'session_id', id, 'user_id', user_id{extra})")
}

/// The `INSERT INTO events` of one `kind` of event for each row of `from`, at `now` by `service`
/// (SQL expressions).
fn events(from: &str, now: &str, service: &str, kind: &str, extra: &str) -> String {
    format!("INSERT INTO events (at, service, event) SELECT {now}, {service}, {} FROM {from}", event(kind, extra))
}

/// The `INSERT INTO events` for the sessions a statement removed (`from`, with `expires_at`) at
/// `now`: `deleted` for `reason`, by `service`, if a session was live; `expired`, by nobody, if
/// it was dead already (only the reaper had not reached it: its expiry is told once, by
/// whoever removes it).
fn ended_events(from: &str, now: &str, service: &str, reason: &str) -> String {
    format!(
        "INSERT INTO events (at, service, event)
         SELECT {now}, CASE WHEN expires_at > {now} THEN {service} END,
                CASE WHEN expires_at > {now} THEN {} ELSE {} END
         FROM {from}",
        event("deleted", &format!(", 'reason', {reason}::text")),
        event("expired", "")
    )
}

/// A statement built once from the fragments above.
macro_rules! statement {
    ($name:ident, $build:expr) => {
        static $name: LazyLock<String> = LazyLock::new(|| $build);
    };
}

statement!(
    CREATE,
    format!(
        "WITH s AS (INSERT INTO sessions (id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at,
                                      expires_at, device, created_by, attributes, version)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10::jsonb, $11) RETURNING id, user_id)
     {}",
        events("s", "$3", "$9", "created", "")
    )
);
statement!(
    DELETE_DEAD,
    format!(
        "WITH gone AS (DELETE FROM sessions WHERE id = $1 AND expires_at <= $2 RETURNING id, user_id, expires_at) {}",
        ended_events("gone", "$2", "NULL", "NULL")
    )
);
statement!(
    EVICT,
    format!(
        "WITH gone AS (DELETE FROM sessions WHERE (id = $1 AND expires_at <= $2) OR id = ANY($3)
                   RETURNING id, user_id, expires_at)
     {}",
        ended_events("gone", "$2", "$4", "'evicted'")
    )
);
statement!(
    PATCH,
    format!(
        "WITH u AS ({}),
          e AS ({})
     SELECT * FROM u",
        format!(
            "UPDATE sessions
         SET attributes = (attributes - $3::text[]) || $4::jsonb || COALESCE(
                 (SELECT jsonb_object_agg(incr.key, (
                      CASE WHEN attributes -> incr.key IS NULL THEN incr.value::numeric
                           WHEN jsonb_typeof(attributes -> incr.key) = 'number'
                                AND (attributes ->> incr.key) ~ '^-?[0-9]+$'
                           THEN (attributes ->> incr.key)::numeric + incr.value::numeric END
                  )::bigint)
                  FROM jsonb_each_text($5::jsonb) AS incr),
                 '{{}}'::jsonb),
             device = device || COALESCE($12::jsonb, '{{}}'::jsonb),
             version = version + $15,
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
           AND ($8::bigint IS NULL
                OR (octet_length(attributes::text) + $8 <= $9
                    AND (SELECT count(*) FROM jsonb_object_keys(attributes)) + $10 <= $11))
         RETURNING {SESSION_COLUMNS}"
        ),
        events("u", "$2", "$14", "attributes_changed", ", 'keys', $13::jsonb")
    )
);
statement!(
    REFRESH,
    format!(
        "WITH u AS (UPDATE sessions SET last_access_at = $2, expires_at = LEAST($2 + idle_ttl_ms, absolute_expires_at)
                WHERE id = $1 AND expires_at > $2 RETURNING {SESSION_COLUMNS}),
          e AS ({})
     SELECT * FROM u",
        events("u", "$2", "$3", "refreshed", "")
    )
);
statement!(
    CHANGED,
    format!(
        "INSERT INTO events (at, service, event) VALUES ($2, $3, {})",
        "jsonb_build_object('type', 'attributes_changed', 'session_id', $1::text, 'user_id', $4::text, 'keys', $5::jsonb)"
    )
);
statement!(
    REPLACE,
    format!(
    "WITH u AS (UPDATE sessions SET attributes = $3::jsonb, device = COALESCE($4::jsonb, device), version = version + 1,
                       absolute_expires_at = COALESCE($6, absolute_expires_at),
                       expires_at = LEAST(last_access_at + idle_ttl_ms, COALESCE($6, absolute_expires_at))
                WHERE id = $1 AND expires_at > $2 AND version = COALESCE($5, version)
                RETURNING {SESSION_COLUMNS}),
          e AS ({})
     SELECT * FROM u",
    events("u", "$2", "$7", "attributes_changed", ", 'keys', $8::jsonb")
)
);
statement!(
    RENAME,
    format!(
        "WITH u AS (UPDATE sessions
                SET id = $2, version = version + 1,
                    last_access_at = $3, expires_at = LEAST($3 + idle_ttl_ms, absolute_expires_at)
                WHERE id = $1 AND expires_at > $3
                RETURNING {SESSION_COLUMNS}),
          e AS ({})
     SELECT * FROM u",
        events("u", "$3", "$4", "regenerated", ", 'old_session_id', $1::text")
    )
);
statement!(
    DELETE,
    format!(
        "WITH gone AS (DELETE FROM sessions WHERE id = $1 RETURNING {SESSION_COLUMNS}),
          e AS ({})
     SELECT * FROM gone",
        ended_events("gone", "$2", "$3", "$4")
    )
);
statement!(
    DELETE_USER,
    format!(
        "WITH gone AS (DELETE FROM sessions WHERE user_id = $1 RETURNING id, user_id, expires_at),
          e AS ({})
     SELECT id, expires_at FROM gone",
        ended_events("gone", "$2", "$3", "'revoked'")
    )
);
statement!(PURGE, format!(
    "WITH gone AS (DELETE FROM sessions WHERE id IN (
                       SELECT id FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                   RETURNING id, user_id),
          e AS ({})
     SELECT id, user_id FROM gone",
    events("gone", "$1", "NULL", "expired", "")
));

/// Sessions and services in PostgreSQL (`postgres://` or `postgresql://` URLs).
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/db`, also
    /// `postgresql://`) with a pool of up to 10 connections, and applies the migrations.
    /// An unreachable server is retried for up to 10 seconds.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the server cannot be reached, [`StoreError::Other`] for
    /// a malformed URL or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_tls(url, &TlsOptions::default()).await
    }

    /// Connects like [`connect`](Self::connect), over TLS as the URL asks (`sslmode=require`,
    /// `verify-ca`, `verify-full`, with `sslrootcert` and the like) and as `tls` says: its CAs
    /// and client certificate are used, a URL without `sslmode` then verifies the server's
    /// certificate and name (`verify-full`), and `insecure` encrypts without verifying
    /// (`require`).
    ///
    /// # Errors
    /// As [`connect`](Self::connect); a TLS file that cannot be used is [`StoreError::Other`],
    /// naming it.
    pub async fn connect_tls(url: &str, tls: &TlsOptions) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Other(format!("not a PostgreSQL URL: {}", redact(url)).into()));
        }
        let mut options = PgConnectOptions::from_str(url).map_err(store_error)?;
        let tls = tls.load().map_err(|e| StoreError::Other(e.into()))?;
        if let Some(ca) = tls.ca_pem.clone() {
            options = options.ssl_root_cert_from_pem(ca);
        }
        if let Some(identity) = &tls.identity {
            options = options.ssl_client_cert_from_pem(&identity.cert_pem).ssl_client_key_from_pem(&identity.key_pem);
        }
        match crate::tls::mode(url, &tls) {
            Some(Mode::Verify) => options = options.ssl_mode(PgSslMode::VerifyFull),
            Some(Mode::Encrypt) => options = options.ssl_mode(PgSslMode::Require),
            None => {}
        }
        Self::open(options, &MIGRATOR, &crate::tls::described(url)).await
    }

    /// Connects with ready connect options (e.g. a `search_path` set through
    /// [`PgConnectOptions::options`]) and applies the migrations.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let url = format!("postgres://{}:{}", options.get_host(), options.get_port());
        Self::open(options, &MIGRATOR, &url).await
    }

    /// Applies the migrations of `migrations/postgres`, embedded in the binary, that the
    /// database has not seen yet; running it again is a no-op, and concurrent runs wait for
    /// each other.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), for a failed migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.apply(&MIGRATOR).await
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
    async fn create_limited(&self, row: &SessionRow, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // A transaction-scoped advisory lock on the user: it exists before the user has any
        // row to lock, so the first creates of a user serialize too, and commit or rollback
        // releases it. A hash collision only makes two users wait for each other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&row.user_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let select =
            sqlx::query_as("SELECT id, expires_at FROM sessions WHERE user_id = $1 ORDER BY created_at, id FOR UPDATE");
        let sessions: Vec<(String, i64)> = select.bind(&row.user_id).fetch_all(&mut *tx).await.map_err(store_error)?;
        let evicted = match admit(&sessions, &row.id, limit, now) {
            Ok(evicted) => evicted,
            // A refusal writes nothing: dropping the transaction rolls it back.
            Err(refused) => return Ok(refused),
        };
        // The evicted sessions, and a dead one holding the new id.
        let evicted_ids: Vec<&str> = evicted.iter().map(AsRef::as_ref).collect();
        let delete = sqlx::query(EVICT.as_str()).bind(&row.id).bind(now.as_millis()).bind(evicted_ids);
        delete.bind(&row.created_by).execute(&mut *tx).await.map_err(store_error)?;
        let inserted = insert(row).execute(&mut *tx).await;
        finish_create(tx, inserted, evicted).await
    }

    /// `create` without a limit: one `INSERT`, unless the id is a dead session's.
    async fn create_unlimited(&self, row: &SessionRow, now: Timestamp) -> Result<Created, StoreError> {
        let delete_dead = || sqlx::query(DELETE_DEAD.as_str()).bind(&row.id);
        insert_or_reuse_dead(
            || async { Ok(insert(row).execute(&self.pool).await?.rows_affected()) },
            || async { Ok(delete_dead().bind(now.as_millis()).execute(&self.pool).await?.rows_affected()) },
        )
        .await
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
                    device::text AS device, created_by, attributes::text AS attributes, version
             FROM sessions WHERE id = $1 AND expires_at > $2 FOR UPDATE",
        );
        let current = select.bind(id.as_ref()).bind(now.as_millis()).fetch_optional(&mut *tx).await;
        let Some(mut session) = row::session(current.map_err(store_error)?)? else { return Ok(Patched::NotFound) };
        let outcome = session.patched(patch, options, now);
        if let Patched::Applied(written) = &outcome {
            sqlx::query(
                "UPDATE sessions
                 SET attributes = $2::jsonb, device = $6::jsonb, version = $3, last_access_at = $4, expires_at = $5
                 WHERE id = $1",
            )
            .bind(id.as_ref())
            .bind(encode(&written.attributes)?)
            .bind(version(written.version))
            .bind(written.last_access_at.as_millis())
            .bind(written.expires_at.as_millis())
            .bind(encode(&written.device)?)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            changed(id, &written.user_id, patch, change).execute(&mut *tx).await.map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
        }
        Ok(outcome)
    }

    /// `rename`: one transaction that deletes a dead session holding the new id, then moves
    /// the live one there.
    async fn rename_once(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        let now = change.now;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(DELETE_DEAD.as_str())
            .bind(new.as_ref())
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let moved: Option<SessionRow> = match sqlx::query_as(RENAME.as_str())
            .bind(old.as_ref())
            .bind(new.as_ref())
            .bind(now.as_millis())
            .bind(service(change))
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

/// The `INSERT` of a new session and of its `created` event, its values bound.
fn insert(row: &SessionRow) -> Query<'static, Postgres, PgArguments> {
    row.bind(sqlx::query(CREATE.as_str()))
}

/// The `UPDATE` that applies a patch in place, in the order of [`Session::apply`]: removals
/// (`-`), then sets (`||`), then increments, each summed from the value stored before the
/// patch. The `WHERE` checks the version, that every increment lands on an absent key or
/// an integer (jsonb keeps a number's text: `5` is an integer, `5.0` is not, exactly as
/// serde reads it) with a sum in range, and the [`Headroom`] a patch that adds needs, so a
/// rejected patch writes nothing.
fn patch_query<'a>(
    id: &'a SessionId,
    patch: &'a Patch,
    increments: &[(&str, i64)],
    options: PatchOptions<'_>,
    change: Change<'a>,
) -> Result<QueryAs<'a, Postgres, SessionRow, PgArguments>, StoreError> {
    let now = change.now;
    let keys: Vec<&str> = patch.keys().collect();
    let increments: serde_json::Map<String, serde_json::Value> =
        increments.iter().map(|(key, by)| ((*key).to_owned(), (*by).into())).collect();
    let PatchOptions { expected, touch, cap, device, writes } = options;
    let room = Headroom::of(patch, cap);
    Ok(sqlx::query_as(PATCH.as_str())
        .bind(id.as_ref())
        .bind(now.as_millis())
        .bind(patch.remove.as_slice())
        .bind(encode(&patch.set)?)
        .bind(encode(&increments)?)
        .bind(touch)
        .bind(expected.map(version))
        .bind(room.map(|r| r.added_bytes))
        .bind(room.map(|r| r.max_bytes))
        .bind(room.map(|r| r.new_keys))
        .bind(room.map(|r| r.max_attributes))
        .bind(device.map(encode).transpose()?)
        .bind(serde_json::to_string(&keys).expect("keys serialize"))
        .bind(service(change))
        .bind(i64::from(writes.get())))
}

/// The `attributes_changed` event of a patch of session `id` of `user`, for a transaction that
/// wrote the patch itself.
fn changed<'a>(
    id: &'a SessionId,
    user: &'a UserId,
    patch: &Patch,
    change: Change<'a>,
) -> Query<'a, Postgres, PgArguments> {
    let keys: Vec<&str> = patch.keys().collect();
    sqlx::query(CHANGED.as_str())
        .bind(id.as_ref())
        .bind(change.now.as_millis())
        .bind(service(change))
        .bind(user.as_ref())
        .bind(serde_json::to_string(&keys).expect("keys serialize"))
}

/// The acting service as the `service` column holds it.
fn service(change: Change<'_>) -> Option<&str> {
    change.service.map(AsRef::as_ref)
}

fn version(v: Version) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for SqlStore<Postgres> {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        let row = SessionRow::new(session)?;
        match limit {
            UserLimit::Unlimited => self.create_unlimited(&row, now).await,
            _ => retry_deadlocks(|| self.create_limited(&row, limit, now)).await,
        }
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

    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        let query = sqlx::query_as(REFRESH.as_str()).bind(id.as_ref()).bind(change.now.as_millis());
        row::session(query.bind(service(change)).fetch_optional(&self.pool).await.map_err(store_error)?)
    }

    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        let now = change.now;
        let write = async |increments: Vec<(&str, i64)>| {
            let written = patch_query(id, patch, &increments, options, change)?.fetch_optional(&self.pool).await;
            self.updated(written, id, now).await
        };
        let locked = || self.patch_locked(id, patch, options, change);
        settle_patch(patch, options, now, || self.load(id, now), write, locked).await
    }

    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        let now = change.now;
        let Replacement { attributes, device, expected, absolute_expires_at } = new;
        let keys: Vec<&str> = attributes.keys().map(String::as_str).collect();
        let written = sqlx::query_as(REPLACE.as_str())
            .bind(id.as_ref())
            .bind(now.as_millis())
            .bind(encode(attributes)?)
            .bind(device.map(encode).transpose()?)
            .bind(expected.map(version))
            .bind(absolute_expires_at.map(Timestamp::as_millis))
            .bind(service(change))
            .bind(serde_json::to_string(&keys).expect("keys serialize"))
            .fetch_optional(&self.pool)
            .await;
        Ok(replaced(self.updated(written, id, now).await?))
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
        let deleted = sqlx::query_as(DELETE.as_str())
            .bind(id.as_ref())
            .bind(now.as_millis())
            .bind(service(change))
            .bind(reason.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(row::session(deleted)?.filter(|s| !s.is_expired(now)))
    }

    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let (after_ms, after_id) = row::page_start(page);
        // The index on (user_id, created_at, id) serves the row comparison and the order.
        let select = sqlx::query_as(
            "SELECT id, user_id, created_at, last_access_at, idle_ttl_ms, absolute_expires_at, expires_at,
                    device::text AS device, created_by, attributes::text AS attributes, version
             FROM sessions WHERE user_id = $1 AND (created_at, id) > ($3, $4) AND expires_at > $2
             ORDER BY created_at, id LIMIT $5",
        );
        let select = select.bind(user.as_ref()).bind(now.as_millis()).bind(after_ms).bind(after_id);
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
                    device::text AS device, created_by, attributes::text AS attributes, version
             FROM sessions WHERE id > $1 AND expires_at > $2 ORDER BY id LIMIT $3",
        );
        let select = select.bind(after.map_or("", AsRef::as_ref)).bind(now.as_millis()).bind(i64::from(limit.get()));
        row::sessions(select.fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        // `user_id` sorts byte by byte (`COLLATE "C"`), so the prefix is a range of its index.
        let select = sqlx::query_as(
            "SELECT DISTINCT user_id FROM sessions WHERE user_id LIKE $1 ESCAPE '!' AND expires_at > $2
             ORDER BY user_id LIMIT $3",
        );
        let select = select.bind(row::like_prefix(prefix)).bind(now.as_millis()).bind(i64::from(limit.get()));
        row::user_ids(select.fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        let now = change.now;
        let deleted = sqlx::query_as(DELETE_USER.as_str())
            .bind(user.as_ref())
            .bind(now.as_millis())
            .bind(service(change))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        row::live_ids(deleted, now)
    }
}

#[async_trait]
impl Maintenance for SqlStore<Postgres> {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        let count = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE expires_at > $1").bind(now.as_millis());
        row::count(count.fetch_one(&self.pool).await.map_err(store_error)?)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Soonest first through the expiry index, so a batch reads only due entries; SKIP
        // LOCKED lets two purgers share the work instead of waiting on each other.
        let purged = sqlx::query_as(PURGE.as_str())
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

    fn event_log(&self) -> Option<&dyn EventLog> {
        Some(self)
    }
}

#[async_trait]
impl Numbering for SqlStore<Postgres> {
    /// Gives `seq` to the committed events that have none, in `id` order. One sequencer at a
    /// time: each takes the `last_seq` row's lock first, and the statement after it sees every
    /// row committed before, so `seq` grows in the order rows became visible. A row whose
    /// transaction is still open is invisible and waits for a later call.
    async fn sequence(&self) -> Result<(), StoreError> {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM events WHERE seq IS NULL)")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        if !pending {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let last: i64 = sqlx::query_scalar("SELECT value FROM event_counters WHERE name = 'last_seq' FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "WITH pending AS (
                 SELECT id, $1::bigint + row_number() OVER (ORDER BY id) AS seq
                 FROM events WHERE seq IS NULL ORDER BY id LIMIT 10000),
             numbered AS (UPDATE events SET seq = pending.seq FROM pending WHERE events.id = pending.id
                          RETURNING pending.seq)
             UPDATE event_counters SET value = COALESCE((SELECT max(seq) FROM numbered), value)
             WHERE name = 'last_seq'",
        )
        .bind(last)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn trim(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError> {
        let keep = events::bigint(retention.max_events.get());
        let trimmed: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM events WHERE id IN (
                     SELECT id FROM events
                     WHERE seq <= (SELECT value FROM event_counters WHERE name = 'last_seq') - $1 OR at < $2
                     ORDER BY seq LIMIT 100000)
                 RETURNING seq)
             UPDATE event_counters SET value = GREATEST(value, COALESCE((SELECT max(seq) FROM gone), 0))
             WHERE name = 'trimmed_through'
             RETURNING (SELECT count(*) FROM gone)",
        )
        .bind(keep)
        .bind((now - retention.max_age).as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(u64::try_from(trimmed).unwrap_or_default())
    }
}

impl LogStatements for Postgres {
    const READ_EVENTS: &'static str =
        "SELECT seq, at, service, event::text FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
    const COUNTER: &'static str = "SELECT value FROM event_counters WHERE name = $1";
    const NEW_RELAY: &'static str =
        "INSERT INTO event_relays (name, holder, until) VALUES ($1, '', 0) ON CONFLICT DO NOTHING";
    const LOCK_RELAY: &'static str = "SELECT holder, until, position FROM event_relays WHERE name = $1 FOR UPDATE";
    const HOLD_RELAY: &'static str = "UPDATE event_relays SET holder = $1, until = $2 WHERE name = $3";
    const ADVANCE_RELAY: &'static str =
        "UPDATE event_relays SET position = $1, until = $2 WHERE name = $3 AND holder = $4";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

#[async_trait]
impl ServiceStore for SqlStore<Postgres> {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let insert = sqlx::query(
            "INSERT INTO services (id, name, permissions, secret_sha256, created_at) VALUES ($1, $2, $3::jsonb, $4, $5)",
        );
        inserted(ServiceRow::new(service)?.bind(insert).execute(&self.pool).await)
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let select = sqlx::query_as(
            "SELECT id, name, permissions::text AS permissions, secret_sha256, created_at FROM services WHERE id = $1",
        );
        row::service(select.bind(id.as_ref()).fetch_optional(&self.pool).await.map_err(store_error)?)
    }

    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let select = sqlx::query_as(
            "SELECT id, name, permissions::text AS permissions, secret_sha256, created_at FROM services
             WHERE id > $1 ORDER BY id LIMIT $2",
        );
        let select = select.bind(after.map_or("", AsRef::as_ref)).bind(i64::from(limit.get()));
        row::services(select.fetch_all(&self.pool).await.map_err(store_error)?)
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        // The announcement goes out when the update commits, never without it.
        let update = sqlx::query(
            "WITH updated AS (
               UPDATE services SET name = $2, permissions = $3::jsonb, secret_sha256 = $4, created_at = $5
               WHERE id = $1 RETURNING id)
             SELECT pg_notify('sessanger_changed_services', id) FROM updated",
        );
        let updated = ServiceRow::new(service)?.bind(update).fetch_optional(&self.pool).await;
        Ok(updated.map_err(store_error)?.is_some())
    }

    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        // The announcement goes out when the deletion commits, never without it.
        let deleted = sqlx::query(
            "WITH deleted AS (DELETE FROM services WHERE id = $1 RETURNING id)
             SELECT pg_notify('sessanger_changed_services', id) FROM deleted",
        )
        .bind(id.as_ref())
        .fetch_optional(&self.pool)
        .await;
        Ok(deleted.map_err(store_error)?.is_some())
    }

    async fn watch_service_changes(&self) -> Result<Option<ServiceChanges>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(store_error)?;
        listener.listen("sessanger_changed_services").await.map_err(store_error)?;
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            // `recv` connects again by itself after a lost connection (changes announced
            // meanwhile are missed: the cache lifetime bounds them); it fails only when the
            // pool is closed.
            while let Ok(notification) = listener.recv().await {
                if let Ok(id) = notification.payload().parse()
                    && sender.send(id).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Some(receiver))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlx::Execute;

    use super::*;

    #[test]
    fn postgres_patch_sql_numbers_every_argument() {
        let patch = Patch::default().set("a", json!({"x": 1})).set("b\"q", json!("s")).remove("c").incr("n", 2);
        let id = SessionId::generate();
        let increments = crate::outcome::integer_increments(&patch).unwrap();
        let change = Change::at(Timestamp::from_millis(0));
        let mut query = patch_query(&id, &patch, &increments, PatchOptions::new(), change).unwrap();
        let bound = query.take_arguments().unwrap().map_or(0, |args| sqlx::Arguments::len(&args));
        let sql = query.sql();
        let highest = (1..=bound + 1).rev().find(|n| sql.as_str().contains(&format!("${n}"))).unwrap();
        assert_eq!(highest, bound);
        assert!(sql.as_str().contains("(attributes - $3::text[]) || $4::jsonb"));
    }
}
