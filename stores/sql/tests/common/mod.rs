//! Every test of the SQL stores, written once: the conformance suite and the cases both
//! stores check beyond it, stamped for each store by [`sql_store_tests!`]. Each test file
//! says only what differs between the servers, as a [`TestServer`]: how to reach one, how to
//! make a fresh namespace, and how to damage a row from outside.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own subset

use std::{
    num::NonZeroU32,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use sessanger_core::{
    Change, Created, Maintenance, Page, Patch, PatchOptions, Patched, Session, SessionId, Store, StoreError, Timestamp,
    UserId, UserLimit,
};

/// What differs between the PostgreSQL and the MySQL/MariaDB test server.
pub trait TestServer {
    /// The store under test.
    type Store: Store + Clone;
    /// Connect options naming one fresh namespace.
    type Options: Clone;
    /// A URL where nothing listens.
    const UNREACHABLE_URL: &str;
    /// A URL of the other server's scheme.
    const FOREIGN_URL: &str;
    /// How many migrations the dialect has (files in `migrations/<dialect>`).
    const MIGRATIONS: i64;

    /// A fresh schema or database (dropping test ones over an hour old): its connect options
    /// and its name.
    async fn fresh() -> (Self::Options, String);
    /// `connect_with` of the store.
    async fn connect_with(options: Self::Options) -> Result<Self::Store, StoreError>;
    /// `connect` of the store.
    async fn connect(url: &str) -> Result<Self::Store, StoreError>;
    /// `migrate` of the store.
    async fn migrate(store: &Self::Store) -> Result<(), StoreError>;
    /// Stores `[1, 2]` as the attributes of session `id`, behind the store's back.
    async fn corrupt_attributes(store: &Self::Store, id: &SessionId);
    /// How many migrations the namespace `name` records as applied.
    async fn migrations_applied(store: &Self::Store, name: &str) -> i64;
}

/// A store in a fresh namespace, migrated.
pub async fn store<S: TestServer>() -> S::Store {
    let (options, _) = S::fresh().await;
    S::connect_with(options).await.expect("the store connects and migrates")
}

/// Connecting twice to one namespace finds the schema in place and applies nothing again.
pub async fn migrations_are_idempotent_when_connecting_twice<S: TestServer>() {
    let (options, name) = S::fresh().await;
    let first = S::connect_with(options.clone()).await.unwrap();
    first.ping().await.unwrap();
    let second = S::connect_with(options).await.expect("a second connect finds the schema in place");
    S::migrate(&second).await.unwrap();
    assert_eq!(S::migrations_applied(&second, &name).await, S::MIGRATIONS);
}

/// Nothing listening is `Unavailable`, not `Other`.
pub async fn an_unreachable_server_is_unavailable<S: TestServer>() {
    let error = S::connect(S::UNREACHABLE_URL).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

/// The other server's URL is refused before any connection.
pub async fn a_url_of_another_scheme_is_refused<S: TestServer>() {
    assert!(matches!(S::connect(S::FOREIGN_URL).await, Err(StoreError::Other(_))));
}

pub const IDLE: Duration = Duration::from_secs(600);
const ABSOLUTE: Duration = Duration::from_secs(3600);

/// Test schemas and databases are named `sessanger_t<unix seconds>_<random>`, so a later run
/// can tell stale ones (left by a run that was killed) and drop them.
pub const PREFIX: &str = "sessanger_t";

/// A name no other store of any run uses.
pub fn unique_name() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!("{PREFIX}{secs}_{hex}")
}

/// Whether a name made by [`unique_name`] is over an hour old.
pub fn is_stale(name: &str) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|secs| secs + 3600 < now)
}

fn user(name: &str) -> UserId {
    format!("{name}-{}", &SessionId::generate().as_ref()[..8]).parse().unwrap()
}

