//! The event log on Redis beyond the shared suite: expiries recorded once while several
//! reapers race and Redis drops records by itself, ids that survive a lost counter, and a
//! store that records nothing when told so (or on a Cluster).

mod common;

use std::{collections::HashSet, time::Duration};

use redis::AsyncCommands;
use sessanger_core::{Change, Maintenance, Session, SessionId, SessionStore, Timestamp, UserId, UserLimit};
use sessanger_store_redis::{RedisConnection, RedisStore};
use sessanger_tls::LoadedTls;

fn user(name: &str) -> UserId {
    format!("{name}-{}", &SessionId::generate().as_ref()[..8]).parse().unwrap()
}

fn session(user: &UserId, idle: Duration) -> Session {
    Session::new(SessionId::generate_for(user), user.clone(), Timestamp::now(), idle, Duration::from_secs(3600))
}

async fn all_events(store: &RedisStore) -> Vec<sessanger_core::EventRecord> {
    let log = store.event_log().expect("an event log");
    let (mut found, mut after) = (Vec::new(), None);
    loop {
        let page = log.read_events(after, 500).await.unwrap();
        let Some(last) = page.last() else { return found };
        after = Some(last.id);
        found.extend(page);
    }
}

/// Three stores on one Redis (three nodes' reapers) purge 300 sessions that died, most of
/// them already dropped by Redis: each expiry is reported to exactly one reaper and recorded
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reapers_record_each_expiry_once_on_standalone_redis() {
    racing_reapers_record_each_expiry_once(common::redis_url()).await;
}

/// The same on the Cluster, where the events go through the shard logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reapers_record_each_expiry_once_on_the_cluster() {
    racing_reapers_record_each_expiry_once(common::cluster_url()).await;
}

async fn racing_reapers_record_each_expiry_once(url: String) {
    let first = common::store(url.clone()).await;
    let prefix = first.prefix().clone();
    let mut nodes = vec![first];
    for _ in 0..2 {
        nodes.push(RedisStore::connect(&url, prefix.clone()).await.unwrap());
    }
    let frank = user("frank");
    let mut ids = HashSet::new();
    for _ in 0..300 {
        let s = session(&frank, Duration::from_millis(500));
        nodes[0].create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
        ids.insert(s.id);
    }
    // Past the deadline by Redis's clock too, so Redis drops some records by itself.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let reapers = nodes.iter().map(|node| async move {
        let mut reported = Vec::new();
        loop {
            let batch = node.delete_expired(Timestamp::now(), 7).await.unwrap();
            if batch.is_empty() {
                return reported;
            }
            reported.extend(batch.into_iter().map(|gone| gone.id));
        }
    });
    let reported: Vec<SessionId> = futures::future::join_all(reapers).await.into_iter().flatten().collect();
    assert_eq!(reported.len(), 300, "each expiry reported to one reaper");
    assert_eq!(reported.into_iter().collect::<HashSet<_>>(), ids);

    let events = all_events(&nodes[1]).await;
    let expired: Vec<&SessionId> =
        events.iter().filter(|e| e.event.kind() == "expired").map(|e| e.event.session_id()).collect();
    assert_eq!(expired.len(), 300, "none twice");
    assert_eq!(expired.into_iter().cloned().collect::<HashSet<_>>(), ids, "none missing");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
}

/// Revoking a user whose session Redis already dropped records that session's expiry, once:
/// the reaper finds nothing left to report.
#[tokio::test]
async fn revoking_a_user_records_the_expiry_of_a_session_redis_dropped() {
    let store = common::store(common::redis_url()).await;
    let grace = user("grace");
    let (short, long) = (session(&grace, Duration::from_millis(300)), session(&grace, Duration::from_secs(600)));
    for s in [&short, &long] {
        store.create(s, UserLimit::Unlimited, s.created_at).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let now = Timestamp::now();
    assert_eq!(store.delete_user(&grace, Change::at(now)).await.unwrap(), vec![long.id.clone()]);
    assert!(store.delete_expired(now, 100).await.unwrap().is_empty());
    let events = all_events(&store).await;
    assert_eq!(events.len(), 4, "{events:?}");
    let summary: HashSet<_> = events.iter().map(|e| (e.event.kind(), e.event.session_id().clone())).collect();
    let expected =
        [("created", short.id.clone()), ("created", long.id.clone()), ("expired", short.id), ("deleted", long.id)];
    assert_eq!(summary, expected.into_iter().collect(), "each once");
}

/// A counter deleted by hand while the log survived: the next event gets the id after the
/// newest one, never one already given.
#[tokio::test]
async fn ids_go_on_after_a_lost_counter() {
    let store = common::store(common::redis_url()).await;
    let hank = user("hank");
    let log = store.event_log().unwrap();
    for _ in 0..3 {
        let s = session(&hank, Duration::from_secs(600));
        store.create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
    }
    let newest = log.last_event_id().await.unwrap().expect("three events");
    let mut raw = RedisConnection::connect(&common::redis_url(), &LoadedTls::default()).await.unwrap();
    let _: () = raw.del(format!("{{{}}}:events:n", store.prefix())).await.unwrap();
    assert_eq!(log.last_event_id().await.unwrap(), Some(newest), "read off the log itself");
    let s = session(&hank, Duration::from_secs(600));
    store.create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
    let events = all_events(&store).await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].id, newest.next());
}

/// Told to record no events, the store writes no log and offers none.
#[tokio::test]
async fn a_store_without_an_event_log_writes_none() {
    let store = common::store(common::redis_url()).await.with_event_log(None);
    assert!(store.event_log().is_none());
    let s = session(&user("ivy"), Duration::from_secs(600));
    store.create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
    store.delete(&s.id, sessanger_core::DeleteReason::Logout, Change::at(Timestamp::now())).await.unwrap();
    let mut raw = RedisConnection::connect(&common::redis_url(), &LoadedTls::default()).await.unwrap();
    let keys: Vec<String> = raw.keys(format!("*{}*:events*", store.prefix())).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
