//! Over the real Redis store: what Redis holds for a sealed attribute is ciphertext only.
//! Standalone Redis at `SESSANGER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), under a key
//! prefix of this run's own; fails when Redis is not reachable (`scripts/test` starts it).

use std::{sync::Arc, time::Duration};

use redis::AsyncCommands;
use serde_json::{Value, json};
use sessanger_core::{
    Change, DeleteReason, Patch, PatchOptions, Patched, Session, SessionId, SessionStore, Timestamp, UserLimit,
};
use sessanger_store_encrypted::{EncryptedStore, Keyring, Selection};
use sessanger_store_redis::{KeyPrefix, RedisStore};

const SECRET: &str = "redis-secret-7d1f0b2a";

fn redis_url() -> String {
    std::env::var("SESSANGER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test]
async fn redis_holds_no_plaintext_of_an_encrypted_attribute() {
    let url = redis_url();
    let prefix: KeyPrefix =
        format!("sessanger-test-enc-{}", &SessionId::generate().as_ref()[..12]).parse().expect("a valid prefix");
    let inner = match RedisStore::connect(&url, prefix.clone()).await {
        Ok(store) => store,
        Err(error) => panic!("cannot reach Redis at {url} ({error:?}); start it (scripts/test does)"),
    };
    let keyring = Keyring::new("k1".parse().unwrap(), &[5; 32]);
    let store = EncryptedStore::new(Arc::new(inner), keyring, Selection::only(["access_token", "refresh_token"]));

    let now = Timestamp::now();
    let user = "alice".parse().unwrap();
    let mut session =
        Session::new(SessionId::generate_for(&user), user, now, Duration::from_secs(600), Duration::from_secs(3600));
    session.attributes.insert("access_token".into(), json!(SECRET));
    session.attributes.insert("theme".into(), json!("dark"));
    store.create(&session, UserLimit::Unlimited, now).await.unwrap();
    let patch = Patch::default().set("refresh_token", json!({"token": SECRET}));
    assert!(matches!(
        store.patch(&session.id, &patch, PatchOptions::new(), Change::at(now)).await.unwrap(),
        Patched::Applied(_)
    ));

    // The session hash, named as the Redis store's `# Layout` documents it.
    let key = format!("{{{prefix}:{}}}:s:{}", session.id.shard_tag(), session.id);
    let mut redis = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let fields: Vec<(String, String)> = redis.hgetall(&key).await.unwrap();
    assert!(!fields.is_empty(), "no hash at {key}");
    for (field, value) in &fields {
        assert!(!field.contains(SECRET) && !value.contains(SECRET), "plaintext in Redis: {field} = {value}");
    }
    let field = |name: &str| -> Value {
        let (_, text) = fields.iter().find(|(f, _)| f == name).unwrap_or_else(|| panic!("no field {name}"));
        serde_json::from_str(text).unwrap()
    };
    assert_eq!(field("a:access_token")["kid"], json!("k1"));
    assert_eq!(field("a:refresh_token")["$enc"], json!("v1"));
    assert_eq!(field("a:theme"), json!("dark"), "unselected attributes stay plain");

    let loaded = store.load(&session.id, now).await.unwrap().unwrap();
    assert_eq!(loaded.attributes["access_token"], json!(SECRET));
    assert_eq!(loaded.attributes["refresh_token"], json!({"token": SECRET}));
    store.delete(&session.id, DeleteReason::Logout, Change::at(now)).await.unwrap();
}
