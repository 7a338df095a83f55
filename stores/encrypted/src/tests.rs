//! Behaviour of the decorator itself, over the memory store, reading what it wrote straight from
//! the inner store. The whole contract is checked by `tests/conformance.rs`; the Redis store by
//! `tests/redis.rs`.

use std::{error::Error, sync::Arc, time::Duration};

use base64::Engine;
use serde_json::{Value, json};
use sessanger_core::{
    Attributes, Change, Created, DeleteReason, Page, Patch, PatchError, PatchOptions, Patched, Renamed, Replaced,
    Replacement, Session, SessionId, SessionStore, StoreError, Timestamp, UserLimit, Version,
};
use sessanger_store_memory::MemoryStore;

use super::*;

const K1: [u8; KEY_LEN] = [7; KEY_LEN];
const K2: [u8; KEY_LEN] = [9; KEY_LEN];
const SECRET: &str = "tok-5f3a9c1e-very-secret";

fn kid(id: &str) -> KeyId {
    id.parse().unwrap()
}

fn ring_k1() -> Keyring {
    Keyring::new(kid("k1"), &K1)
}

/// k1 still opens what it sealed; k2 seals from now on.
fn ring_rotated() -> Keyring {
    ring_k1().with_key(kid("k2"), &K2).unwrap().with_active(kid("k2")).unwrap()
}

fn encrypted(inner: &Arc<MemoryStore>, keyring: Keyring) -> EncryptedStore<MemoryStore> {
    EncryptedStore::new(inner.clone(), keyring, Selection::all_except(["visits"]))
}

fn new_session(now: Timestamp) -> Session {
    let user = "alice".parse().unwrap();
    Session::new(SessionId::generate_for(&user), user, now, Duration::from_secs(600), Duration::from_secs(3600))
}

async fn created(store: &EncryptedStore<MemoryStore>, attributes: Value, now: Timestamp) -> Session {
    let mut session = new_session(now);
    session.attributes = serde_json::from_value(attributes).unwrap();
    assert_eq!(store.create(&session, UserLimit::Unlimited, now).await.unwrap(), Created::Created { evicted: vec![] });
    session
}

/// The session as the inner store holds it.
async fn raw(inner: &MemoryStore, id: &SessionId, now: Timestamp) -> Session {
    inner.load(id, now).await.unwrap().expect("a live session in the inner store")
}

/// Writes `value` under `key` straight into the inner store, as someone with access to it could.
async fn write_raw(inner: &MemoryStore, id: &SessionId, key: &str, value: Value, now: Timestamp) {
    let outcome =
        inner.patch(id, &Patch::default().set(key, value), PatchOptions::new(), Change::at(now)).await.unwrap();
    assert!(matches!(outcome, Patched::Applied(_)), "{outcome:?}");
}

fn assert_no_plaintext(session: &Session) {
    let text = serde_json::to_string(session).unwrap();
    assert!(!text.contains(SECRET) && !text.contains("tok-"), "plaintext in the inner store: {text}");
}

