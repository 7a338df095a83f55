//! The round-trip budget: each manager operation costs Redis one call, counted by the server.
//!
//! How calls are counted. `INFO commandstats` counts every command a script runs as well as
//! the script itself (an `EVALSHA` that runs `HGET` and `HSET` adds one to each of the three),
//! so summing it would count work inside Redis, not calls from the store. The test therefore
//! counts, between two `INFO` snapshots on a Redis of its own (so no other test's commands are
//! counted):
//!
//! - scripts: the growth of `cmdstat_evalsha` + `cmdstat_eval` (+ `cmdstat_script|load`), one
//!   per script call from a client, whatever the script does inside;
//! - plain commands: when no script ran, the growth of every other command but `INFO`.
//!
//! A plain command sent *next to* a script would hide among the script's inner commands, so the
//! test checks a second counter that only client traffic moves: `total_reads_processed` in
//! `INFO stats` grows by one per request read from a client socket (plus one for the `INFO`
//! that takes the second snapshot), and never for a command a script runs.

mod common;

use std::{collections::HashMap, time::Duration};

use redis::AsyncCommands;
use serde_json::json;
use sessanger_core::{
    Change, DeleteReason, Page, Patch, PatchOptions, Replacement, Session, SessionId, SessionStore, Timestamp, UserId,
    UserLimit,
};
use sessanger_store_redis::DEFAULT_CACHE_BYTES;

/// Command counts and socket reads at one instant.
struct Snapshot {
    calls: HashMap<String, u64>,
    reads: u64,
}

async fn snapshot(admin: &mut redis::aio::MultiplexedConnection) -> Snapshot {
    let info: String = redis::cmd("INFO").arg("stats").arg("commandstats").query_async(admin).await.unwrap();
    let mut calls = HashMap::new();
    let mut reads = 0;
    for line in info.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, stats) = rest.split_once(':').unwrap();
            let n = stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).unwrap().parse().unwrap();
            calls.insert(name.to_owned(), n);
        } else if let Some(n) = line.strip_prefix("total_reads_processed:") {
            reads = n.trim().parse().unwrap();
        }
    }
    Snapshot { calls, reads }
}

/// Calls from clients between two snapshots, by the rules in the module doc, and the
/// commands that moved (for the failure message).
fn top_level_calls(before: &Snapshot, after: &Snapshot) -> (u64, Vec<(String, u64)>) {
    let delta = |name: &str| after.calls.get(name).copied().unwrap_or(0) - before.calls.get(name).copied().unwrap_or(0);
    let mut moved: Vec<(String, u64)> =
        after.calls.keys().map(|name| (name.clone(), delta(name))).filter(|(n, d)| *d > 0 && n != "info").collect();
    moved.sort();
    let scripts = delta("evalsha") + delta("eval") + delta("script|load");
    let plain: u64 = if scripts == 0 { moved.iter().map(|(_, d)| d).sum() } else { 0 };
    (scripts + plain, moved)
}

/// Runs `op` and asserts it cost exactly `budget` calls from the store.
async fn assert_calls<F: Future>(admin: &mut redis::aio::MultiplexedConnection, what: &str, budget: u64, op: F) {
    let before = snapshot(admin).await;
    op.await;
    let after = snapshot(admin).await;
    let (calls, moved) = top_level_calls(&before, &after);
    assert_eq!(calls, budget, "{what}: {calls} calls, budget {budget}; commands counted: {moved:?}");
    // One read for each request, plus the INFO of the second snapshot.
    let reads = after.reads - before.reads - 1;
    assert_eq!(reads, budget, "{what}: the store sent {reads} requests, budget {budget}; commands: {moved:?}");
}

