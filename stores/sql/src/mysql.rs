//! MySQL and MariaDB: attributes are `JSON` (LONGTEXT with a validity check on MariaDB),
//! changed in place with `JSON_SET` and `JSON_REMOVE`. There is no `UPDATE ... RETURNING`,
//! so a write and the read of its result share a transaction.

use std::str::FromStr;

use sessanger_core::{StoreError, UserId};
use sqlx::{
    MySql,
    mysql::{MySqlConnectOptions, MySqlPool},
};

use crate::shared::{
    Dialect, Sealed, SqlBuilder, SqlStore, Stmt, driver_bind, driver_io, pool_options, redact, store_error,
};

/// The MySQL/MariaDB dialect of [`SqlStore`].
#[derive(Debug, Clone, Copy)]
pub struct MySqlDialect;

/// Sessions and services in MySQL or MariaDB (`mysql://` or `mariadb://` URLs).
pub type MySqlStore = SqlStore<MySqlDialect>;

impl Sealed for MySqlDialect {}

impl MySqlDialect {
    driver_bind!(MySql);
}

impl Dialect for MySqlDialect {
    type DB = MySql;
    const RETURNING: bool = false;

    fn placeholder(_: usize) -> String {
        "?".to_owned()
    }

    fn json_text(column: &str) -> String {
        // MySQL 8 returns a JSON column as its own type; as CHAR it reads as text everywhere.
        format!("CAST({column} AS CHAR)")
    }

    fn json_arg(placeholder: &str) -> String {
        // Marks the text as a JSON document (MariaDB has no `CAST(.. AS JSON)`), so
        // `JSON_SET` embeds it as a value rather than as a string.
        format!("JSON_EXTRACT({placeholder}, '$')")
    }

    fn key_arg(key: &str) -> String {
        // A JSON path naming one member: `$."key"`, the key quoted as a JSON string so any
        // character (dots, spaces, quotes) stays part of the name.
        format!("$.{}", serde_json::Value::from(key))
    }

    fn json_remove(doc: &str, key: &str) -> String {
        format!("JSON_REMOVE({doc}, {key})")
    }

    fn json_set(doc: &str, key: &str, value: &str) -> String {
        format!("JSON_SET({doc}, {key}, {value})")
    }

    fn int_sum(sql: &mut SqlBuilder<Self>, doc: &str, key: &str, by: i64) -> String {
        let path = Self::key_arg(key);
        // Bound in the order the placeholders appear below.
        let (has, by_alone) = (sql.text(path.clone()), sql.int(by));
        let (typed, value, by_added) = (sql.text(path.clone()), sql.text(path), sql.int(by));
        // DECIMAL(20,0) holds any sum of two 64-bit integers exactly, so overflow shows as
        // out of range instead of failing the statement. CASE keeps non-integers from the cast.
        format!(
            "CASE WHEN NOT JSON_CONTAINS_PATH({doc}, 'one', {has}) THEN CAST({by_alone} AS DECIMAL(20,0)) \
             WHEN JSON_TYPE(JSON_EXTRACT({doc}, {typed})) = 'INTEGER' \
             THEN CAST(JSON_EXTRACT({doc}, {value}) AS DECIMAL(20,0)) + {by_added} END"
        )
    }

    fn int_json(expr: &str) -> String {
        format!("CAST(({expr}) AS SIGNED)")
    }

    fn lock_user(_: &UserId) -> Option<Stmt> {
        // `SELECT ... FOR UPDATE` on the user's index range takes next-key locks, which also
        // cover the gap where a user without sessions would get their first: InnoDB blocks
        // (or, for two first creates, deadlocks and retries) any concurrent insert there.
        None
    }

    driver_io!(MySql, sqlx::migrate!("migrations/mysql"));
}

impl SqlStore<MySqlDialect> {
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
    pub async fn connect_with(options: MySqlConnectOptions) -> Result<Self, StoreError> {
        let pool: MySqlPool = pool_options().connect_with(options).await.map_err(store_error)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }
}
