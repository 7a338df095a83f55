//! The tower-sessions store contract, and sessanger's user index, checked on `SessangerStore`
//! over each sessanger store it is shipped with and over a remote sessanger: every case runs
//! over each, named `memory::<case>`, `embedded::<case>` and `remote::<case>` (the
//! adapter over `sessanger-client`, against `sessanger_server::serve` on a local port, on a
//! memory store).

use std::{any::Any, collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use serde_json::{Value, json};
use sessanger_client::Client;
use sessanger_core::{
    DeleteReason, Page, Permission, SessionEvent, SessionManager, SessionPolicy, Store, UserId, UserLimit,
};
use sessanger_server::{AppState, ServerOptions};
use sessanger_store_embedded::EmbeddedStore;
use sessanger_store_memory::MemoryStore;
use sessanger_tower::{ANONYMOUS_PREFIX, DEVICE_KEY, SessangerStore, Upstream, session_id_of};
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::sync::broadcast::Receiver;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::Error,
};

/// The per-user limit of every fixture: high enough for every case but the eviction one.
const MAX_PER_USER: u32 = 3;

/// A store for one case, the manager that holds its sessions (in process, or the server's),
/// and whatever must outlive them (the embedded store's directory).
struct Fixture<U: Upstream> {
    store: SessangerStore<U>,
    manager: SessionManager,
    /// The finest idle lifetime the upstream keeps: the `/v1` API counts whole seconds.
    tick: Duration,
    _keep: Option<Box<dyn Any + Send>>,
}

fn policy() -> SessionPolicy {
    let limit = NonZeroU32::new(MAX_PER_USER).unwrap();
    SessionPolicy { max_per_user: UserLimit::EvictOldest(limit), ..SessionPolicy::default() }
}

fn local(storage: Arc<dyn Store>, keep: Option<Box<dyn Any + Send>>) -> Fixture<SessionManager> {
    let manager = SessionManager::with_policy(storage, policy());
    Fixture { store: SessangerStore::new(manager.clone()), manager, tick: Duration::from_millis(30), _keep: keep }
}

async fn memory_store() -> Fixture<SessionManager> {
    local(Arc::new(MemoryStore::new()), None)
}

async fn embedded_store() -> Fixture<SessionManager> {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    local(Arc::new(store), Some(Box::new(dir)))
}

/// A server on a free port, stopped with the test's runtime, and the adapter over a client of
/// it authenticated as a `web` service that may read and write.
async fn remote_store() -> Fixture<Client> {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), policy());
    let permissions = vec![Permission::Read, Permission::Write];
    let (_, token) = manager.register_service("web".parse().unwrap(), "web", permissions).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(manager.clone(), ServerOptions::default());
    tokio::spawn(sessanger_server::serve(listener, state, std::future::pending()));
    let client = Client::new(&url, &token.expose()).unwrap();
    Fixture { store: SessangerStore::remote(client), manager, tick: Duration::from_secs(1), _keep: None }
}

/// One `#[tokio::test]` per case, on the fixture `$make` builds.
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
            created_sessions_are_announced_and_evictions_too,
            concurrent_saves_are_retried_until_each_applies,
            save_moves_the_deadline_to_the_records_expiry_either_way,
            a_save_never_keeps_a_session_past_the_servers_maximum_lifetime,
            loads_never_extend_the_records_expiry,
            saving_an_expired_record_ends_the_session,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                super::$case($make().await).await;
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

mod remote {
    contract_tests!(super::remote_store);
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

async fn create_never_overwrites_an_existing_session<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut first = record(json!({"n": 1}));
    store.create(&mut first).await.unwrap();
    let mut second = record(json!({"n": 2}));
    second.id = first.id;
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id, "a taken id must be replaced");
    assert_eq!(store.load(&first.id).await.unwrap().unwrap().data["n"], json!(1));
    assert_eq!(store.load(&second.id).await.unwrap().unwrap().data["n"], json!(2));
}