/// The `OpenError` behind a `StoreError::Decode`.
fn open_error(result: Result<Option<Session>, StoreError>) -> OpenError {
    match result {
        Err(StoreError::Decode(source)) => *source.downcast::<OpenError>().expect("an OpenError source"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_write_path_seals_and_every_read_path_opens() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let store = encrypted(&inner, ring_k1());
    let s = created(&store, json!({"access_token": SECRET, "visits": 1}), now).await;
    assert_no_plaintext(&raw(&inner, &s.id, now).await);
    assert_eq!(raw(&inner, &s.id, now).await.attributes["visits"], json!(1), "unselected keys stay plain");

    let patch = Patch::default().set("refresh_token", json!({"deep": [SECRET]})).incr("visits", 1);
    let Patched::Applied(patched) =
        store.patch(&s.id, &patch, PatchOptions::new().with_touch(true), Change::at(now)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(patched.attributes["refresh_token"], json!({"deep": [SECRET]}));
    assert_eq!(patched.attributes["visits"], json!(2));
    assert_no_plaintext(&raw(&inner, &s.id, now).await);

    let mut attributes = Attributes::new();
    attributes.insert("access_token".into(), json!(format!("{SECRET}-2")));
    let replaced =
        store.replace(&s.id, Replacement::new(&attributes, &s.device, Version(2)), Change::at(now)).await.unwrap();
    let Replaced::Applied(replaced) = replaced else { panic!("{replaced:?}") };
    assert_eq!(replaced.attributes, attributes);
    assert_no_plaintext(&raw(&inner, &s.id, now).await);

    let plain = |session: Session| session.attributes;
    assert_eq!(plain(store.load(&s.id, now).await.unwrap().unwrap()), attributes);
    assert_eq!(plain(store.touch(&s.id, now).await.unwrap().unwrap()), attributes);
    let new_id = s.id.regenerate();
    let Renamed::Renamed(renamed) = store.rename(&s.id, &new_id, Change::at(now)).await.unwrap() else { panic!() };
    assert_eq!(renamed.attributes, attributes);
    let listed = store.list_user(&s.user_id, &Page::DEFAULT, now).await.unwrap();
    assert_eq!(listed.into_iter().map(plain).collect::<Vec<_>>(), [attributes.clone()]);
    assert_eq!(plain(store.delete(&new_id, DeleteReason::Logout, Change::at(now)).await.unwrap().unwrap()), attributes);
}

#[tokio::test]
async fn a_value_sealed_with_an_old_key_still_opens_after_rotation() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let s = created(&encrypted(&inner, ring_k1()), json!({"old": SECRET}), now).await;
    assert_eq!(raw(&inner, &s.id, now).await.attributes["old"]["kid"], json!("k1"));

    let rotated = encrypted(&inner, ring_rotated());
    assert_eq!(rotated.load(&s.id, now).await.unwrap().unwrap().attributes["old"], json!(SECRET));
    rotated
        .patch(&s.id, &Patch::default().set("new", json!(SECRET)), PatchOptions::new(), Change::at(now))
        .await
        .unwrap();
    let stored = raw(&inner, &s.id, now).await.attributes;
    assert_eq!((&stored["old"]["kid"], &stored["new"]["kid"]), (&json!("k1"), &json!("k2")));
    let loaded = rotated.load(&s.id, now).await.unwrap().unwrap().attributes;
    assert_eq!((&loaded["old"], &loaded["new"]), (&json!(SECRET), &json!(SECRET)));

    // A ring that dropped k1 cannot open what k1 sealed, and says which key it lacks.
    let without_k1 = encrypted(&inner, Keyring::new(kid("k2"), &K2));
    let err = open_error(without_k1.load(&s.id, now).await);
    assert!(matches!(&err, OpenError::UnknownKey { attribute, key_id } if attribute == "old" && key_id == "k1"));
}

#[tokio::test]
async fn a_tampered_or_moved_value_fails_to_open_with_a_decode_error() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let store = encrypted(&inner, ring_k1());
    let s = created(&store, json!({"access_token": SECRET}), now).await;
    let sealed = raw(&inner, &s.id, now).await.attributes["access_token"].clone();

    let mut flipped = sealed.clone();
    let mut ciphertext = base64::engine::general_purpose::STANDARD.decode(sealed["c"].as_str().unwrap()).unwrap();
    ciphertext[0] ^= 1;
    flipped["c"] = json!(base64::engine::general_purpose::STANDARD.encode(ciphertext));
    write_raw(&inner, &s.id, "access_token", flipped, now).await;
    let err = open_error(store.load(&s.id, now).await);
    assert!(matches!(&err, OpenError::Forged { attribute, .. } if attribute == "access_token"), "{err}");
    assert_eq!(
        err.to_string(),
        "attribute `access_token` failed authentication with key `k1` (wrong key or tampered value)"
    );
    assert!(!err.to_string().contains(s.id.as_ref()), "errors never name the session id");

    // The associated data binds the attribute key: the intact value under another key fails.
    write_raw(&inner, &s.id, "access_token", json!("plain"), now).await;
    write_raw(&inner, &s.id, "moved", sealed.clone(), now).await;
    assert!(matches!(open_error(store.load(&s.id, now).await), OpenError::Forged { .. }));

    // The same key id with other key bytes is a wrong key, not garbage.
    write_raw(&inner, &s.id, "moved", json!(null), now).await;
    write_raw(&inner, &s.id, "access_token", sealed.clone(), now).await;
    let impostor = encrypted(&inner, Keyring::new(kid("k1"), &K2));
    assert!(matches!(open_error(impostor.touch(&s.id, now).await), OpenError::Forged { .. }));

    let mut truncated = sealed;
    truncated["n"] = json!("AAAA");
    write_raw(&inner, &s.id, "access_token", truncated, now).await;
    assert!(matches!(open_error(store.load(&s.id, now).await), OpenError::Malformed { .. }));
}

#[tokio::test]
async fn an_increment_of_an_encrypted_key_is_rejected_and_writes_nothing() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let store = encrypted(&inner, ring_k1());
    let s = created(&store, json!({"score": 1}), now).await;
    let before = raw(&inner, &s.id, now).await;
    let patch = Patch::default().set("other", json!(1)).incr("score", 1);
    assert_eq!(
        store.patch(&s.id, &patch, PatchOptions::new(), Change::at(now)).await.unwrap(),
        Patched::Rejected(PatchError::Encrypted("score".into()))
    );
    assert_eq!(raw(&inner, &s.id, now).await, before);
    // An unselected counter still increments in the inner store.
    let counted =
        store.patch(&s.id, &Patch::default().incr("visits", 5), PatchOptions::new(), Change::at(now)).await.unwrap();
    assert!(matches!(counted, Patched::Applied(s) if s.attributes["visits"] == json!(5)));
}

