//! The PostgreSQL store against the machine's server (`SESSANGER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Every store lives in a fresh schema, so cases
//! and runs never see each other; an unreachable server fails the tests.

mod common;

use std::str::FromStr;

use sessanger_core::{Maintenance, StoreError};
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

/// Creates a fresh schema (dropping test schemas over an hour old) and returns its options.
async fn fresh_schema() -> (PgConnectOptions, String) {
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

async fn store() -> PostgresStore {
    let (options, _) = fresh_schema().await;
    PostgresStore::connect_with(options).await.expect("the store connects and migrates")
}

sessanger_testkit::store_conformance!(store);

#[tokio::test]
async fn a_row_whose_attributes_are_not_an_object_is_a_decode_error() {
    let store = store().await;
    let pool = store.pool().clone();
    common::a_corrupt_row_reads_as_a_decode_error(&store, async |id| {
        sqlx::query("UPDATE sessions SET attributes = '[1, 2]'::jsonb WHERE id = $1")
            .bind(id.as_ref())
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
}

sql_backend_cases!(store);

#[tokio::test]
async fn migrations_are_idempotent_when_connecting_twice() {
    let (options, schema) = fresh_schema().await;
    let first = PostgresStore::connect_with(options.clone()).await.unwrap();
    first.ping().await.unwrap();
    let second = PostgresStore::connect_with(options).await.expect("a second connect finds the schema in place");
    second.migrate().await.unwrap();
    let applied: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {schema}._sqlx_migrations")))
            .fetch_one(second.pool())
            .await
            .unwrap();
    assert_eq!(applied, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let error = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_url_of_another_scheme_is_refused() {
    assert!(matches!(PostgresStore::connect("mysql://root@127.0.0.1/test").await, Err(StoreError::Other(_))));
}
