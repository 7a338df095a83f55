//! The tower-sessions store contract, and sessanger's user index, checked on `SessangerStore`
//! over each sessanger store it is shipped with: every case runs once per store, named
//! `memory::<case>` and `embedded::<case>`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use sessanger_core::{Backend, SessionManager, SessionPolicy, UserId};
use sessanger_store_embedded::EmbeddedStore;
use sessanger_store_memory::MemoryStore;
use sessanger_tower::{ANONYMOUS_PREFIX, DEVICE_KEY, SessangerStore, session_id_of};
use tempfile::TempDir;
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::Error,
};

/// A store for one case, with whatever must outlive it (the embedded store's directory).
struct Fixture {
    store: SessangerStore,
    _dir: Option<TempDir>,
}

fn fixture(backend: Arc<dyn Backend>, dir: Option<TempDir>) -> Fixture {
    let manager = SessionManager::with_policy(backend, SessionPolicy::default());
    Fixture { store: SessangerStore::new(manager), _dir: dir }
}

fn memory_store() -> Fixture {
    fixture(Arc::new(MemoryStore::new()), None)
}

fn embedded_store() -> Fixture {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    fixture(Arc::new(store), Some(dir))
}

/// One `#[tokio::test]` per case, on the store `$make` builds.
macro_rules! contract_tests {
    ($make:path) => {
        contract_tests!(@cases $make;
            create_never_overwrites_an_existing_session,
            load_of_an_unknown_id_returns_none,
            load_returns_the_created_data_and_expiry,
            save_replaces_the_whole_data,
            load_of_an_expired_session_returns_none,
            idle_ttl_caps_the_lifetime_the_record_asks_for,
            delete_removes_the_session_and_deleting_twice_is_fine,
            save_of_a_deleted_session_does_not_bring_it_back,
            a_session_with_a_user_is_indexed_under_that_user,
            the_user_attribute_is_configurable,
            anonymous_sessions_each_have_a_user_of_their_own,
            the_reserved_anonymous_prefix_is_refused_as_a_user,
            a_user_attribute_that_is_not_a_user_id_is_an_encode_error,
            save_refuses_to_change_the_user_without_a_new_id,
            the_device_is_kept_as_sessangers_device,
            delete_user_sessions_revokes_every_session_of_the_user,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                super::$case($make()).await;
            }
        )*
    };
}

mod memory {
    contract_tests!(super::memory_store);
}

mod embedded {
    contract_tests!(super::embedded_store);
}