fn session(user: &UserId, now: Timestamp, idle: Duration) -> Session {
    Session::new(SessionId::generate_for(user), user.clone(), now, idle, ABSOLUTE)
}

async fn create(store: &impl Store, s: &Session) {
    assert_eq!(
        store.create(s, UserLimit::Unlimited, s.created_at).await.unwrap(),
        Created::Created { evicted: vec![] }
    );
}

/// A stored session whose attributes are not a JSON object reads as `Decode`, never as absent.
pub async fn a_corrupt_row_reads_as_a_decode_error<S: Store>(store: &S, corrupt: impl AsyncFnOnce(&SessionId)) {
    let now = Timestamp::now();
    let s = session(&user("corrupt"), now, IDLE);
    create(store, &s).await;
    corrupt(&s.id).await;
    assert!(matches!(store.load(&s.id, now).await, Err(StoreError::Decode(_))), "load");
    assert!(matches!(store.list_user(&s.user_id, &Page::DEFAULT, now).await, Err(StoreError::Decode(_))), "list_user");
    // Deleting still works: the row goes away even though it cannot be read.
    assert!(store.delete_user(&s.user_id, Change::at(now)).await.is_ok());
    assert_eq!(store.load(&s.id, now).await.unwrap(), None);
}

/// Among many live rows and a few dead ones, `delete_expired` removes exactly the dead, at
/// most `limit` per call.
pub async fn delete_expired_removes_just_the_dead_in_bounded_batches(store: &impl Store) {
    let now = Timestamp::now();
    let u = user("purge");
    for _ in 0..300 {
        create(store, &session(&u, now, IDLE)).await;
    }
    let mut dead: Vec<SessionId> = Vec::new();
    for _ in 0..7 {
        let s = session(&u, now, Duration::from_secs(5));
        create(store, &s).await;
        dead.push(s.id);
    }
    let later = now + Duration::from_secs(5);
    let mut purged = Vec::new();
    loop {
        let batch = store.delete_expired(later, 3).await.unwrap();
        assert!(batch.len() <= 3, "a batch is bounded by its limit");
        if batch.is_empty() {
            break;
        }
        purged.extend(batch.into_iter().map(|r| r.id));
    }
    purged.sort();
    dead.sort();
    assert_eq!(purged, dead);
    assert_eq!(
        store.list_user(&u, &Page::first(std::num::NonZeroU32::new(1000).unwrap()), later).await.unwrap().len(),
        300
    );
    assert_eq!(store.count_active(later).await.unwrap(), 300);
}

/// Attribute keys are data, not paths: quotes, backslashes, dots and `$` stay in the name.
pub async fn attribute_keys_with_quotes_backslashes_and_dots_stay_plain_keys(store: &impl Store) {
    let now = Timestamp::now();
    let s = session(&user("keys"), now, IDLE);
    create(store, &s).await;
    let keys = ["a\"b", "back\\slash", "dotted.key", "$.root", "[0]", "'single'", "ünï ✓"];
    let mut p = Patch::default();
    for (i, key) in keys.iter().enumerate() {
        p = p.set(*key, json!(i));
    }
    p = p.incr("n\"1", 5);
    let Patched::Applied(after) = store.patch(&s.id, &p, PatchOptions::new(), Change::at(now)).await.unwrap() else {
        panic!("applies")
    };
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(after.attributes[*key], json!(i), "{key}");
    }
    assert_eq!(after.attributes["n\"1"], json!(5));
    assert_eq!(after.attributes.len(), keys.len() + 1);
    let p = Patch::default().remove("a\"b").incr("n\"1", -7);
    let Patched::Applied(after) = store.patch(&s.id, &p, PatchOptions::new(), Change::at(now)).await.unwrap() else {
        panic!("applies")
    };
    assert!(!after.attributes.contains_key("a\"b"));
    assert_eq!(after.attributes["n\"1"], json!(-2));
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(after));
}

