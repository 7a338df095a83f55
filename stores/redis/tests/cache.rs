//! The node cache across processes: two stores on one Redis (or one Cluster) stand for two
//! sessanger nodes. A change through one is seen by the other as soon as Redis's invalidation
//! arrives; a lost or silent tracking connection never leaves a stale entry in use.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use sessanger_core::{
    Change, DeleteReason, Maintenance, Patch, PatchOptions, Patched, Permission, ServiceRecord, ServiceStore, Session,
    SessionStore, StoreError, Timestamp, UserLimit,
};
use sessanger_store_redis::{DEFAULT_CACHE_BYTES, KeyPrefix, RedisStore};

/// How soon the other node must see a change. The harness measures the real figure (well
/// under a millisecond here); this bound only keeps a loaded CI machine from failing the test.
const BOUND: Duration = Duration::from_millis(200);

use common::session;

/// Two cached stores on `url` under one prefix: node A and node B.
async fn two_nodes(url: &str) -> (RedisStore, RedisStore) {
    let prefix = common::unique_prefix();
    let a = common::store_on(url, prefix.clone(), Some(DEFAULT_CACHE_BYTES)).await;
    let b = common::store_on(url, prefix, Some(DEFAULT_CACHE_BYTES)).await;
    (a, b)
}

/// Polls `read` until `fresh` holds; fails if it takes longer than `BOUND`, or if a fresh
/// answer is followed by a stale one.
async fn seen_within_bound<T: std::fmt::Debug, F: Future<Output = T>>(
    mut read: impl FnMut() -> F,
    fresh: impl Fn(&T) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let answer = read().await;
        if fresh(&answer) {
            break;
        }
        assert!(started.elapsed() < BOUND, "still stale after {BOUND:?}: {answer:?}");
        tokio::task::yield_now().await;
    }
    let seen = started.elapsed();
    for _ in 0..20 {
        let answer = read().await;
        assert!(fresh(&answer), "stale again after fresh: {answer:?}");
    }
    seen
}

async fn revoke_and_patch_are_seen_by_the_other_node(url: &str, users: usize) {
    let (a, b) = two_nodes(url).await;
    let now = Timestamp::now();
    let sessions: Vec<Session> = (0..users).map(|n| session(&format!("user-{n}").parse().unwrap())).collect();
    for s in &sessions {
        a.create(s, UserLimit::Unlimited, now).await.unwrap();
        assert!(b.load(&s.id, now).await.unwrap().is_some());
    }
    assert_eq!(b.cached_sessions(), users, "node B caches what it read");

    for s in &sessions {
        let patch = Patch::default().set("step", json!(1));
        let Patched::Applied(patched) =
            a.patch(&s.id, &patch, PatchOptions::new(), Change::at(Timestamp::now())).await.unwrap()
        else {
            panic!("patched")
        };
        seen_within_bound(
            || b.load(&s.id, Timestamp::now()),
            |read| read.as_ref().unwrap().as_ref().is_some_and(|seen| seen.version == patched.version),
        )
        .await;
        a.delete(&s.id, DeleteReason::Revoked, Change::at(Timestamp::now())).await.unwrap();
        seen_within_bound(|| b.load(&s.id, Timestamp::now()), |read| matches!(read, Ok(None))).await;
    }
}

#[tokio::test]
async fn a_revoke_or_a_patch_on_one_node_reaches_the_other_nodes_cache() {
    revoke_and_patch_are_seen_by_the_other_node(&common::redis_url(), 20).await;
}

#[tokio::test]
async fn on_a_cluster_every_shard_keeps_the_other_nodes_cache_coherent() {
    // 60 users spread over the 4096 shard tags land on every node of the 3-node cluster.
    revoke_and_patch_are_seen_by_the_other_node(&common::cluster_url(), 60).await;
}

#[tokio::test]
async fn a_node_reads_its_own_writes_at_once() {
    let (a, _) = two_nodes(&common::redis_url()).await;
    let s = session(&"own".parse().unwrap());
    a.create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
    assert!(a.load(&s.id, Timestamp::now()).await.unwrap().is_some());
    for n in 0..50 {
        let patch = Patch::default().set("n", json!(n));
        a.patch(&s.id, &patch, PatchOptions::new(), Change::at(Timestamp::now())).await.unwrap();
        let read = a.load(&s.id, Timestamp::now()).await.unwrap().unwrap();
        assert_eq!(read.attributes["n"], json!(n), "no wait for the invalidation");
    }
    a.delete(&s.id, DeleteReason::Revoked, Change::at(Timestamp::now())).await.unwrap();
    assert_eq!(a.load(&s.id, Timestamp::now()).await.unwrap(), None);
}

