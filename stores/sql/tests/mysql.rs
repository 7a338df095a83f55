//! The MySQL/MariaDB store against the machine's server (`SESSANGER_TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306/test`). Every store lives in a fresh database, so cases and
//! runs never see each other; an unreachable server fails the tests.

mod common;

use std::str::FromStr;

use sessanger_core::{Maintenance, StoreError};
use sessanger_store_sql::MySqlStore;
use sqlx::{Connection, Executor, MySqlConnection, Row, mysql::MySqlConnectOptions};

fn url() -> String {
    std::env::var("SESSANGER_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

async fn admin() -> MySqlConnection {
    let url = url();
    MySqlConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("MySQL/MariaDB must be reachable at {url} (set SESSANGER_TEST_MYSQL_URL): {e}"))
}

/// Creates a fresh database (dropping test databases over an hour old) and returns its options.
async fn fresh_database() -> (MySqlConnectOptions, String) {
    let mut admin = admin().await;
    let stale: Vec<String> = sqlx::query("SHOW DATABASES LIKE 'sessanger\\_t%'")
        .fetch_all(&mut admin)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .filter(|name| common::is_stale(name))
        .collect();
    for name in stale {
        // Another run may drop it at the same moment; either way it is gone.
        let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await;
    }
    let database = common::unique_name();
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).await.unwrap();
    let options = MySqlConnectOptions::from_str(&url()).unwrap().database(&database);
    (options, database)
}

async fn store() -> MySqlStore {
    let (options, _) = fresh_database().await;
    MySqlStore::connect_with(options).await.expect("the store connects and migrates")
}

sessanger_testkit::store_conformance!(store);

#[tokio::test]
async fn a_row_whose_attributes_are_not_an_object_is_a_decode_error() {
    let store = store().await;
    let pool = store.pool().clone();
    common::a_corrupt_row_reads_as_a_decode_error(&store, async |id| {
        sqlx::query("UPDATE sessions SET attributes = '[1, 2]' WHERE id = ?")
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
    let (options, database) = fresh_database().await;
    let first = MySqlStore::connect_with(options.clone()).await.unwrap();
    first.ping().await.unwrap();
    let second = MySqlStore::connect_with(options).await.expect("a second connect finds the schema in place");
    second.migrate().await.unwrap();
    let applied: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {database}._sqlx_migrations")))
            .fetch_one(second.pool())
            .await
            .unwrap();
    assert_eq!(applied, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let error = MySqlStore::connect("mysql://root@127.0.0.1:1/test").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_mariadb_url_is_accepted_and_another_scheme_refused() {
    let (_, database) = fresh_database().await;
    let url = url().replacen("mysql://", "mariadb://", 1);
    let url = format!("{}/{database}", url.rsplit_once('/').unwrap().0);
    MySqlStore::connect(&url).await.unwrap().ping().await.unwrap();
    assert!(matches!(MySqlStore::connect("postgres://x@127.0.0.1/test").await, Err(StoreError::Other(_))));
}