/// An increment that would overflow, or lands on a float, is rejected and writes nothing.
pub async fn increments_that_overflow_or_hit_a_float_are_rejected(store: &impl Store) {
    let now = Timestamp::now();
    let mut s = session(&user("incr"), now, IDLE);
    s.attributes.insert("big".into(), json!(i64::MAX));
    s.attributes.insert("float".into(), json!(1.5));
    s.attributes.insert("null".into(), json!(null));
    create(store, &s).await;
    for key in ["big", "float", "null"] {
        let outcome =
            store.patch(&s.id, &Patch::default().incr(key, 1), PatchOptions::new(), Change::at(now)).await.unwrap();
        assert!(matches!(outcome, Patched::Rejected(_)), "{key}: {outcome:?}");
    }
    let p = Patch::default().incr("big", -1);
    assert!(matches!(store.patch(&s.id, &p, PatchOptions::new(), Change::at(now)).await.unwrap(), Patched::Applied(_)));
    let loaded = store.load(&s.id, now).await.unwrap().unwrap();
    assert_eq!(loaded.attributes["big"], json!(i64::MAX - 1));
    assert_eq!(loaded.version.0, 2);
}

/// A limited create for a user with no sessions yet, raced 20 times, admits exactly the limit.
pub async fn first_creates_of_a_user_under_a_limit_race_safely(store: std::sync::Arc<dyn Store>) {
    let now = Timestamp::now();
    let u = user("first");
    let limit = UserLimit::Refuse(NonZeroU32::new(2).unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, s) = (store.clone(), session(&u, now, IDLE));
            tokio::spawn(async move { store.create(&s, limit, now).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        created += usize::from(matches!(t.await.unwrap(), Created::Created { .. }));
    }
    assert_eq!(created, 2);
    assert_eq!(store.list_user(&u, &Page::DEFAULT, now).await.unwrap().len(), 2);
}

/// Every test of a SQL store, as named tests over the [`TestServer`] `$server`: the
/// conformance suite and the cases above.
#[macro_export]
macro_rules! sql_store_tests {
    ($server:ty) => {
        async fn store() -> <$server as common::TestServer>::Store {
            common::store::<$server>().await
        }

        sessanger_testkit::store_conformance!(store);
        sessanger_testkit::store_events_conformance!(store);

        #[tokio::test]
        async fn a_row_whose_attributes_are_not_an_object_is_a_decode_error() {
            let store = store().await;
            let damaged = store.clone();
            common::a_corrupt_row_reads_as_a_decode_error(&store, async |id| {
                <$server as common::TestServer>::corrupt_attributes(&damaged, id).await
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn delete_expired_removes_just_the_dead_among_many_live_rows_in_bounded_batches() {
            common::delete_expired_removes_just_the_dead_in_bounded_batches(&store().await).await;
        }

        #[tokio::test]
        async fn attribute_keys_with_quotes_backslashes_and_dots_stay_plain_keys() {
            common::attribute_keys_with_quotes_backslashes_and_dots_stay_plain_keys(&store().await).await;
        }

        #[tokio::test]
        async fn increments_that_overflow_or_hit_a_float_are_rejected() {
            common::increments_that_overflow_or_hit_a_float_are_rejected(&store().await).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn first_creates_of_a_user_under_a_limit_race_safely() {
            common::first_creates_of_a_user_under_a_limit_race_safely(std::sync::Arc::new(store().await)).await;
        }

        #[tokio::test]
        async fn migrations_are_idempotent_when_connecting_twice() {
            common::migrations_are_idempotent_when_connecting_twice::<$server>().await;
        }

        #[tokio::test]
        async fn an_unreachable_server_is_unavailable() {
            common::an_unreachable_server_is_unavailable::<$server>().await;
        }

        #[tokio::test]
        async fn a_url_of_another_scheme_is_refused() {
            common::a_url_of_another_scheme_is_refused::<$server>().await;
        }
    };
}