#[test]
fn debug_of_the_keyring_and_the_store_shows_no_key_bytes() {
    let spec = format!(
        "k1:{},k2:{}",
        base64::engine::general_purpose::STANDARD.encode(K1),
        base64::engine::general_purpose::STANDARD.encode(K2)
    );
    let ring = Keyring::from_spec(&spec, "k2").unwrap();
    let store = EncryptedStore::new(Arc::new(MemoryStore::new()), ring.clone(), Selection::All);
    for debug in [format!("{ring:?}"), format!("{ring:#?}"), format!("{store:?}")] {
        assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
        for secret in [&spec[3..10], "BwcH", "CQkJ", "7, 7, 7", "9, 9, 9", "0x07", "0x09"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}

#[tokio::test]
async fn every_sealing_draws_a_fresh_nonce() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let store = encrypted(&inner, ring_k1());
    let s = created(&store, json!({"a": SECRET, "b": SECRET}), now).await;
    let stored = raw(&inner, &s.id, now).await.attributes;
    assert_ne!(stored["a"]["n"], stored["b"]["n"]);
    assert_ne!(stored["a"]["c"], stored["b"]["c"]);
    assert_eq!(stored["a"]["n"].as_str().map(str::len), Some(32), "24 bytes in base64");
}

#[tokio::test]
async fn a_client_value_shaped_like_a_sealed_value_round_trips_even_unselected() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let store = EncryptedStore::new(inner.clone(), ring_k1(), Selection::only(["access_token"]));
    let lookalike = json!({"$enc": "v1", "kid": "k1", "n": "x", "c": "y"});
    let s = created(&store, json!({"theme": lookalike.clone()}), now).await;
    assert_ne!(raw(&inner, &s.id, now).await.attributes["theme"], lookalike, "sealed, not stored as is");
    assert_eq!(store.load(&s.id, now).await.unwrap().unwrap().attributes["theme"], lookalike);
}

#[tokio::test]
async fn plain_values_stored_before_encryption_are_read_as_they_are_and_sealed_when_written() {
    let (inner, now) = (Arc::new(MemoryStore::new()), Timestamp::now());
    let mut s = new_session(now);
    s.attributes.insert("access_token".into(), json!("legacy"));
    inner.create(&s, UserLimit::Unlimited, now).await.unwrap();
    let store = encrypted(&inner, ring_k1());
    assert_eq!(store.load(&s.id, now).await.unwrap().unwrap().attributes["access_token"], json!("legacy"));
    store
        .patch(&s.id, &Patch::default().set("access_token", json!("fresh")), PatchOptions::new(), Change::at(now))
        .await
        .unwrap();
    assert_eq!(raw(&inner, &s.id, now).await.attributes["access_token"]["$enc"], json!("v1"));
}

#[test]
fn the_store_the_binary_picks_at_run_time_can_be_wrapped() {
    // `dyn Store` in, `dyn Store` out.
    let inner: Arc<dyn sessanger_core::Store> = Arc::new(MemoryStore::new());
    let store = EncryptedStore::new(inner, ring_k1(), Selection::all_except(["visits"]));
    let _: Arc<dyn sessanger_core::Store> = Arc::new(store);
}

#[test]
fn malformed_key_ring_text_is_refused_with_a_reason() {
    let key = base64::engine::general_purpose::STANDARD.encode(K1);
    let err = |spec: &str, active: &str| Keyring::from_spec(spec, active).unwrap_err();
    assert_eq!(err(&format!("k1:{key},k2"), "k1"), KeyringError::MalformedEntry(2));
    assert_eq!(err(&format!("k1:{key}, k1:{key}"), "k1"), KeyringError::DuplicateKeyId(kid("k1")));
    assert_eq!(err(&format!("k 1:{key}"), "k1"), KeyringError::InvalidKeyId("k 1".into()));
    assert_eq!(err(&format!("k1:{key}x"), "k1"), KeyringError::InvalidKey(kid("k1")));
    assert_eq!(err(&format!("k1:{key}"), ""), KeyringError::InvalidKeyId(String::new()));
    // Padding is optional and spaces around entries are ignored.
    let ring = Keyring::from_spec(&format!(" k1:{} , k2:{key} ", key.trim_end_matches('=')), "k2").unwrap();
    assert_eq!(ring.active().as_ref(), "k2");
    let error: &dyn Error = &err("k1", "k1");
    assert_eq!(error.to_string(), "key ring entry 1 is not `key_id:base64_key`");
}

#[tokio::test]
async fn the_manager_reports_a_refused_increment_as_an_invalid_patch() {
    use sessanger_core::{ManagerError, NewSession, SessionManager};

    let store = encrypted(&Arc::new(MemoryStore::new()), ring_k1());
    let manager = SessionManager::new(Arc::new(store), "web".parse().unwrap(), Duration::from_secs(600));
    let session = manager.create_session(&"bob".parse().unwrap(), NewSession::default()).await.unwrap();
    assert_eq!(manager.increment(&session.id, "visits", 2).await.unwrap(), 2);
    let refused = manager.increment(&session.id, "score", 1).await.unwrap_err();
    assert!(matches!(&refused, ManagerError::InvalidPatch(PatchError::Encrypted(key)) if key == "score"), "{refused}");
    assert_eq!(
        refused.to_string(),
        "attribute `score` is encrypted at rest and cannot be incremented; set its value instead"
    );
}
