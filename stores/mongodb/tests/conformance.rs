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

/// Runs each named case of `sessanger_testkit::cases` against a fresh database; also yields
/// the list of names, so a test can check it against the testkit.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
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

suite!(
    create_then_load_returns_the_same_session,
    load_of_unknown_id_returns_none,
    load_of_expired_session_returns_none,
    create_never_overwrites_a_live_session,
    create_may_reuse_the_id_of_an_expired_session,
    concurrent_creates_for_one_user_are_all_kept,
    patch_sets_removes_and_increments_atomically,
    patch_of_unknown_or_expired_session_is_not_found,
    patch_with_stale_version_changes_nothing,
    rejected_patch_changes_nothing,
    two_hundred_concurrent_writers_of_different_keys_lose_nothing,
    sixty_four_concurrent_increments_lose_nothing,
    concurrent_version_checked_patches_let_exactly_one_win,
    replace_is_compare_and_set_by_version,
    touch_renews_idle_deadline_but_not_past_absolute,
    patch_with_touch_renews_the_idle_deadline,
    rename_moves_the_session_to_the_new_id,
    rename_to_a_live_id_is_refused,
    rename_of_unknown_session_is_not_found,
    delete_returns_the_session_once,
    list_user_returns_only_that_users_live_sessions_oldest_first,
    delete_user_removes_all_and_only_that_users_sessions,
    list_and_revoke_stay_consistent_after_some_sessions_expire,
    count_active_ignores_expired_sessions,
    delete_expired_removes_due_sessions_in_bounded_batches,
    refuse_limit_refuses_the_session_over_the_limit,
    evict_oldest_limit_deletes_the_oldest_sessions,
    concurrent_creates_never_exceed_the_user_limit,
    attributes_keep_any_json_value,
    services_are_created_once_listed_and_deleted,
    ping_answers,
);

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

/// The list above must not fall behind the testkit: every case it defines runs here.
#[test]
fn the_suite_names_every_case_the_testkit_defines() {
    let cases = include_str!("../../../crates/sessanger-testkit/src/cases.rs");
    let defined: Vec<&str> = cases
        .lines()
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .filter_map(|rest| rest.split('(').next())
        .collect();
    assert!(!defined.is_empty());
    for case in &defined {
        assert!(CASES.contains(case), "the testkit's case `{case}` is missing from this suite");
    }
    assert_eq!(CASES.len(), defined.len());
}
