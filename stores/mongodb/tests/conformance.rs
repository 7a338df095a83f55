//! The store contract, checked by the shared conformance suite against the MongoDB server at
//! `SESSANGER_TEST_MONGODB_URL` (e.g. `mongodb://127.0.0.1:27017/?replicaSet=rs0` to cover
//! transactions, or a standalone `mongodb://127.0.0.1:27017` for the user lock).
//!
//! MongoDB is optional: no server can be installed on the project's machines. Without the
//! variable the suite does not run; the test says so on the terminal (past the harness's
//! output capture) and returns. So a green result means "ran, or was told not to", which the
//! test's name states. With the variable, every case of `sessanger_testkit::cases` runs in
//! turn, each in a database of its own that is dropped afterwards, and a failure names its case.

use std::io::Write;

use sessanger_core::SessionId;
use sessanger_store_mongodb::{MongoOptions, MongoStore};

const URL_VARIABLE: &str = "SESSANGER_TEST_MONGODB_URL";

/// Runs each case of `sessanger_testkit::cases` (named by `for_each_case!`) against a fresh
/// database.
macro_rules! suite {
    (; $($case:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($case)),*];

        fn run_suite(url: &str) {
            let run_id = &SessionId::generate().as_ref()[..10].replace(['-', '_'], "x");
            let mut index = 0;
            $(
                index += 1;
                // MongoDB database names are at most 63 bytes: the index keeps them distinct.
                let database = format!("sst_{run_id}_{index:02}_{}", stringify!($case));
                let database = &database[..database.len().min(63)];
                announce(&format!("mongodb conformance: {} (database {database})", stringify!($case)));
                sessanger_testkit::run(|| store(url, database), sessanger_testkit::cases::$case);
                drop_database(url, database);
            )*
        }
    };
}

sessanger_testkit::for_each_case!(suite;);

/// Writes to the terminal directly: the test harness captures `println!`, not this.
fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

async fn store(url: &str, database: &str) -> MongoStore {
    let options = MongoOptions::from_url(url).and_then(|o| o.with_database(database)).expect("valid test options");
    match MongoStore::open(&options).await {
        Ok(store) => store,
        Err(error) => panic!("cannot reach MongoDB at {url} ({error:?}); unset {URL_VARIABLE} to skip"),
    }
}

fn drop_database(url: &str, database: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        let store = store(url, database).await;
        store.database().drop().await.expect("drop the test database");
    });
}

#[test]
fn mongodb_conformance_suite_runs_when_a_server_is_configured() {
    let Some(url) = std::env::var(URL_VARIABLE).ok().filter(|url| !url.is_empty()) else {
        announce(&format!("skipped: set {URL_VARIABLE} to run the MongoDB conformance suite"));
        return;
    };
    run_suite(&url);
    announce(&format!("mongodb conformance: all {} cases passed", CASES.len()));
}
