//! The manager on the memory store: events, policy, services.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use serde_json::json;
use sessanger_core::{
    DeleteReason, ManagerError, ManualClock, NewSession, Patch, Permission, SessionEvent, SessionId, SessionManager,
    SessionPolicy, Timestamp, UserId, UserLimit, Version,
};
use sessanger_store_memory::MemoryStore;

fn manager(policy: SessionPolicy) -> (SessionManager, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), policy).with_clock(clock.clone());
    (manager.for_service(&"web".parse().unwrap()), clock)
}

fn alice() -> UserId {
    "alice".parse().unwrap()
}

#[tokio::test]
async fn every_operation_announces_its_event() {
    let (m, _) = manager(SessionPolicy::default());
    let mut events = m.subscribe();
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    m.set_attribute(&s.id, "k", json!(1)).await.unwrap();
    m.refresh_session(&s.id).await.unwrap();
    let renamed = m.regenerate_id(&s.id).await.unwrap();
    m.delete_session(&renamed.id).await.unwrap();
    let user = alice();
    let expected = [
        SessionEvent::Created { session_id: s.id.clone(), user_id: user.clone() },
        SessionEvent::AttributesChanged { session_id: s.id.clone(), user_id: user.clone(), keys: vec!["k".into()] },
        SessionEvent::Refreshed { session_id: s.id.clone(), user_id: user.clone() },
        SessionEvent::Regenerated {
            old_session_id: s.id.clone(),
            session_id: renamed.id.clone(),
            user_id: user.clone(),
        },
        SessionEvent::Deleted { session_id: renamed.id.clone(), user_id: user.clone(), reason: DeleteReason::Logout },
    ];
    for e in expected {
        assert_eq!(events.recv().await.unwrap(), e);
    }
}

#[tokio::test]
async fn expired_fires_for_sessions_nobody_touches() {
    let (m, clock) = manager(SessionPolicy::new(Duration::from_secs(60)));
    let mut events = m.subscribe();
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    events.recv().await.unwrap();
    let _reaper = m.spawn_reaper(Duration::from_millis(10));
    clock.advance(Duration::from_secs(61));
    let event = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap();
    assert_eq!(event, SessionEvent::Expired { session_id: s.id, user_id: alice() });
}

#[tokio::test]
async fn refresh_on_access_renews_the_deadline_on_read() {
    let policy = SessionPolicy { refresh_on_access: true, ..SessionPolicy::new(Duration::from_secs(60)) };
    let (m, clock) = manager(policy);
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    clock.advance(Duration::from_secs(50));
    m.get_session(&s.id).await.unwrap();
    clock.advance(Duration::from_secs(50));
    assert!(m.get_session(&s.id).await.is_ok(), "the read at 50 s renewed the session");
    clock.advance(Duration::from_secs(61));
    assert!(matches!(m.get_session(&s.id).await, Err(ManagerError::NotFound)));
}

#[tokio::test]
async fn refresh_on_access_renews_at_most_once_per_threshold_of_the_ttl() {
    let policy = SessionPolicy {
        refresh_on_access: true,
        refresh_threshold_percent: 10,
        ..SessionPolicy::new(Duration::from_secs(100))
    };
    let (m, clock) = manager(policy);
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    clock.advance(Duration::from_secs(9));
    let read = m.get_session(&s.id).await.unwrap();
    assert_eq!(read.last_access_at, s.last_access_at, "9 % of the TTL: no write");
    clock.advance(Duration::from_secs(1));
    let read = m.get_session(&s.id).await.unwrap();
    assert_eq!(read.last_access_at, s.last_access_at + Duration::from_secs(10), "10 %: renewed");
    assert_eq!(read.expires_at, read.last_access_at + Duration::from_secs(100));

    let every_read = SessionPolicy { refresh_threshold_percent: 0, ..m.policy().clone() };
    let (m, clock) = manager(every_read);
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(m.get_session(&s.id).await.unwrap().last_access_at, s.last_access_at + Duration::from_secs(1));
}

