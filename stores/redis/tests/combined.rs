//! Concurrent increments of one session through one manager, on Redis: written together
//! (fewer script runs than increments) and each answered exactly as if written alone.

mod common;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::future::join_all;
use sessanger_core::{
    Maintenance, ManagerError, NewSession, Patch, PatchOptions, SessionEvent, SessionManager, SessionPolicy, UserId,
    Version,
};
use sessanger_store_redis::RedisStore;

const CALLERS: i64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_combined_and_each_answered_exactly_on_standalone_redis() {
    let store = common::store(common::redis_url()).await;
    let (manager, id) = increment_together(store.clone()).await;
    // Each write records one event: fewer events than increments means they were combined.
    let log = store.event_log().expect("an event log");
    let changes = log
        .read_events(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(
            |record| matches!(&record.event, SessionEvent::AttributesChanged { session_id, .. } if *session_id == id),
        )
        .count();
    assert!((1..CALLERS as usize).contains(&changes), "{changes} writes for {CALLERS} concurrent increments");
    drop(manager);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_combined_and_each_answered_exactly_on_the_cluster() {
    increment_together(common::store(common::cluster_url()).await).await;
}

/// `CALLERS` tasks add 1 to one counter through one manager at once: each is answered the
/// session right after its own increment (the counter is the version less one, as written one
/// at a time from version 1), no two the same; the counter ends at `CALLERS`; only the last
/// answer's version passes an `If-Match`.
async fn increment_together(store: RedisStore) -> (SessionManager, sessanger_core::SessionId) {
    let manager = SessionManager::with_policy(Arc::new(store), SessionPolicy::new(Duration::from_secs(600)));
    let user: UserId = format!("counter-{}", &sessanger_core::SessionId::generate().as_ref()[..8]).parse().unwrap();
    let id = manager.create_session(&user, NewSession::default()).await.unwrap().id;
    let answers = join_all((0..CALLERS).map(|_| {
        let (manager, id) = (manager.clone(), id.clone());
        tokio::spawn(async move { manager.patch_session(&id, &Patch::default().incr("n", 1), None).await })
    }))
    .await;
    let mut seen = BTreeSet::new();
    for answer in answers {
        let session = answer.unwrap().unwrap();
        let n = session.attributes["n"].as_i64().unwrap();
        assert_eq!(session.version, Version(n as u64 + 1), "an answer not right after its own increment");
        assert!(seen.insert(n), "two callers were answered {n}");
    }
    assert_eq!(seen, (1..=CALLERS).collect());
    let stored = manager.get_session(&id).await.unwrap();
    assert_eq!((stored.attributes["n"].as_i64(), stored.version), (Some(CALLERS), Version(CALLERS as u64 + 1)));
    let incr = Patch::default().incr("n", 1);
    let stale =
        manager.patch_session_with(&id, &incr, PatchOptions::new().with_expected(Some(Version(CALLERS as u64))));
    assert!(matches!(stale.await, Err(ManagerError::VersionMismatch { current }) if current == stored.version));
    let current = manager.patch_session_with(&id, &incr, PatchOptions::new().with_expected(Some(stored.version)));
    assert_eq!(current.await.unwrap().attributes["n"].as_i64(), Some(CALLERS + 1));
    (manager, id)
}

/// The first writer's request is dropped while its write hangs (Redis frozen, the request timed
/// out): the increments that queued behind it are still written, once Redis is back, and each
/// caller is answered right after its own increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_queued_behind_a_dropped_writer_are_still_written() {
    let redis = common::PrivateRedis::start();
    let store = common::store_on(&redis.url(), common::unique_prefix(), None).await;
    let manager = SessionManager::with_policy(Arc::new(store), SessionPolicy::new(Duration::from_secs(600)));
    let user: UserId = "dropped-writer".parse().unwrap();
    let id = manager.create_session(&user, NewSession::default()).await.unwrap().id;
    let incr = Patch::default().incr("n", 1);
    redis.signal("STOP");
    let first = {
        let (manager, id, incr) = (manager.clone(), id.clone(), incr.clone());
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(150), manager.patch_session(&id, &incr, None)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued: Vec<_> = (0..10)
        .map(|_| {
            let (manager, id, incr) = (manager.clone(), id.clone(), incr.clone());
            tokio::spawn(async move { manager.patch_session(&id, &incr, None).await })
        })
        .collect();
    assert!(first.await.unwrap().is_err(), "the first writer's request times out while Redis is frozen");
    redis.signal("CONT");
    let mut seen = BTreeSet::new();
    for answer in join_all(queued).await {
        let session = answer.unwrap().unwrap();
        let n = session.attributes["n"].as_i64().unwrap();
        assert_eq!(session.version, Version(n as u64 + 1));
        seen.insert(n);
    }
    // Whether the dropped request's write reached Redis is unknown, as for any write whose
    // request timed out; if it did, it applied first.
    let last = manager.get_session(&id).await.unwrap().attributes["n"].as_i64().unwrap();
    assert!(last == 10 || last == 11, "the counter ends at {last}");
    assert_eq!(seen, (last - 9..=last).collect());
}
