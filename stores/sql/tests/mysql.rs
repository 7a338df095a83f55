//! The MySQL/MariaDB store against the machine's server (`SESSANGER_TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306/test`). Every store lives in a fresh database, so cases and
//! runs never see each other; an unreachable server fails the tests.

mod common;

use std::str::FromStr;

use sessanger_core::{Maintenance, SessionId, StoreError};
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

/// The MySQL or MariaDB server of the tests.
struct MySql;

impl common::TestServer for MySql {
    type Store = MySqlStore;
    type Options = MySqlConnectOptions;
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const UNREACHABLE_URL: &str = "mysql://root@127.0.0.1:1/test";
    const FOREIGN_URL: &str = "postgres://x@127.0.0.1/test";
    const MIGRATIONS: i64 = 2;

    async fn fresh() -> (MySqlConnectOptions, String) {
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

    async fn connect_with(options: MySqlConnectOptions) -> Result<MySqlStore, StoreError> {
        MySqlStore::connect_with(options).await
    }

    async fn connect(url: &str) -> Result<MySqlStore, StoreError> {
        MySqlStore::connect(url).await
    }

    async fn migrate(store: &MySqlStore) -> Result<(), StoreError> {
        store.migrate().await
    }

    async fn corrupt_attributes(store: &MySqlStore, id: &SessionId) {
        sqlx::query("UPDATE sessions SET attributes = '[1, 2]' WHERE id = ?")
            .bind(id.as_ref())
            .execute(store.pool())
            .await
            .unwrap();
    }

    async fn migrations_applied(store: &MySqlStore, database: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {database}._sqlx_migrations")))
            .fetch_one(store.pool())
            .await
            .unwrap()
    }
}

sql_store_tests!(MySql);

#[tokio::test]
async fn a_mariadb_url_is_accepted_and_another_scheme_refused() {
    let (_, database) = <MySql as common::TestServer>::fresh().await;
    let url = url().replacen("mysql://", "mariadb://", 1);
    let url = format!("{}/{database}", url.rsplit_once('/').unwrap().0);
    MySqlStore::connect(&url).await.unwrap().ping().await.unwrap();
    assert!(matches!(MySqlStore::connect("postgres://x@127.0.0.1/test").await, Err(StoreError::Other(_))));
}