async fn load_of_an_unknown_id_returns_none<U: Upstream>(fx: Fixture<U>) {
    assert!(fx.store.load(&Id::default()).await.unwrap().is_none());
}

async fn load_returns_the_created_data_and_expiry<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"cart": [1, 2], "theme": "dark"}));
    store.create(&mut created).await.unwrap();
    let loaded = store.load(&created.id).await.unwrap().unwrap();
    assert_eq!(loaded.id, created.id);
    assert_eq!(loaded.data, created.data);
    let drift = (loaded.expiry_date - created.expiry_date).abs();
    assert!(drift < time::Duration::seconds(5), "expiry moved by {drift}");
}

async fn save_replaces_the_whole_data<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"keep": 1, "drop": 2}));
    store.create(&mut created).await.unwrap();
    let mut changed = created.clone();
    changed.data = HashMap::from([("keep".to_owned(), json!(10)), ("new".to_owned(), json!(3))]);
    store.save(&changed).await.unwrap();
    assert_eq!(store.load(&created.id).await.unwrap().unwrap().data, changed.data);
}

async fn load_of_an_expired_session_returns_none<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut expired = record(json!({"n": 1}));
    expired.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store.create(&mut expired).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.load(&expired.id).await.unwrap().is_none());
}

async fn idle_ttl_caps_the_lifetime_the_record_asks_for<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store.with_idle_ttl(fx.tick);
    let mut created = record(json!({"n": 1}));
    store.create(&mut created).await.unwrap();
    assert!(store.load(&created.id).await.unwrap().is_some());
    tokio::time::sleep(fx.tick * 5 / 2).await;
    assert!(store.load(&created.id).await.unwrap().is_none());
}

async fn delete_removes_the_session_and_deleting_twice_is_fine<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"n": 1}));
    store.create(&mut created).await.unwrap();
    store.delete(&created.id).await.unwrap();
    assert!(store.load(&created.id).await.unwrap().is_none());
    store.delete(&created.id).await.unwrap();
}

async fn save_of_a_deleted_session_does_not_bring_it_back<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"user_id": "alice"}));
    store.create(&mut created).await.unwrap();
    store.delete_user_sessions(&alice()).await.unwrap();
    store.save(&created).await.unwrap();
    assert!(store.load(&created.id).await.unwrap().is_none());
}

async fn a_session_with_a_user_is_indexed_under_that_user<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"user_id": "alice"}));
    store.create(&mut created).await.unwrap();
    let sessions = store.list_user_sessions(&alice(), &Page::DEFAULT).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, session_id_of(&created.id));
    assert_eq!(sessions[0].id.shard_tag(), alice().shard_tag());
}

async fn the_user_attribute_is_configurable<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store.with_user_attribute("account");
    let mut created = record(json!({"account": "alice", "user_id": "not-the-user"}));
    store.create(&mut created).await.unwrap();
    assert_eq!(store.list_user_sessions(&alice(), &Page::DEFAULT).await.unwrap().len(), 1);
}

async fn anonymous_sessions_each_have_a_user_of_their_own<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let (mut a, mut b) = (record(json!({"n": 1})), record(json!({"n": 2})));
    store.create(&mut a).await.unwrap();
    store.create(&mut b).await.unwrap();
    let owner = |id: &Id| {
        let manager = fx.manager.clone();
        let id = session_id_of(id);
        async move { manager.get_session(&id).await.unwrap().user_id.clone() }
    };
    let (user_a, user_b) = (owner(&a.id).await, owner(&b.id).await);
    assert_ne!(user_a, user_b);
    assert!(user_a.as_ref().starts_with(ANONYMOUS_PREFIX));
    assert!(!store.load(&a.id).await.unwrap().unwrap().data.contains_key("user_id"));
}

