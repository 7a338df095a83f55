//! Redis going away and coming back: calls fail as `Unavailable` (the HTTP server's 503
//! `store_unavailable`) while it is down, and the same store works again once it is back.

mod common;

use std::time::{Duration, Instant};

use sessanger_core::{Maintenance, Page, ServiceStore, SessionStore, StoreError, Timestamp, UserId, UserLimit};
use sessanger_store_redis::{ConnectError, RedisStore};

use common::session;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_unavailable_while_redis_is_down_and_work_again_once_it_is_back() {
    let mut redis = common::PrivateRedis::start();
    let store = RedisStore::connect(&redis.url(), common::unique_prefix()).await.unwrap();
    let user: UserId = "bob".parse().unwrap();
    let before = session(&user);
    store.create(&before, UserLimit::Unlimited, before.created_at).await.unwrap();
    assert!(store.load(&before.id, Timestamp::now()).await.unwrap().is_some());

    redis.kill();
    let started = Instant::now();
    // The node cache answers until it notices the loss (the socket closing, here at once; at
    // worst when its lease runs out), then drops everything: reads go to Redis, and fail.
    while store.load(&before.id, Timestamp::now()).await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(2), "the cache kept answering after the lease");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(store.cached_sessions(), 0, "the cache was dropped");
    for attempt in 0..3 {
        let outcome = store.load(&before.id, Timestamp::now()).await;
        assert!(matches!(outcome, Err(StoreError::Unavailable(_))), "attempt {attempt}: {outcome:?}");
    }
    let created = store.create(&session(&user), UserLimit::Unlimited, Timestamp::now()).await;
    assert!(matches!(created, Err(StoreError::Unavailable(_))), "{created:?}");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.list_services(None, std::num::NonZeroU32::MIN).await, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(30), "failing calls must not hang: {:?}", started.elapsed());

    redis.restart();
    // The connection comes back in the background; give it a few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = session(&user);
    store.create(&after, UserLimit::Unlimited, after.created_at).await.unwrap();
    let now = Timestamp::now();
    assert_eq!(store.load(&after.id, now).await.unwrap(), Some(after.clone()));
    // This Redis keeps nothing across a restart: the earlier session is gone, not an error.
    assert_eq!(store.load(&before.id, now).await.unwrap(), None);
    assert_eq!(store.list_user(&user, &Page::DEFAULT, now).await.unwrap(), vec![after]);
}

#[tokio::test]
async fn connecting_to_a_redis_that_is_not_there_fails_with_the_cause() {
    let mut redis = common::PrivateRedis::start();
    let url = redis.url();
    redis.kill();
    let refused = RedisStore::connect(&url, common::unique_prefix()).await.unwrap_err();
    assert!(matches!(refused, ConnectError::Redis { .. }), "{refused:?}");
    assert!(std::error::Error::source(&refused).is_some());
}

#[tokio::test]
async fn a_url_of_another_scheme_or_without_nodes_is_refused() {
    for url in ["postgres://localhost/db", "redis+cluster://", "rediss+cluster://", "127.0.0.1:6379", "redis://[::1"] {
        let refused = RedisStore::connect(url, common::unique_prefix()).await.unwrap_err();
        assert!(matches!(refused, ConnectError::InvalidUrl { .. }), "{url}: {refused:?}");
    }
}
