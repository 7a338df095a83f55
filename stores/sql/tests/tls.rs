//! Both SQL stores over TLS, against the TLS-only servers of `scripts/sql-tls` (started by
//! `scripts/test`): PostgreSQL on 5433 and MariaDB on 3307, their certificates from the test
//! CA of `scripts/test-ca`. The conformance suite on each; a client trusting another CA refuses
//! them, naming the server; plaintext to them fails at once, saying why. Fails when the servers
//! are not reachable.

use sessanger_store_sql::{MySqlStore, PostgresStore};
use sessanger_testkit::tls::{error_chain as chain, trusting};
use sessanger_tls::TlsOptions;
use sqlx::Executor;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5433/test";
const MARIADB: &str = "mysql://root@127.0.0.1:3307/test";

/// A schema or database name of its own for each store.
fn unique() -> String {
    format!(
        "sessanger_tls_{}",
        sessanger_core::SessionId::generate().as_ref()[..10].to_ascii_lowercase().replace('-', "_")
    )
}

/// A store on the TLS-only PostgreSQL, verifying its certificate, in a schema of its own.
async fn postgres() -> PostgresStore {
    let admin = PostgresStore::connect_tls(POSTGRES, &trusting("ca.crt")).await.expect("scripts/sql-tls is up");
    let schema = unique();
    admin.pool().execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.unwrap();
    PostgresStore::connect_tls(&format!("{POSTGRES}?options=-csearch_path%3D{schema}"), &trusting("ca.crt"))
        .await
        .unwrap()
}

/// A store on the TLS-only MariaDB, verifying its certificate, in a database of its own.
async fn mariadb() -> MySqlStore {
    let admin = MySqlStore::connect_tls(MARIADB, &trusting("ca.crt")).await.expect("scripts/sql-tls is up");
    let database = unique();
    admin.pool().execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).await.unwrap();
    MySqlStore::connect_tls(&format!("mysql://root@127.0.0.1:3307/{database}"), &trusting("ca.crt")).await.unwrap()
}

mod postgres {
    use super::postgres as store;

    sessanger_testkit::store_conformance!(store);
}

mod mariadb {
    use super::mariadb as store;

    sessanger_testkit::store_conformance!(store);
}

#[tokio::test]
async fn a_server_whose_certificate_another_ca_signed_is_refused_naming_it() {
    let refused = PostgresStore::connect_tls(POSTGRES, &trusting("other-ca.crt")).await.expect_err("refused");
    let message = chain(&refused);
    assert!(message.contains("127.0.0.1:5433") && message.contains("UnknownIssuer"), "{message}");
    let refused = MySqlStore::connect_tls(MARIADB, &trusting("other-ca.crt")).await.expect_err("refused");
    let message = chain(&refused);
    assert!(message.contains("127.0.0.1:3307") && message.contains("UnknownIssuer"), "{message}");
}

#[tokio::test]
async fn plaintext_to_a_tls_only_server_fails_at_once_saying_why() {
    let started = std::time::Instant::now();
    let url = format!("{POSTGRES}?sslmode=disable");
    let message = chain(&PostgresStore::connect_tls(&url, &TlsOptions::default()).await.expect_err("refused"));
    assert!(message.contains("127.0.0.1:5433") && message.contains("no encryption"), "{message}");
    let url = format!("{MARIADB}?ssl-mode=disabled");
    let message = chain(&MySqlStore::connect_tls(&url, &TlsOptions::default()).await.expect_err("refused"));
    assert!(message.contains("127.0.0.1:3307") && message.contains("TLS off"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}