fn record(data: Value) -> Record {
    let Value::Object(map) = data else { panic!("record data must be an object") };
    Record {
        id: Id::default(),
        data: map.into_iter().collect(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

fn alice() -> UserId {
    "alice".parse().unwrap()
}

async fn create_never_overwrites_an_existing_session(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut first = record(json!({"n": 1}));
    store.create(&mut first).await.unwrap();
    let mut second = record(json!({"n": 2}));
    second.id = first.id;
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id, "a taken id must be replaced");
    assert_eq!(store.load(&first.id).await.unwrap().unwrap().data["n"], json!(1));
    assert_eq!(store.load(&second.id).await.unwrap().unwrap().data["n"], json!(2));
}

async fn load_of_an_unknown_id_returns_none(fx: Fixture) {
    assert!(fx.store.load(&Id::default()).await.unwrap().is_none());
}

async fn load_returns_the_created_data_and_expiry(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut created = record(json!({"cart": [1, 2], "theme": "dark"}));
    store.create(&mut created).await.unwrap();
    let loaded = store.load(&created.id).await.unwrap().unwrap();
    assert_eq!(loaded.id, created.id);
    assert_eq!(loaded.data, created.data);
    let drift = (loaded.expiry_date - created.expiry_date).abs();
    assert!(drift < time::Duration::seconds(5), "expiry moved by {drift}");
}

async fn save_replaces_the_whole_data(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut created = record(json!({"keep": 1, "drop": 2}));
    store.create(&mut created).await.unwrap();
    let mut changed = created.clone();
    changed.data = HashMap::from([("keep".to_owned(), json!(10)), ("new".to_owned(), json!(3))]);
    store.save(&changed).await.unwrap();
    assert_eq!(store.load(&created.id).await.unwrap().unwrap().data, changed.data);
}

async fn load_of_an_expired_session_returns_none(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut expired = record(json!({"n": 1}));
    expired.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store.create(&mut expired).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.load(&expired.id).await.unwrap().is_none());
}

async fn idle_ttl_caps_the_lifetime_the_record_asks_for(fx: Fixture) {
    let store = fx.store.with_idle_ttl(Duration::from_millis(30));
    let mut created = record(json!({"n": 1}));
    store.create(&mut created).await.unwrap();
    assert!(store.load(&created.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(store.load(&created.id).await.unwrap().is_none());
}

async fn delete_removes_the_session_and_deleting_twice_is_fine(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut created = record(json!({"n": 1}));
    store.create(&mut created).await.unwrap();
    store.delete(&created.id).await.unwrap();
    assert!(store.load(&created.id).await.unwrap().is_none());
    store.delete(&created.id).await.unwrap();
}

async fn save_of_a_deleted_session_does_not_bring_it_back(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut created = record(json!({"user_id": "alice"}));
    store.create(&mut created).await.unwrap();
    store.delete_user_sessions(&alice()).await.unwrap();
    store.save(&created).await.unwrap();
    assert!(store.load(&created.id).await.unwrap().is_none());
}

async fn a_session_with_a_user_is_indexed_under_that_user(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut created = record(json!({"user_id": "alice"}));
    store.create(&mut created).await.unwrap();
    let sessions = store.list_user_sessions(&alice()).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, session_id_of(&created.id));
    assert_eq!(sessions[0].id.shard_tag(), alice().shard_tag());
}

async fn the_user_attribute_is_configurable(fx: Fixture) {
    let store = fx.store.with_user_attribute("account");
    let mut created = record(json!({"account": "alice", "user_id": "not-the-user"}));
    store.create(&mut created).await.unwrap();
    assert_eq!(store.list_user_sessions(&alice()).await.unwrap().len(), 1);
}

async fn anonymous_sessions_each_have_a_user_of_their_own(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let (mut a, mut b) = (record(json!({"n": 1})), record(json!({"n": 2})));
    store.create(&mut a).await.unwrap();
    store.create(&mut b).await.unwrap();
    let owner = |id: &Id| {
        let manager = store.manager().clone();
        let id = session_id_of(id);
        async move { manager.get_session(&id).await.unwrap().user_id }
    };
    let (user_a, user_b) = (owner(&a.id).await, owner(&b.id).await);
    assert_ne!(user_a, user_b);
    assert!(user_a.as_ref().starts_with(ANONYMOUS_PREFIX));
    assert!(!store.load(&a.id).await.unwrap().unwrap().data.contains_key("user_id"));
}

async fn the_reserved_anonymous_prefix_is_refused_as_a_user(fx: Fixture) {
    let mut forged = record(json!({"user_id": format!("{ANONYMOUS_PREFIX}x")}));
    assert!(matches!(fx.store.create(&mut forged).await, Err(Error::Encode(_))));
}

async fn a_user_attribute_that_is_not_a_user_id_is_an_encode_error(fx: Fixture) {
    let mut bad = record(json!({"user_id": 42}));
    assert!(matches!(fx.store.create(&mut bad).await, Err(Error::Encode(_))));
}

async fn save_refuses_to_change_the_user_without_a_new_id(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut anonymous = record(json!({"n": 1}));
    store.create(&mut anonymous).await.unwrap();
    let mut logged_in = anonymous.clone();
    logged_in.data.insert("user_id".into(), json!("alice"));
    assert!(matches!(store.save(&logged_in).await, Err(Error::Backend(_))));
    assert!(store.list_user_sessions(&alice()).await.unwrap().is_empty());
}

async fn the_device_is_kept_as_sessangers_device(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut created = record(json!({"user_id": "alice", DEVICE_KEY: {"user_agent": "Firefox"}}));
    store.create(&mut created).await.unwrap();
    let session = &store.list_user_sessions(&alice()).await.unwrap()[0];
    assert_eq!(session.device.user_agent.as_deref(), Some("Firefox"));
    assert!(!session.attributes.contains_key(DEVICE_KEY));
    assert_eq!(store.load(&created.id).await.unwrap().unwrap().data[DEVICE_KEY]["user_agent"], json!("Firefox"));
}

async fn delete_user_sessions_revokes_every_session_of_the_user(fx: Fixture) {
    let Fixture { store, _dir } = fx;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut created = record(json!({"user_id": "alice"}));
        store.create(&mut created).await.unwrap();
        ids.push(created.id);
    }
    let mut bob = record(json!({"user_id": "bob"}));
    store.create(&mut bob).await.unwrap();
    assert_eq!(store.delete_user_sessions(&alice()).await.unwrap(), 3);
    for id in ids {
        assert!(store.load(&id).await.unwrap().is_none());
    }
    assert!(store.load(&bob.id).await.unwrap().is_some());
}