#[tokio::test]
async fn without_refresh_on_access_reads_do_not_extend() {
    let (m, clock) = manager(SessionPolicy::new(Duration::from_secs(60)));
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    clock.advance(Duration::from_secs(50));
    m.get_session(&s.id).await.unwrap();
    clock.advance(Duration::from_secs(10));
    assert!(matches!(m.get_session(&s.id).await, Err(ManagerError::NotFound)));
}

#[tokio::test]
async fn per_session_ttl_overrides_the_policy_but_not_the_absolute_lifetime() {
    let policy =
        SessionPolicy { max_lifetime: Duration::from_secs(100), ..SessionPolicy::new(Duration::from_secs(60)) };
    let (m, _) = manager(policy);
    let s = m
        .create_session(&alice(), NewSession { ttl: Some(Duration::from_secs(1000)), ..NewSession::default() })
        .await
        .unwrap();
    assert_eq!(s.expires_at, s.created_at + Duration::from_secs(100));
}

#[tokio::test]
async fn evicted_sessions_are_announced() {
    let policy =
        SessionPolicy { max_per_user: UserLimit::EvictOldest(NonZeroU32::new(1).unwrap()), ..SessionPolicy::default() };
    let (m, _) = manager(policy);
    let first = m.create_session(&alice(), NewSession::default()).await.unwrap();
    let mut events = m.subscribe();
    m.create_session(&alice(), NewSession::default()).await.unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        SessionEvent::Deleted { session_id: first.id, user_id: alice(), reason: DeleteReason::Evicted }
    );
}

#[tokio::test]
async fn refuse_policy_gives_limit_reached() {
    let policy =
        SessionPolicy { max_per_user: UserLimit::Refuse(NonZeroU32::new(1).unwrap()), ..SessionPolicy::default() };
    let (m, _) = manager(policy);
    m.create_session(&alice(), NewSession::default()).await.unwrap();
    assert!(matches!(m.create_session(&alice(), NewSession::default()).await, Err(ManagerError::LimitReached)));
}

#[tokio::test]
async fn update_session_is_compare_and_set() {
    let (m, _) = manager(SessionPolicy::default());
    let mut s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    s.attributes.insert("cart".into(), json!([1]));
    let updated = m.update_session(&s).await.unwrap();
    assert_eq!(updated.version, Version(2));
    assert!(matches!(m.update_session(&s).await, Err(ManagerError::VersionMismatch { current: Version(2) })));
}

#[tokio::test]
async fn invalid_patches_are_refused_before_the_store() {
    let (m, _) = manager(SessionPolicy::default());
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    let p = Patch::default().set("", json!(1));
    assert!(matches!(m.patch_session(&s.id, &p, None).await, Err(ManagerError::InvalidPatch(_))));
    assert_eq!(m.increment(&s.id, "n", 5).await.unwrap(), 5);
    assert_eq!(m.increment(&s.id, "n", -2).await.unwrap(), 3);
}

#[tokio::test]
async fn services_verify_only_with_their_own_secret() {
    let (m, _) = manager(SessionPolicy::default());
    let (record, token) =
        m.register_service("billing".parse().unwrap(), "Billing", vec![Permission::Read]).await.unwrap();
    assert_eq!(*m.verify_service(&token).await.unwrap(), record);
    let forged = format!("billing.{}", "A".repeat(43)).parse().unwrap();
    assert!(matches!(m.verify_service(&forged).await, Err(ManagerError::InvalidCredentials)));
    assert!(matches!(
        m.register_service("billing".parse().unwrap(), "again", vec![]).await,
        Err(ManagerError::ServiceExists(_))
    ));
    m.remove_service(&record.id).await.unwrap();
    assert!(matches!(m.verify_service(&token).await, Err(ManagerError::InvalidCredentials)));
}

#[tokio::test]
async fn sessions_remember_the_service_that_created_them() {
    let (m, _) = manager(SessionPolicy::default());
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    assert_eq!(s.created_by, Some("web".parse().unwrap()));
    let other = m.for_service(&"billing".parse().unwrap());
    assert_eq!(other.get_session(&s.id).await.unwrap().created_by, s.created_by);
}

