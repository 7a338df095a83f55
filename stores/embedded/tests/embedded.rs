//! What only the embedded store promises: a file that outlives the process, one process at a
//! time, and damage reported rather than panicked on.

use std::time::Duration;

use redb::TableDefinition;
use serde_json::json;
use sessanger_core::{
    Change, Created, Maintenance, Page, Patch, PatchOptions, Patched, Permission, ServiceRecord, ServiceStore, Session,
    SessionId, SessionStore, StoreError, Timestamp, UserId, UserLimit,
};
use sessanger_store_embedded::{EmbeddedStore, OpenError};

const IDLE: Duration = Duration::from_secs(600);
const ABSOLUTE: Duration = Duration::from_secs(3600);

/// The sessions table as the store lays it out, for writing damage into it from outside.
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

fn t0() -> Timestamp {
    Timestamp::from_millis(1_763_900_000_000)
}

fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

fn session(user: &UserId, now: Timestamp, idle: Duration) -> Session {
    Session::new(SessionId::generate_for(user), user.clone(), now, idle, ABSOLUTE)
}

async fn create(store: &EmbeddedStore, session: &Session) {
    let created = store.create(session, UserLimit::Unlimited, session.created_at).await.unwrap();
    assert_eq!(created, Created::Created { evicted: vec![] });
}

/// Overwrites the stored record of `id` with bytes that are not a session, through redb
/// itself, while no store holds the file.
fn corrupt(dir: &std::path::Path, id: &SessionId) {
    let db = redb::Database::open(dir.join(sessanger_store_embedded::FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(SESSIONS).unwrap().insert(id.as_ref(), b"\xffnot json".as_slice()).unwrap();
    txn.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_and_services_survive_closing_and_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let now = t0();
    let alice = user("alice");
    let mut s = session(&alice, now, IDLE);
    s.attributes.insert("cart".into(), json!(["book"]));
    let (service, token) = ServiceRecord::issue("web".parse().unwrap(), "Web", vec![Permission::Write], now);
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        create(&store, &s).await;
        assert!(store.create_service(&service).await.unwrap());
    }

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(s.clone()));
    assert_eq!(store.list_user(&alice, &Page::DEFAULT, now).await.unwrap(), vec![s.clone()]);
    assert_eq!(store.count_active(now).await.unwrap(), 1);
    let loaded = store.load_service(&service.id).await.unwrap().unwrap();
    assert!(loaded.verify(&token));
    assert_eq!(store.list_services(None, std::num::NonZeroU32::MIN).await.unwrap(), vec![service]);

    // Indexes came back too: the reopened store expires and revokes the session.
    assert_eq!(store.delete_expired(now + IDLE, 10).await.unwrap().len(), 1);
    assert!(store.list_user(&alice, &Page::DEFAULT, now).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_second_open_of_a_held_store_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(OpenError::Locked { path }) => assert_eq!(path, store.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(store);
    EmbeddedStore::open(dir.path()).expect("dropping the store releases the file");
}

#[tokio::test]
async fn open_creates_the_data_directory_with_its_parents() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("var/lib/sessanger");
    let store = EmbeddedStore::open(&nested).unwrap();
    assert_eq!(store.path(), nested.join("sessions.redb"));
    assert!(store.path().is_file());
    assert!(format!("{store:?}").contains("var/lib/sessanger/sessions.redb"));
}

#[tokio::test]
async fn a_data_directory_that_is_a_file_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(EmbeddedStore::open(&file), Err(OpenError::CreateDir { .. })));
}

#[tokio::test]
async fn a_database_file_that_is_not_redb_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sessions.redb"), vec![0x5a; 8192]).unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, OpenError::Database { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some(), "the cause is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_record_loads_as_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let now = t0();
    let bob = user("bob");
    let (broken, intact) = (session(&bob, now, IDLE), session(&user("carol"), now, IDLE));
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        create(&store, &broken).await;
        create(&store, &intact).await;
    }
    corrupt(dir.path(), &broken.id);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(matches!(store.load(&broken.id, now).await, Err(StoreError::Decode(_))));
    assert!(matches!(store.list_user(&bob, &Page::DEFAULT, now).await, Err(StoreError::Decode(_))));
    let patch = Patch::default().set("a", json!(1));
    assert!(matches!(
        store.patch(&broken.id, &patch, PatchOptions::new(), Change::at(now)).await,
        Err(StoreError::Decode(_))
    ));
    // The failed write changed nothing, and the rest of the store still works.
    assert_eq!(store.load(&intact.id, now).await.unwrap(), Some(intact.clone()));
    assert!(matches!(
        store.patch(&intact.id, &patch, PatchOptions::new(), Change::at(now)).await.unwrap(),
        Patched::Applied(_)
    ));
    assert_eq!(store.count_active(now).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_record_is_purged_once_due_without_stopping_the_purge() {
    let dir = tempfile::tempdir().unwrap();
    let now = t0();
    let dave = user("dave");
    let broken = session(&dave, now, Duration::from_secs(10));
    let due = session(&dave, now, Duration::from_secs(10));
    let live = session(&dave, now, IDLE);
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for s in [&broken, &due, &live] {
            create(&store, s).await;
        }
    }
    corrupt(dir.path(), &broken.id);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    let later = now + Duration::from_secs(10);
    let purged = store.delete_expired(later, 10).await.unwrap();
    let purged: Vec<_> = purged.into_iter().map(|r| r.id).collect();
    assert_eq!(purged, vec![due.id], "only decodable records are reported");
    assert_eq!(store.load(&broken.id, now).await.unwrap(), None, "the corrupt record is gone");
    assert!(store.delete_expired(later, 10).await.unwrap().is_empty());
    assert_eq!(store.list_user(&dave, &Page::DEFAULT, later).await.unwrap(), vec![live.clone()]);
    assert_eq!(store.delete_user(&dave, Change::at(later)).await.unwrap(), vec![live.id]);
    assert_eq!(store.count_active(now).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_expired_removes_just_the_ten_due_among_ten_thousand_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let now = t0();
    let mut due = Vec::new();
    for i in 0..10_010 {
        let idle = if i % 1001 == 0 { Duration::from_secs(10) } else { IDLE };
        let s = session(&user(&format!("user-{}", i % 97)), now, idle);
        create(&store, &s).await;
        if idle != IDLE {
            due.push(s.id);
        }
    }
    assert_eq!(due.len(), 10);
    let later = now + Duration::from_secs(10);
    assert_eq!(store.count_active(later).await.unwrap(), 10_000);

    let mut purged: Vec<_> = store.delete_expired(later, 1000).await.unwrap().into_iter().map(|r| r.id).collect();
    purged.sort();
    due.sort();
    assert_eq!(purged, due);
    assert!(store.delete_expired(later, 1000).await.unwrap().is_empty());
    assert_eq!(store.count_active(later).await.unwrap(), 10_000);
    assert_eq!(store.count_active(now).await.unwrap(), 10_000);
}