async fn the_reserved_anonymous_prefix_is_refused_as_a_user<U: Upstream>(fx: Fixture<U>) {
    let mut forged = record(json!({"user_id": format!("{ANONYMOUS_PREFIX}x")}));
    assert!(matches!(fx.store.create(&mut forged).await, Err(Error::Encode(_))));
}

async fn a_user_attribute_that_is_not_a_user_id_is_an_encode_error<U: Upstream>(fx: Fixture<U>) {
    let mut bad = record(json!({"user_id": 42}));
    assert!(matches!(fx.store.create(&mut bad).await, Err(Error::Encode(_))));
}

async fn save_refuses_to_change_the_user_without_a_new_id<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut anonymous = record(json!({"n": 1}));
    store.create(&mut anonymous).await.unwrap();
    let mut logged_in = anonymous.clone();
    logged_in.data.insert("user_id".into(), json!("alice"));
    assert!(matches!(store.save(&logged_in).await, Err(Error::Backend(_))));
    assert!(store.list_user_sessions(&alice(), &Page::DEFAULT).await.unwrap().is_empty());
}

async fn the_device_is_kept_as_sessangers_device<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"user_id": "alice", DEVICE_KEY: {"user_agent": "Firefox"}}));
    store.create(&mut created).await.unwrap();
    let session = &store.list_user_sessions(&alice(), &Page::DEFAULT).await.unwrap()[0];
    assert_eq!(session.device.user_agent.as_deref(), Some("Firefox"));
    assert!(!session.attributes.contains_key(DEVICE_KEY));
    assert_eq!(store.load(&created.id).await.unwrap().unwrap().data[DEVICE_KEY]["user_agent"], json!("Firefox"));
}

async fn delete_user_sessions_revokes_every_session_of_the_user<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
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

/// The next event of `events`, waiting a little: the server announces before it answers.
async fn next_event(events: &mut Receiver<SessionEvent>) -> SessionEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event within 5 s").unwrap()
}

