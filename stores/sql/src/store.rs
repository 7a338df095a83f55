//! [`SqlStore`], the store type of both dialects: a connection pool and the migrations it
//! runs. What the store does with the pool is each dialect's own file
//! ([`PostgresStore`](crate::PostgresStore), [`MySqlStore`](crate::MySqlStore)).

use std::fmt;

use sessanger_core::StoreError;
use sqlx::{
    Connection, Database, Pool,
    migrate::{Migrate, Migrator},
};

use crate::error::{migrate_error, pool_options, unreachable};

/// A session store on a SQL database, by its sqlx driver: [`PostgresStore`](crate::PostgresStore)
/// or [`MySqlStore`](crate::MySqlStore).
///
/// Every method of the contract is one statement, or one transaction where it needs a
/// decision between statements or the result of a write; see the crate docs for which.
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store on a ready pool. Does not run migrations: call `migrate` (or use `connect`,
    /// which does).
    pub fn new(pool: Pool<DB>) -> Self {
        SqlStore { pool }
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<DB: Database> SqlStore<DB>
where
    DB::Connection: Migrate,
{
    /// A pool on `options`, migrated with `migrator`.
    /// A pool on `options` (for the database `described`, as errors name it) with the
    /// migrations of `migrator` applied.
    pub(crate) async fn open(
        options: <DB::Connection as Connection>::Options,
        migrator: &Migrator,
        described: &str,
    ) -> Result<Self, StoreError> {
        let pool = pool_options().connect_with(options).await.map_err(|e| unreachable(described, e))?;
        let store = Self::new(pool);
        store.apply(migrator).await?;
        Ok(store)
    }

    /// Applies the migrations of `migrator` the database has not seen yet.
    pub(crate) async fn apply(&self, migrator: &Migrator) -> Result<(), StoreError> {
        migrator.run(&self.pool).await.map_err(migrate_error)
    }
}

impl<DB: Database> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore").field("database", &DB::NAME).finish_non_exhaustive()
    }
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore { pool: self.pool.clone() }
    }
}
