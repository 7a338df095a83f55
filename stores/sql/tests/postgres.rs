//! The PostgreSQL store against the machine's server (`SESSANGER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Every store lives in a fresh schema, so cases
//! and runs never see each other; an unreachable server fails the tests.

mod common;

use std::str::FromStr;

use sessanger_core::{SessionId, StoreError};
use sessanger_store_sql::PostgresStore;
use sqlx::{Connection, Executor, PgConnection, Row, postgres::PgConnectOptions};

fn url() -> String {
    std::env::var("SESSANGER_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn admin() -> PgConnection {
    let url = url();
    PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {url} (set SESSANGER_TEST_POSTGRES_URL): {e}"))
}

/// The PostgreSQL server of the tests.
struct Postgres;

impl common::TestServer for Postgres {
    type Store = PostgresStore;
    type Options = PgConnectOptions;
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const UNREACHABLE_URL: &str = "postgres://postgres@127.0.0.1:1/test";
    const FOREIGN_URL: &str = "mysql://root@127.0.0.1/test";
    const MIGRATIONS: i64 = 2;

    async fn fresh() -> (PgConnectOptions, String) {
        let mut admin = admin().await;
        let stale: Vec<String> = sqlx::query(
            "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'sessanger\\_t%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .filter(|name| common::is_stale(name))
        .collect();
        for name in stale {
            // Another run may drop it at the same moment; either way it is gone.
            let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).await;
        }
        let schema = common::unique_name();
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.unwrap();
        let options = PgConnectOptions::from_str(&url()).unwrap().options([("search_path", schema.as_str())]);
        (options, schema)
    }

    async fn connect_with(options: PgConnectOptions) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(options).await
    }

    async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(url).await
    }

    async fn migrate(store: &PostgresStore) -> Result<(), StoreError> {
        store.migrate().await
    }

    async fn corrupt_attributes(store: &PostgresStore, id: &SessionId) {
        sqlx::query("UPDATE sessions SET attributes = '[1, 2]'::jsonb WHERE id = $1")
            .bind(id.as_ref())
            .execute(store.pool())
            .await
            .unwrap();
    }

    async fn migrations_applied(store: &PostgresStore, schema: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {schema}._sqlx_migrations")))
            .fetch_one(store.pool())
            .await
            .unwrap()
    }
}

sql_store_tests!(Postgres);