#[tokio::test]
async fn every_session_of_a_user_carries_the_users_shard_tag() {
    let (m, _) = manager(SessionPolicy::default());
    let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
    assert_eq!(s.id.shard_tag(), alice().shard_tag());
    let renamed = m.regenerate_id(&s.id).await.unwrap();
    assert_eq!(renamed.id.shard_tag(), alice().shard_tag());
}

#[tokio::test]
async fn a_chosen_id_is_used_once_and_must_carry_the_users_shard_tag() {
    let (m, _) = manager(SessionPolicy::default());
    let id = sessanger_core::SessionId::generate_for(&alice());
    let s = m.create_session_with_id(&id, &alice(), NewSession::default()).await.unwrap();
    assert_eq!(s.id, id);
    assert!(matches!(m.create_session_with_id(&id, &alice(), NewSession::default()).await, Err(ManagerError::IdTaken)));
    let foreign = sessanger_core::SessionId::generate_for(&"bob".parse().unwrap());
    assert!(matches!(
        m.create_session_with_id(&foreign, &alice(), NewSession::default()).await,
        Err(ManagerError::ForeignShard)
    ));
}

/// Two processes on one store (two managers on one memory store): with the event feed, a
/// subscriber of one hears every change, its own and the other's, each once and in the log's
/// order, and each expiry once, whichever reaper removed the session.
#[tokio::test]
async fn the_event_feed_tells_subscribers_of_every_process_s_changes_once() {
    let store = Arc::new(MemoryStore::new());
    let here = SessionManager::with_policy(store.clone(), SessionPolicy::new(Duration::from_millis(300)));
    let there = SessionManager::with_policy(store, SessionPolicy::new(Duration::from_millis(300)));
    let feed = here.spawn_event_feed().await.unwrap().expect("the memory store keeps a log");
    let mut events = here.subscribe();
    let mine = here.create_session(&alice(), NewSession::default()).await.unwrap();
    let theirs = there.create_session(&alice(), NewSession::default()).await.unwrap();
    there.set_attribute(&mine.id, "k", json!(1)).await.unwrap();
    let mut next = async || tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert_eq!(next().await, SessionEvent::Created { session_id: mine.id.clone(), user_id: alice() });
    assert_eq!(next().await, SessionEvent::Created { session_id: theirs.id.clone(), user_id: alice() });
    assert!(matches!(next().await, SessionEvent::AttributesChanged { session_id, .. } if session_id == mine.id));

    // Both die; the other process's reaper removes them, this one's finds nothing left.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(there.purge_expired().await.unwrap(), 2);
    assert_eq!(here.purge_expired().await.unwrap(), 0);
    let mut expired = vec![next().await, next().await];
    expired.sort_by(|a, b| a.session_id().cmp(b.session_id()));
    let mut ids = [mine.id, theirs.id];
    ids.sort();
    let expected: Vec<_> =
        ids.into_iter().map(|session_id| SessionEvent::Expired { session_id, user_id: alice() }).collect();
    assert_eq!(expired, expected);
    assert!(tokio::time::timeout(Duration::from_millis(700), next()).await.is_err(), "nothing twice");

    // Without the feed, subscribers hear this process's changes again.
    drop(feed);
    let mut events = here.subscribe();
    there.create_session(&alice(), NewSession::default()).await.unwrap();
    let own = here.create_session(&alice(), NewSession::default()).await.unwrap();
    assert_eq!(events.recv().await.unwrap(), SessionEvent::Created { session_id: own.id, user_id: alice() });
}

#[tokio::test]
async fn long_ids_make_ids_as_earlier_versions_did_for_a_rolling_upgrade() {
    for (long_ids, len) in [(false, SessionId::LEN), (true, SessionId::LONG_LEN)] {
        let (m, _) = manager(SessionPolicy { long_ids, ..SessionPolicy::default() });
        let s = m.create_session(&alice(), NewSession::default()).await.unwrap();
        let renewed = m.regenerate_id(&s.id).await.unwrap();
        assert_eq!((s.id.as_ref().len(), renewed.id.as_ref().len()), (len, len), "long_ids: {long_ids}");
        assert_eq!(renewed.id.shard_tag(), alice().shard_tag());
    }
}