async fn created_sessions_are_announced_and_evictions_too<U: Upstream>(fx: Fixture<U>) {
    let mut events = fx.manager.subscribe();
    let mut ids = Vec::new();
    for _ in 0..=MAX_PER_USER {
        let mut created = record(json!({"user_id": "alice"}));
        fx.store.create(&mut created).await.unwrap();
        ids.push(session_id_of(&created.id));
        // Oldest goes by `created_at`, in milliseconds: no two sessions share one.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut seen = Vec::new();
    while seen.len() < ids.len() + 1 {
        seen.push(next_event(&mut events).await);
    }
    for id in &ids {
        let created = SessionEvent::Created { session_id: id.clone(), user_id: alice() };
        assert!(seen.contains(&created), "no {created:?} in {seen:?}");
    }
    let evicted = SessionEvent::Deleted { session_id: ids[0].clone(), user_id: alice(), reason: DeleteReason::Evicted };
    assert!(seen.contains(&evicted), "the oldest session's eviction was not announced: {seen:?}");
    assert_eq!(fx.store.list_user_sessions(&alice(), &Page::DEFAULT).await.unwrap().len(), MAX_PER_USER as usize);
}

async fn concurrent_saves_are_retried_until_each_applies<U: Upstream>(fx: Fixture<U>) {
    let store = fx.store;
    let mut created = record(json!({"n": 0}));
    store.create(&mut created).await.unwrap();
    let mut saves = tokio::task::JoinSet::new();
    for n in 1..=4 {
        let (store, mut record) = (store.clone(), created.clone());
        record.data.insert("n".into(), json!(n));
        saves.spawn(async move { store.save(&record).await });
    }
    while let Some(saved) = saves.join_next().await {
        saved.unwrap().expect("a save that lost a race is retried, not failed");
    }
    let n = &store.load(&created.id).await.unwrap().unwrap().data["n"];
    assert!((1..=4).contains(&n.as_u64().unwrap()), "the last writer wins, not {n}");
}

/// The session as the manager sees it, behind the adapter's id.
async fn stored(fx: &Fixture<impl Upstream>, id: &Id) -> Option<std::sync::Arc<sessanger_core::Session>> {
    fx.manager.get_session(&session_id_of(id)).await.ok()
}

/// A record's expiry as a sessanger deadline: to the millisecond.
fn millis(at: OffsetDateTime) -> sessanger_core::Timestamp {
    sessanger_core::Timestamp::from_millis(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap())
}

/// `Session::set_expiry` after creation: each save moves the server's deadline to the
/// record's `expiry_date`, shortened as well as lengthened (tower-sessions' `set_expiry`).
async fn save_moves_the_deadline_to_the_records_expiry_either_way<U: Upstream>(fx: Fixture<U>) {
    let mut record = record(json!({"n": 1}));
    fx.store.create(&mut record).await.unwrap();
    let created = stored(&fx, &record.id).await.unwrap();
    assert_eq!(created.absolute_expires_at, millis(record.expiry_date), "create keeps the record's expiry");

    record.expiry_date = OffsetDateTime::now_utc() + time::Duration::minutes(10);
    fx.store.save(&record).await.unwrap();
    let shortened = stored(&fx, &record.id).await.unwrap();
    assert_eq!(shortened.absolute_expires_at, millis(record.expiry_date));
    assert!(shortened.expires_at <= millis(record.expiry_date));

    record.expiry_date = OffsetDateTime::now_utc() + time::Duration::days(3);
    fx.store.save(&record).await.unwrap();
    let lengthened = stored(&fx, &record.id).await.unwrap();
    assert_eq!(lengthened.absolute_expires_at, millis(record.expiry_date));
    assert!(lengthened.expires_at > millis(OffsetDateTime::now_utc() + time::Duration::minutes(50)));
}

/// A record may ask for more than the operator allows: `SessionPolicy::max_lifetime`,
/// counted from the creation, still caps it.
async fn a_save_never_keeps_a_session_past_the_servers_maximum_lifetime<U: Upstream>(fx: Fixture<U>) {
    let mut record = record(json!({"n": 1}));
    fx.store.create(&mut record).await.unwrap();
    record.expiry_date = OffsetDateTime::now_utc() + time::Duration::days(400);
    fx.store.save(&record).await.unwrap();
    let session = stored(&fx, &record.id).await.unwrap();
    assert_eq!(session.absolute_expires_at, session.created_at + policy().max_lifetime);
    assert_eq!(fx.store.load(&record.id).await.unwrap().unwrap().data["n"], json!(1));
}

/// `Expiry::AtDateTime` is a fixed deadline: loads renew the idle deadline within it, never
/// past it, and the session is gone when it arrives.
async fn loads_never_extend_the_records_expiry<U: Upstream>(fx: Fixture<U>) {
    let mut record = record(json!({"n": 1}));
    record.expiry_date = OffsetDateTime::now_utc() + fx.tick * 3;
    fx.store.create(&mut record).await.unwrap();
    tokio::time::sleep(fx.tick).await;
    let loaded = fx.store.load(&record.id).await.unwrap().expect("alive before its expiry");
    assert!(loaded.expiry_date <= record.expiry_date, "a load moved the expiry to {}", loaded.expiry_date);
    tokio::time::sleep(fx.tick * 5 / 2).await;
    assert!(fx.store.load(&record.id).await.unwrap().is_none(), "a load kept the session past its expiry");
}

/// A record saved after its expiry is not stored: the session ends, as it would in
/// tower-sessions' own stores.
async fn saving_an_expired_record_ends_the_session<U: Upstream>(fx: Fixture<U>) {
    let mut record = record(json!({"n": 1}));
    fx.store.create(&mut record).await.unwrap();
    record.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    fx.store.save(&record).await.unwrap();
    assert!(stored(&fx, &record.id).await.is_none());
    assert!(fx.store.load(&record.id).await.unwrap().is_none());
}