#[tokio::test]
async fn a_removed_service_is_refused_by_the_other_node() {
    let (a, b) = two_nodes(&common::redis_url()).await;
    assert!(b.caches_services());
    let (record, _) =
        ServiceRecord::issue("billing".parse().unwrap(), "Billing", vec![Permission::Read], Timestamp::now());
    assert!(a.create_service(&record).await.unwrap());
    seen_within_bound(|| b.load_service(&record.id), |read| read.as_ref().unwrap().is_some()).await;
    assert!(a.delete_service(&record.id).await.unwrap());
    seen_within_bound(|| b.load_service(&record.id), |read| matches!(read, Ok(None))).await;
}

/// The ids of the server's connections that have tracking on.
async fn tracking_clients(admin: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(admin).await.unwrap();
    list.lines()
        .filter(|line| line.split(' ').any(|field| field.starts_with("flags=") && field.contains('t')))
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")).map(str::to_owned))
        .collect()
}

/// `HGETALL` calls the server has answered so far.
async fn reads(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(admin).await.unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_hgetall:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[tokio::test]
async fn a_killed_tracking_connection_drops_the_cache_and_the_cache_recovers() {
    let redis = common::PrivateRedis::start();
    let prefix: KeyPrefix = common::unique_prefix();
    let writer = common::store_on(&redis.url(), prefix.clone(), None).await;
    let reader = common::store_on(&redis.url(), prefix, Some(DEFAULT_CACHE_BYTES)).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();

    let s = session(&"carol".parse().unwrap());
    writer.create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
    reader.load(&s.id, Timestamp::now()).await.unwrap().unwrap();
    let before = reads(&mut admin).await;
    reader.load(&s.id, Timestamp::now()).await.unwrap().unwrap();
    assert_eq!(reads(&mut admin).await, before, "the second read is served from memory");
    // What `/metrics` shows: each read counted once, as what it was.
    let stats = reader.cache_stats().unwrap();
    assert_eq!((stats.sessions.hits, stats.sessions.misses, stats.sessions.entries), (1, 1, 1), "{stats:?}");
    assert!(stats.sessions.bytes > 0);
    assert_eq!(stats.drops, 0);
    assert_eq!(writer.cache_stats(), None, "no cache, no figures");

    let tracking = tracking_clients(&mut admin).await;
    assert_eq!(tracking.len(), 1, "the reader's tracking connection: {tracking:?}");
    let _: () = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&tracking[0]).query_async(&mut admin).await.unwrap();
    // Its invalidation is lost with the connection: nothing tells the reader of this change
    // but the loss itself.
    let patch = Patch::default().set("after_kill", json!(true));
    writer.patch(&s.id, &patch, PatchOptions::new(), Change::at(Timestamp::now())).await.unwrap();
    seen_within_bound(
        || reader.load(&s.id, Timestamp::now()),
        |read| read.as_ref().unwrap().as_ref().is_some_and(|seen| seen.attributes.contains_key("after_kill")),
    )
    .await;

    // Back on a new connection that tracks again: served from memory, and coherent.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = reads(&mut admin).await;
        reader.load(&s.id, Timestamp::now()).await.unwrap();
        if reads(&mut admin).await == before {
            break;
        }
        assert!(Instant::now() < deadline, "the cache did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tracking_clients(&mut admin).await.len(), 1);
    assert!(reader.cache_stats().unwrap().drops >= 1, "the loss dropped the cache");
    writer.delete(&s.id, DeleteReason::Revoked, Change::at(Timestamp::now())).await.unwrap();
    seen_within_bound(|| reader.load(&s.id, Timestamp::now()), |read| matches!(read, Ok(None))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_stops_the_cache_when_its_lease_runs_out() {
    let redis = common::PrivateRedis::start();
    let store = common::store_on(&redis.url(), common::unique_prefix(), Some(DEFAULT_CACHE_BYTES)).await;
    let s = session(&"dave".parse().unwrap());
    store.create(&s, UserLimit::Unlimited, s.created_at).await.unwrap();
    store.load(&s.id, Timestamp::now()).await.unwrap().unwrap();

    // A frozen server closes nothing: only the missing heartbeat replies tell.
    redis.signal("STOP");
    let frozen = Instant::now();
    let outcome = loop {
        let outcome = tokio::time::timeout(Duration::from_secs(10), store.load(&s.id, Timestamp::now())).await;
        match outcome {
            Ok(Ok(Some(_))) => {
                assert!(frozen.elapsed() < Duration::from_secs(2), "served from memory past the lease");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other,
        }
    };
    redis.signal("CONT");
    assert!(
        matches!(outcome, Ok(Err(StoreError::Unavailable(_))) | Err(_)),
        "after the lease, reads go to the frozen server: {outcome:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.load(&s.id, Timestamp::now()).await.is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
