//! PostgreSQL: attributes are `jsonb`, changed in place with `jsonb_set` and `-`; writes
//! return the written row with `RETURNING`, so most operations are one statement.

use std::str::FromStr;

use sessanger_core::{StoreError, UserId};
use sqlx::{
    Postgres,
    postgres::{PgConnectOptions, PgPool},
};

use crate::shared::{
    Dialect, Sealed, SqlBuilder, SqlStore, Stmt, driver_bind, driver_io, pool_options, redact, store_error,
};

/// The PostgreSQL dialect of [`SqlStore`].
#[derive(Debug, Clone, Copy)]
pub struct PgDialect;

/// Sessions and services in PostgreSQL (`postgres://` or `postgresql://` URLs).
pub type PostgresStore = SqlStore<PgDialect>;

impl Sealed for PgDialect {}

impl PgDialect {
    driver_bind!(Postgres);
}

impl Dialect for PgDialect {
    type DB = Postgres;
    const RETURNING: bool = true;

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn json_text(column: &str) -> String {
        format!("{column}::text")
    }

    fn json_arg(placeholder: &str) -> String {
        format!("{placeholder}::jsonb")
    }

    fn key_arg(key: &str) -> String {
        key.to_owned()
    }

    fn json_remove(doc: &str, key: &str) -> String {
        format!("({doc} - {key})")
    }

    fn json_set(doc: &str, key: &str, value: &str) -> String {
        format!("jsonb_set({doc}, ARRAY[{key}], {value})")
    }

    fn int_sum(sql: &mut SqlBuilder<Self>, doc: &str, key: &str, by: i64) -> String {
        let (key, by) = (sql.text(key), sql.int(by));
        // jsonb keeps a number's text: `5` is an integer, `5.0` is not (serde reads it as a
        // float), exactly as `Session::apply` decides. CASE guarantees the cast never sees
        // a non-integer.
        format!(
            "CASE WHEN {doc} -> {key} IS NULL THEN {by}::numeric \
             WHEN jsonb_typeof({doc} -> {key}) = 'number' AND ({doc} ->> {key}) ~ '^-?[0-9]+$' \
             THEN ({doc} ->> {key})::numeric + {by} END"
        )
    }

    fn int_json(expr: &str) -> String {
        format!("to_jsonb(({expr})::bigint)")
    }

    fn lock_user(user: &UserId) -> Option<Stmt> {
        // A transaction-scoped advisory lock on the user: it exists before the user has any
        // row to lock, so the first creates of a user serialize too, and it is released by
        // commit or rollback. Hash collisions only make two users wait for each other.
        let mut sql = SqlBuilder::<Self>::new();
        let text = format!("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", sql.text(user.as_ref()));
        Some(sql.finish(text, &[]))
    }

    driver_io!(Postgres, sqlx::migrate!("migrations/postgres"));
}

impl SqlStore<PgDialect> {
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
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool: PgPool = pool_options().connect_with(options).await.map_err(store_error)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }
}