#[tokio::test]
async fn each_manager_operation_costs_one_round_trip() {
    let redis = common::PrivateRedis::start();
    // Without the node cache, whose heartbeat pings would be counted too; the cached read has
    // a test of its own below.
    let store = common::store_on(&redis.url(), common::unique_prefix(), None).await;
    let mut admin = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let now = Timestamp::now();
    let user: UserId = "alice".parse().unwrap();
    let new_session = || {
        Session::new(
            SessionId::generate_for(&user),
            user.clone(),
            now,
            Duration::from_secs(600),
            Duration::from_secs(3600),
        )
    };

    // Warm up: the first call of each script on a server loads it (NOSCRIPT, SCRIPT LOAD,
    // EVALSHA); later calls are one EVALSHA. Run every script once before counting.
    let warm = new_session();
    store.create(&warm, UserLimit::Unlimited, now).await.unwrap();
    store.touch(&warm.id, now).await.unwrap();
    store.patch(&warm.id, &Patch::default().set("k", json!(1)), PatchOptions::new(), Change::at(now)).await.unwrap();
    store
        .replace(
            &warm.id,
            Replacement::new(&Default::default(), &Default::default(), sessanger_core::Version(3)),
            Change::at(now),
        )
        .await
        .unwrap();
    let renamed = warm.id.regenerate();
    store.rename(&warm.id, &renamed, Change::at(now)).await.unwrap();
    store.list_user(&user, &Page::DEFAULT, now).await.unwrap();
    store.delete(&renamed, DeleteReason::Logout, Change::at(now)).await.unwrap();
    store.delete_user(&user, Change::at(now)).await.unwrap();
    let _: () = admin.set("warm-up-done", 1).await.unwrap();

    let s = new_session();
    let limit = UserLimit::EvictOldest(std::num::NonZeroU32::new(3).unwrap());
    assert_calls(&mut admin, "create", 1, async { store.create(&s, limit, now).await.unwrap() }).await;
    let other = new_session();
    assert_calls(&mut admin, "create (unlimited)", 1, async {
        store.create(&other, UserLimit::Unlimited, now).await.unwrap()
    })
    .await;
    assert_calls(&mut admin, "get", 1, async { store.load(&s.id, now).await.unwrap().unwrap() }).await;
    let set = Patch::default().set("theme", json!("dark"));
    assert_calls(&mut admin, "set attribute", 1, async {
        store.patch(&s.id, &set, PatchOptions::new(), Change::at(now)).await.unwrap()
    })
    .await;
    let remove = Patch::default().remove("theme");
    assert_calls(&mut admin, "remove attribute", 1, async {
        store.patch(&s.id, &remove, PatchOptions::new().with_touch(true), Change::at(now)).await.unwrap()
    })
    .await;
    let incr = Patch::default().incr("visits", 1);
    assert_calls(&mut admin, "increment", 1, async {
        store.patch(&s.id, &incr, PatchOptions::new(), Change::at(now)).await.unwrap()
    })
    .await;
    assert_calls(&mut admin, "refresh", 1, async { store.touch(&s.id, now).await.unwrap().unwrap() }).await;
    let new_id = s.id.regenerate();
    assert_calls(&mut admin, "regenerate", 1, async { store.rename(&s.id, &new_id, Change::at(now)).await.unwrap() })
        .await;
    assert_calls(&mut admin, "list user", 1, async {
        assert_eq!(store.list_user(&user, &Page::DEFAULT, now).await.unwrap().len(), 2)
    })
    .await;
    assert_calls(&mut admin, "delete", 1, async {
        store.delete(&other.id, DeleteReason::Logout, Change::at(now)).await.unwrap().unwrap()
    })
    .await;
    store.create(&new_session(), UserLimit::Unlimited, now).await.unwrap();
    assert_calls(&mut admin, "revoke all", 1, async {
        assert_eq!(store.delete_user(&user, Change::at(now)).await.unwrap().len(), 2)
    })
    .await;
}

#[tokio::test]
async fn a_cached_read_costs_one_round_trip_then_none() {
    let redis = common::PrivateRedis::start();
    let store = common::store_on(&redis.url(), common::unique_prefix(), Some(DEFAULT_CACHE_BYTES)).await;
    let mut admin = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let user: UserId = "alice".parse().unwrap();
    let now = Timestamp::now();
    let s =
        Session::new(SessionId::generate_for(&user), user, now, Duration::from_secs(600), Duration::from_secs(3600));
    store.create(&s, UserLimit::Unlimited, now).await.unwrap();
    // Counted by command, not by socket read: the cache's heartbeat pings come and go.
    let moved = |before: &Snapshot, after: &Snapshot, name: &str| {
        after.calls.get(name).copied().unwrap_or(0) - before.calls.get(name).copied().unwrap_or(0)
    };
    let before = snapshot(&mut admin).await;
    store.load(&s.id, now).await.unwrap().unwrap();
    let after = snapshot(&mut admin).await;
    // `CLIENT CACHING YES` goes in the same write as the read it opts in: one round trip.
    assert_eq!((moved(&before, &after, "hgetall"), moved(&before, &after, "client|caching")), (1, 1));
    for _ in 0..10 {
        store.load(&s.id, now).await.unwrap().unwrap();
    }
    let again = snapshot(&mut admin).await;
    assert_eq!(moved(&after, &again, "hgetall"), 0, "served from memory");
}
