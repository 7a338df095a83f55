//! The cases of the conformance suite, one per promise of the store contract.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use serde_json::json;
use sessanger_core::{
    Attributes, Change, Created, DeleteReason, Device, Page, Patch, PatchError, PatchOptions, Patched, Permission,
    Position, Renamed, Replaced, Replacement, ServiceRecord, Session, SessionCap, SessionId, Store, Timestamp, UserId,
    UserLimit, Version, encoded_size,
};

type SharedStore = Arc<dyn Store>;

const IDLE: Duration = Duration::from_secs(600);
const ABSOLUTE: Duration = Duration::from_secs(3600);
const SECOND: Duration = Duration::from_secs(1);

fn t0() -> Timestamp {
    Timestamp::now()
}

/// A unique user per call, so cases never see each other's sessions even on a shared database.
fn user(name: &str) -> UserId {
    format!("{name}-{}", &SessionId::generate().as_ref()[..8]).parse().expect("valid user id")
}

fn session(user: &UserId, now: Timestamp) -> Session {
    Session::new(SessionId::generate_for(user), user.clone(), now, IDLE, ABSOLUTE)
}

async fn create(store: &SharedStore, session: &Session) {
    let created = store.create(session, UserLimit::Unlimited, session.created_at).await.expect("create");
    assert_eq!(created, Created::Created { evicted: vec![] });
}

async fn created(store: &SharedStore, user: &UserId, now: Timestamp) -> Session {
    let s = session(user, now);
    create(store, &s).await;
    s
}

async fn patch(store: &SharedStore, id: &SessionId, patch: &Patch, now: Timestamp) -> Session {
    match store.patch(id, patch, PatchOptions::new(), Change::at(now)).await.expect("patch") {
        Patched::Applied(s) => s,
        other => panic!("patch should apply, got {other:?}"),
    }
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

/// `create` stores the session exactly as given and `load` returns it.
pub async fn create_then_load_returns_the_same_session(store: SharedStore) {
    let now = t0();
    let mut s = session(&user("alice"), now);
    s.attributes.insert("role".into(), json!("admin"));
    s.device.device_id = Some("phone".into());
    s.device.ip = Some("192.0.2.1".into());
    create(&store, &s).await;
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(s));
}

/// An id never created loads as `None`, not as an error.
pub async fn load_of_unknown_id_returns_none(store: SharedStore) {
    assert_eq!(store.load(&SessionId::generate_for(&user("nobody")), t0()).await.unwrap(), None);
}

/// A session is dead from `expires_at` on, whether or not the store purged it.
pub async fn load_of_expired_session_returns_none(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    assert!(store.load(&s.id, now + (IDLE - SECOND)).await.unwrap().is_some());
    assert_eq!(store.load(&s.id, now + IDLE).await.unwrap(), None);
    assert_eq!(store.touch(&s.id, now + IDLE).await.unwrap(), None);
}

/// A second create with a live id writes nothing and says `IdTaken`.
pub async fn create_never_overwrites_a_live_session(store: SharedStore) {
    let now = t0();
    let first = created(&store, &user("a"), now).await;
    let mut second = session(&first.user_id, now + SECOND);
    second.id = first.id.clone();
    second.attributes.insert("intruder".into(), json!(true));
    assert_eq!(store.create(&second, UserLimit::Unlimited, now).await.unwrap(), Created::IdTaken);
    assert_eq!(store.load(&first.id, now).await.unwrap(), Some(first.clone()));
    assert_eq!(store.list_user(&first.user_id, &Page::DEFAULT, now).await.unwrap(), vec![first]);
}

/// The id of a dead session may be used again; the old data is gone.
pub async fn create_may_reuse_the_id_of_an_expired_session(store: SharedStore) {
    let now = t0();
    let old = created(&store, &user("a"), now).await;
    let later = now + IDLE + SECOND;
    let mut new = session(&old.user_id, later);
    new.id = old.id.clone();
    assert!(matches!(store.create(&new, UserLimit::Unlimited, later).await.unwrap(), Created::Created { .. }));
    assert_eq!(store.load(&old.id, later).await.unwrap(), Some(new.clone()));
    assert_eq!(
        store.list_user(&old.user_id, &Page::DEFAULT, later).await.unwrap(),
        vec![new],
        "the dead session left the index"
    );
}

/// 100 concurrent creates for one user all land in the user's index.
pub async fn concurrent_creates_for_one_user_are_all_kept(store: SharedStore) {
    let now = t0();
    let u = user("busy");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let s = session(&u, now);
            tokio::spawn(async move {
                store.create(&s, UserLimit::Unlimited, now).await.unwrap();
                s.id
            })
        })
        .collect();
    let mut expected = Vec::new();
    for t in tasks {
        expected.push(t.await.unwrap());
    }
    let mut listed = ids(&store.list_user(&u, &Page::DEFAULT, now).await.unwrap());
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
}

/// One patch sets, removes and increments, grows the version by one, and leaves other keys alone.
pub async fn patch_sets_removes_and_increments_atomically(store: SharedStore) {
    let now = t0();
    let mut s = session(&user("u"), now);
    s.attributes.insert("keep".into(), json!("me"));
    s.attributes.insert("drop".into(), json!(1));
    s.attributes.insert("n".into(), json!(40));
    create(&store, &s).await;
    let p = Patch::default().set("theme", json!({"dark": true})).remove("drop").incr("n", 2).incr("fresh", -3);
    let after = patch(&store, &s.id, &p, now).await;
    let expected = json!({"keep": "me", "n": 42, "fresh": -3, "theme": {"dark": true}});
    assert_eq!(serde_json::Value::Object(after.attributes.clone()), expected);
    assert_eq!(after.version, Version(2));
    assert_eq!(after.expires_at, s.expires_at, "a patch without touch keeps the deadline");
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(after));
}

/// Patching an unknown or dead session is `NotFound` and creates nothing.
pub async fn patch_of_unknown_or_expired_session_is_not_found(store: SharedStore) {
    let now = t0();
    let p = Patch::default().set("a", json!(1));
    let unknown = SessionId::generate_for(&user("nobody"));
    assert_eq!(store.patch(&unknown, &p, PatchOptions::new(), Change::at(now)).await.unwrap(), Patched::NotFound);
    assert_eq!(store.load(&unknown, now).await.unwrap(), None);
    let s = created(&store, &user("u"), now).await;
    assert_eq!(
        store.patch(&s.id, &p, PatchOptions::new().with_touch(true), Change::at(now + IDLE)).await.unwrap(),
        Patched::NotFound
    );
    assert_eq!(store.load(&s.id, now + IDLE).await.unwrap(), None, "a patch must not revive a dead session");
}

/// With an expected version that is stale, a patch writes nothing and reports the current one.
pub async fn patch_with_stale_version_changes_nothing(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let p = Patch::default().set("a", json!(1));
    let v2 = match store
        .patch(&s.id, &p, PatchOptions::new().with_expected(Some(Version(1))), Change::at(now))
        .await
        .unwrap()
    {
        Patched::Applied(s) => s,
        other => panic!("expected applied, got {other:?}"),
    };
    assert_eq!(v2.version, Version(2));
    let stale = Patch::default().set("a", json!(2));
    assert_eq!(
        store.patch(&s.id, &stale, PatchOptions::new().with_expected(Some(Version(1))), Change::at(now)).await.unwrap(),
        Patched::VersionMismatch(Version(2))
    );
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(v2));
}

/// A patch that cannot apply (increment of a string) is rejected whole.
pub async fn rejected_patch_changes_nothing(store: SharedStore) {
    let now = t0();
    let mut s = session(&user("u"), now);
    s.attributes.insert("name".into(), json!("bob"));
    create(&store, &s).await;
    let p = Patch::default().set("other", json!(1)).incr("name", 1);
    assert_eq!(
        store.patch(&s.id, &p, PatchOptions::new(), Change::at(now)).await.unwrap(),
        Patched::Rejected(PatchError::NotAnInteger("name".into()))
    );
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(s));
}

/// 200 concurrent writers, each setting its own key on one session: all 200 keys survive.
pub async fn two_hundred_concurrent_writers_of_different_keys_lose_nothing(store: SharedStore) {
    two_hundred_concurrent_writers(store, false).await;
}

/// The same with every patch renewing the idle deadline (a write that counts as use), each at
/// its own instant: moving the session's deadline under contention loses nothing and fails
/// no writer either.
pub async fn two_hundred_concurrent_touching_writers_lose_nothing(store: SharedStore) {
    two_hundred_concurrent_writers(store, true).await;
}

async fn two_hundred_concurrent_writers(store: SharedStore, touch: bool) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let (store, id) = (store.clone(), s.id.clone());
            let at = now + Duration::from_millis(i);
            tokio::spawn(async move {
                let set = Patch::default().set(format!("k{i}"), json!(i));
                let options = PatchOptions::new().with_touch(touch);
                match store.patch(&id, &set, options, Change::at(at)).await.expect("patch") {
                    Patched::Applied(_) => {}
                    other => panic!("writer {i}: {other:?}"),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.load(&s.id, now).await.unwrap().unwrap();
    assert_eq!(after.attributes.len(), 200);
    for i in 0..200 {
        assert_eq!(after.attributes[&format!("k{i}")], json!(i));
    }
    assert_eq!(after.version, Version(201));
}

/// 64 concurrent increments of one counter: the total is exact.
pub async fn sixty_four_concurrent_increments_lose_nothing(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (store, id) = (store.clone(), s.id.clone());
            tokio::spawn(async move { patch(&store, &id, &Patch::default().incr("counter", 1), now).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.load(&s.id, now).await.unwrap().unwrap();
    assert_eq!(after.attributes["counter"], json!(64));
}

/// A patch carrying several writes (the manager's combined increments) moves the version by
/// as many, with or without touch, and one carrying one write by one.
pub async fn a_patch_carrying_several_writes_moves_the_version_by_as_many(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let five = NonZeroU32::new(5).unwrap();
    for (touch, version) in [(false, 6), (true, 11)] {
        let options = PatchOptions::new().with_touch(touch).with_writes(five);
        let Patched::Applied(after) =
            store.patch(&s.id, &Patch::default().incr("n", 5), options, Change::at(now)).await.expect("patch")
        else {
            panic!("the patch applies");
        };
        assert_eq!(after.version, Version(version));
        assert_eq!(store.load(&s.id, now).await.unwrap().map(|s| s.version), Some(Version(version)));
    }
    let after = patch(&store, &s.id, &Patch::default().incr("n", 1), now).await;
    assert_eq!((after.version, &after.attributes["n"]), (Version(12), &json!(11)));
}

/// Many writers patching with the same expected version: exactly one wins.
pub async fn concurrent_version_checked_patches_let_exactly_one_win(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, id) = (store.clone(), s.id.clone());
            tokio::spawn(async move {
                store
                    .patch(
                        &id,
                        &Patch::default().set("winner", json!(i)),
                        PatchOptions::new().with_expected(Some(Version(1))),
                        Change::at(now),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            Patched::Applied(_) => applied += 1,
            Patched::VersionMismatch(v) => assert_eq!(v, Version(2)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
}

/// `replace` writes attributes and device only at the expected version; deadlines, owner and
/// creation time are kept.
pub async fn replace_is_compare_and_set_by_version(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let mut edited = s.clone();
    edited.attributes.insert("cart".into(), json!([1, 2]));
    edited.device.user_agent = Some("curl".into());
    edited.user_id = user("thief");
    edited.expires_at = now + ABSOLUTE * 10;
    let applied = match store
        .replace(&s.id, Replacement::new(&edited.attributes, &edited.device, Version(1)), Change::at(now))
        .await
        .unwrap()
    {
        Replaced::Applied(s) => s,
        other => panic!("expected applied, got {other:?}"),
    };
    assert_eq!(applied.version, Version(2));
    assert_eq!(applied.attributes, edited.attributes);
    assert_eq!(applied.device, edited.device);
    assert_eq!(applied.user_id, s.user_id);
    assert_eq!(applied.expires_at, s.expires_at);
    assert_eq!(applied.created_at, s.created_at);
    assert_eq!(
        store
            .replace(&s.id, Replacement::new(&edited.attributes, &edited.device, Version(1)), Change::at(now))
            .await
            .unwrap(),
        Replaced::VersionMismatch(Version(2))
    );
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(applied));
    let ghost = s.id.regenerate();
    assert_eq!(
        store
            .replace(&ghost, Replacement::new(&edited.attributes, &edited.device, Version(1)), Change::at(now))
            .await
            .unwrap(),
        Replaced::NotFound
    );
}

/// `replace` with a new absolute deadline moves the session's end either way: the idle
/// deadline is capped by it, no refresh passes it, a later one outlives the old deadline, and
/// the sweep reports the session when it arrives.
pub async fn replace_moves_the_absolute_deadline_either_way(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let replace = async |s: &Session, at: Timestamp| match store
        .replace(
            &s.id,
            Replacement::new(&s.attributes, &s.device, s.version).with_absolute_expires_at(Some(at)),
            Change::at(now),
        )
        .await
        .unwrap()
    {
        Replaced::Applied(s) => s,
        other => panic!("expected applied, got {other:?}"),
    };

    let s = created(&store, &u, now).await;
    let early = now + SECOND * 100;
    let shortened = replace(&s, early).await;
    assert_eq!((shortened.absolute_expires_at, shortened.expires_at), (early, early));
    assert_eq!(shortened.version, Version(2));
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(shortened.clone()));
    let touched = store.touch(&s.id, now + SECOND * 99).await.unwrap().expect("alive before the new deadline");
    assert_eq!(touched.expires_at, early, "a refresh never passes the new deadline");
    assert_eq!(store.load(&s.id, early).await.unwrap(), None);
    let purged = store.delete_expired(early, 1000).await.unwrap();
    assert!(purged.iter().any(|r| r.id == s.id), "the sweep reports it at the new deadline");

    let s = created(&store, &u, now).await;
    let late = now + ABSOLUTE * 2;
    let lengthened = replace(&s, late).await;
    assert_eq!((lengthened.absolute_expires_at, lengthened.expires_at), (late, now + IDLE));
    let mut t = now;
    while t < now + ABSOLUTE + SECOND * 500 {
        t = t + SECOND * 500;
        let touched = store.touch(&s.id, t).await.unwrap().expect("alive past the old deadline");
        assert_eq!(touched.expires_at, (t + IDLE).min(late));
    }
    assert!(store.load(&s.id, now + ABSOLUTE + SECOND).await.unwrap().is_some());
    assert!(store.delete_expired(now + ABSOLUTE + SECOND, 1000).await.unwrap().iter().all(|r| r.id != s.id));
}

/// A patch changes the device fields it names in the same step as the attributes and keeps
/// the others; concurrent patches that each change the device and their own key lose nothing.
pub async fn patch_changes_the_named_device_fields_with_the_attributes(store: SharedStore) {
    let now = t0();
    let mut s = session(&user("u"), now);
    s.device = Device { ip: Some("10.0.0.1".into()), user_agent: Some("curl".into()), ..Device::default() };
    create(&store, &s).await;
    let phone = Device { device_id: Some("phone".into()), ..Device::default() };
    let options = PatchOptions::new().with_device(Some(&phone));
    let Patched::Applied(patched) =
        store.patch(&s.id, &Patch::default().set("a", json!(1)), options, Change::at(now)).await.unwrap()
    else {
        panic!("the patch applies");
    };
    let merged = Device { device_id: Some("phone".into()), ..s.device.clone() };
    assert_eq!((&patched.device, &patched.attributes["a"], patched.version), (&merged, &json!(1), Version(2)));
    assert_eq!(store.load(&s.id, now).await.unwrap(), Some(patched));

    let writers = (0..50).map(|i| {
        let (store, id) = (store.clone(), s.id.clone());
        tokio::spawn(async move {
            let device = Device { device_id: Some(format!("device-{i}")), ..Device::default() };
            let patch = Patch::default().set(format!("k{i}"), json!(i));
            store.patch(&id, &patch, PatchOptions::new().with_device(Some(&device)), Change::at(now)).await.unwrap()
        })
    });
    for writer in writers {
        assert!(matches!(writer.await.unwrap(), Patched::Applied(_)));
    }
    let stored = store.load(&s.id, now).await.unwrap().unwrap();
    assert!((0..50).all(|i| stored.attributes[&format!("k{i}")] == json!(i)), "no attribute lost");
    assert!(stored.device.device_id.as_deref().is_some_and(|d| d.starts_with("device-")));
    assert_eq!((stored.device.ip, stored.version), (merged.ip, Version(52)));
}

/// A patch that would take a session past its cap — too many attributes, or too many bytes of
/// them as compact JSON — is refused and writes nothing; one that fits to the byte applies; a
/// patch that only removes always applies; concurrent patches never pass the cap together.
/// (Only the keys the encrypted store's suite leaves unsealed are used, so every store
/// measures the same text.)
pub async fn patches_never_take_a_session_past_its_cap(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let cap = SessionCap { max_attributes: 3, max_bytes: 64 };
    let capped = PatchOptions::new().with_cap(Some(cap));
    let text = |n: usize| json!("x".repeat(n));
    let apply = async |patch: Patch, options: PatchOptions<'_>| {
        store.patch(&s.id, &patch, options, Change::at(now)).await.unwrap()
    };
    // `{"name":"<40>"}` is 51 bytes; `,"fresh":"<m>"` adds 11 + m: 64 for m = 2.
    assert!(matches!(apply(Patch::default().set("name", text(40)), capped).await, Patched::Applied(_)));
    let over = apply(Patch::default().set("fresh", text(3)), capped).await;
    assert_eq!(over, Patched::Rejected(PatchError::SessionTooLarge(64)));
    let unchanged = store.load(&s.id, now).await.unwrap().unwrap();
    assert_eq!((unchanged.version, unchanged.attributes.len()), (Version(2), 1), "a refused patch writes nothing");
    let Patched::Applied(full) = apply(Patch::default().set("fresh", text(2)), capped).await else {
        panic!("a patch that fits to the byte applies");
    };
    assert_eq!(encoded_size(&full.attributes), 64);
    let over = apply(Patch::default().incr("counter", 1), capped).await;
    assert_eq!(over, Patched::Rejected(PatchError::SessionTooLarge(64)), "an increment is measured too");
    let tiny = PatchOptions::new().with_cap(Some(SessionCap { max_attributes: 1, max_bytes: 2 }));
    assert!(
        matches!(apply(Patch::default().remove("fresh"), tiny).await, Patched::Applied(_)),
        "removals always apply"
    );
    let small = Patch::default().set("name", json!(1)).set("fresh", json!(2));
    assert!(matches!(apply(small.incr("counter", 3), capped).await, Patched::Applied(_)));
    let over = apply(Patch::default().set("n", json!(4)), capped).await;
    assert_eq!(over, Patched::Rejected(PatchError::TooManyAttributes(3)));
    // After a replacement writes the attributes whole, the cap still measures them exactly.
    let current = store.load(&s.id, now).await.unwrap().unwrap();
    let whole = Attributes::from_iter([("name".to_owned(), text(40))]);
    let replaced =
        store.replace(&s.id, Replacement::new(&whole, &current.device, current.version), Change::at(now)).await;
    assert!(matches!(replaced.unwrap(), Replaced::Applied(_)));
    let over = apply(Patch::default().set("fresh", text(3)), capped).await;
    assert_eq!(over, Patched::Rejected(PatchError::SessionTooLarge(64)));
    assert!(matches!(apply(Patch::default().set("fresh", text(2)), capped).await, Patched::Applied(_)));

    let s = created(&store, &user("u"), now).await;
    let writers = ["n", "fresh", "counter", "name"].map(|key| {
        let (store, id) = (store.clone(), s.id.clone());
        tokio::spawn(async move {
            store.patch(&id, &Patch::default().set(key, json!(1)), capped, Change::at(now)).await.unwrap()
        })
    });
    let mut applied = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Patched::Applied(_) => applied += 1,
            refused => assert_eq!(refused, Patched::Rejected(PatchError::TooManyAttributes(3))),
        }
    }
    let stored = store.load(&s.id, now).await.unwrap().unwrap();
    assert_eq!((applied, stored.attributes.len()), (3, 3), "concurrent writers never pass the cap together");
}

/// `touch` slides the idle deadline but never past the absolute one.
pub async fn touch_renews_idle_deadline_but_not_past_absolute(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let mut t = now;
    // Refresh every 500 s (idle 600 s): the session lives on until the absolute deadline.
    while t + Duration::from_secs(500) < now + ABSOLUTE {
        t = t + Duration::from_secs(500);
        let touched = store.touch(&s.id, t).await.unwrap().expect("alive while refreshed");
        assert_eq!(touched.last_access_at, t);
        assert_eq!(touched.expires_at, (t + IDLE).min(now + ABSOLUTE));
    }
    assert!(store.load(&s.id, now + (ABSOLUTE - SECOND)).await.unwrap().is_some());
    assert_eq!(store.touch(&s.id, now + ABSOLUTE).await.unwrap(), None, "absolute lifetime is final");
}

/// A patch with `touch` renews the idle deadline in the same step.
pub async fn patch_with_touch_renews_the_idle_deadline(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    let later = now + Duration::from_secs(300);
    let after = match store
        .patch(&s.id, &Patch::default().set("a", json!(1)), PatchOptions::new().with_touch(true), Change::at(later))
        .await
        .unwrap()
    {
        Patched::Applied(s) => s,
        other => panic!("expected applied, got {other:?}"),
    };
    assert_eq!(after.expires_at, later + IDLE);
    assert!(store.load(&s.id, now + IDLE + SECOND).await.unwrap().is_some());
}

/// After `rename` the old id is dead and the new one holds the same data, also in the user's index.
pub async fn rename_moves_the_session_to_the_new_id(store: SharedStore) {
    let now = t0();
    let mut s = session(&user("u"), now);
    s.attributes.insert("cart".into(), json!(["book"]));
    create(&store, &s).await;
    let new = s.id.regenerate();
    let later = now + SECOND;
    let renamed = match store.rename(&s.id, &new, Change::at(later)).await.unwrap() {
        Renamed::Renamed(r) => r,
        other => panic!("expected renamed, got {other:?}"),
    };
    assert_eq!(renamed.id, new);
    assert_eq!(renamed.attributes, s.attributes);
    assert_eq!(renamed.user_id, s.user_id);
    assert_eq!(renamed.created_at, s.created_at);
    assert_eq!(renamed.version, Version(2));
    assert_eq!(store.load(&s.id, later).await.unwrap(), None);
    assert_eq!(store.load(&new, later).await.unwrap(), Some(renamed));
    assert_eq!(ids(&store.list_user(&s.user_id, &Page::DEFAULT, later).await.unwrap()), vec![new]);
    assert_eq!(store.delete(&s.id, DeleteReason::Logout, Change::at(later)).await.unwrap(), None);
}

/// Sessions with ids of 43 characters, as earlier versions made them, and with today's shorter
/// ids live side by side: loaded, patched, listed, counted, renamed, purged when due.
pub async fn ids_of_both_lengths_work_alike(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let tag = SessionId::generate_for(&u);
    let long_id: SessionId = format!("{tag}{}", &SessionId::generate().as_ref()[..19]).parse().unwrap();
    assert_eq!(long_id.as_ref().len(), SessionId::LONG_LEN);
    let earlier = Session::new(long_id, u.clone(), now, SECOND * 10, ABSOLUTE);
    create(&store, &earlier).await;
    let today = created(&store, &u, now + SECOND).await;
    assert_eq!(today.id.as_ref().len(), SessionId::LEN);
    assert_eq!(store.load(&earlier.id, now).await.unwrap(), Some(earlier.clone()));
    let mut set = Patch::default();
    set.set.insert("k".into(), json!(1));
    assert_eq!(patch(&store, &earlier.id, &set, now).await.attributes.get("k"), Some(&json!(1)));
    let both = vec![earlier.id.clone(), today.id.clone()];
    assert_eq!(ids(&store.list_user(&u, &Page::DEFAULT, now + SECOND).await.unwrap()), both, "oldest first");
    let renamed = today.id.regenerate();
    assert!(matches!(store.rename(&today.id, &renamed, Change::at(now + SECOND)).await.unwrap(), Renamed::Renamed(_)));
    let later = now + SECOND * 10;
    let purged: Vec<_> =
        store.delete_expired(later, 1000).await.unwrap().into_iter().filter(|r| r.user_id == u).collect();
    assert_eq!(purged.into_iter().map(|r| r.id).collect::<Vec<_>>(), vec![earlier.id.clone()]);
    assert_eq!(ids(&store.list_user(&u, &Page::DEFAULT, later).await.unwrap()), vec![renamed]);
}

/// Renaming onto a live id writes nothing.
pub async fn rename_to_a_live_id_is_refused(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let a = created(&store, &u, now).await;
    let b = created(&store, &u, now).await;
    assert_eq!(store.rename(&a.id, &b.id, Change::at(now)).await.unwrap(), Renamed::IdTaken);
    assert_eq!(store.load(&a.id, now).await.unwrap(), Some(a));
    assert_eq!(store.load(&b.id, now).await.unwrap(), Some(b));
}

/// Renaming an unknown or dead session is `NotFound`.
pub async fn rename_of_unknown_session_is_not_found(store: SharedStore) {
    let now = t0();
    let unknown = SessionId::generate_for(&user("nobody"));
    assert_eq!(store.rename(&unknown, &unknown.regenerate(), Change::at(now)).await.unwrap(), Renamed::NotFound);
    let s = created(&store, &user("u"), now).await;
    let new = s.id.regenerate();
    assert_eq!(store.rename(&s.id, &new, Change::at(now + IDLE)).await.unwrap(), Renamed::NotFound);
    assert_eq!(store.load(&new, now).await.unwrap(), None);
}

/// `delete` returns the live session once, and removes it from its user's index.
pub async fn delete_returns_the_session_once(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("u"), now).await;
    assert_eq!(store.delete(&s.id, DeleteReason::Logout, Change::at(now)).await.unwrap(), Some(s.clone()));
    assert_eq!(store.delete(&s.id, DeleteReason::Logout, Change::at(now)).await.unwrap(), None);
    assert_eq!(store.load(&s.id, now).await.unwrap(), None);
    assert!(store.list_user(&s.user_id, &Page::DEFAULT, now).await.unwrap().is_empty());
}

/// A user's list holds their live sessions only, oldest first.
pub async fn list_user_returns_only_that_users_live_sessions_oldest_first(store: SharedStore) {
    let now = t0();
    let (u, other) = (user("u"), user("other"));
    let first = created(&store, &u, now).await;
    let second = created(&store, &u, now + SECOND).await;
    let third = created(&store, &u, now + SECOND * 2).await;
    created(&store, &other, now).await;
    let listed = store.list_user(&u, &Page::DEFAULT, now + SECOND * 2).await.unwrap();
    assert_eq!(ids(&listed), vec![first.id.clone(), second.id.clone(), third.id.clone()]);
    assert_eq!(listed[0], first);
    // The first expires one second before the second.
    assert_eq!(ids(&store.list_user(&u, &Page::DEFAULT, now + IDLE).await.unwrap()), vec![second.id, third.id]);
    assert!(store.list_user(&user("nobody"), &Page::DEFAULT, now).await.unwrap().is_empty());
}

/// `find_users` lists the users with a live session whose id starts with a prefix, each once,
/// in byte order, at most `limit`; characters that SQL patterns and regular expressions treat
/// specially match only themselves.
pub async fn find_users_lists_users_with_live_sessions_by_prefix(store: SharedStore) {
    let now = t0();
    let base = user("find");
    let named = |rest: &str| -> UserId { format!("{base}/{rest}").parse().expect("valid user id") };
    let (bang, percent, dot) = (named("a!b"), named("a%_x"), named("a.c"));
    let (alfred, alice, bob, gone) = (named("alfred"), named("alice"), named("bob"), named("aldo"));
    for u in [&alice, &alice, &alfred, &bob, &percent, &dot, &bang] {
        created(&store, u, now).await;
    }
    // Aldo's only session reaches its deadline at `now`: dead.
    created(&store, &gone, now - IDLE).await;
    let find = |prefix: String, limit: u32| {
        let store = store.clone();
        async move { store.find_users(&prefix, NonZeroU32::new(limit).unwrap(), now).await.unwrap() }
    };
    let everyone = vec![bang.clone(), percent.clone(), dot.clone(), alfred.clone(), alice.clone(), bob];
    assert_eq!(find(format!("{base}/"), 10).await, everyone);
    assert_eq!(find(format!("{base}/"), 2).await, everyone[..2]);
    assert_eq!(find(format!("{base}/al"), 10).await, vec![alfred, alice.clone()]);
    assert_eq!(find(alice.to_string(), 10).await, vec![alice]);
    assert_eq!(find(format!("{base}/a%"), 10).await, vec![percent]);
    assert_eq!(find(format!("{base}/a."), 10).await, vec![dot]);
    assert_eq!(find(format!("{base}/a!"), 10).await, vec![bang]);
    assert!(find(format!("{base}/a_"), 10).await.is_empty(), "`_` is no wildcard");
    assert!(find(format!("{base}/ald"), 10).await.is_empty(), "a user with dead sessions only is not found");
}

/// `scan` pages through every live session of the store once, in an order that stays put: a
/// session deleted or created between pages never makes another repeat or go missing, and no
/// dead session is returned.
pub async fn scan_pages_through_every_live_session_once(store: SharedStore) {
    let now = t0();
    let mut live = Vec::new();
    for name in ["scan-a", "scan-b", "scan-c", "scan-d"] {
        let u = user(name);
        for i in 0..3 {
            live.push(created(&store, &u, now + SECOND * i).await.id);
        }
    }
    // Dead by `now`: never returned.
    created(&store, &user("scan-dead"), now - IDLE).await;
    let three = NonZeroU32::new(3).unwrap();
    let mut seen: Vec<SessionId> = Vec::new();
    let mut after: Option<SessionId> = None;
    let (mut deleted, mut added) = (None, None);
    loop {
        let page = store.scan(after.as_ref(), three, now).await.unwrap();
        assert!(page.len() <= 3);
        assert!(page.iter().all(|s| !s.is_expired(now)));
        seen.extend(page.iter().map(|s| s.id.clone()));
        if page.len() < 3 {
            break;
        }
        after = page.last().map(|s| s.id.clone());
        // Between the first and second pages: one not seen yet goes, one comes.
        if deleted.is_none() {
            let victim = live.iter().find(|id| !seen.contains(id)).unwrap().clone();
            store.delete(&victim, DeleteReason::Revoked, Change::at(now)).await.unwrap();
            deleted = Some(victim);
            added = Some(created(&store, &user("scan-new"), now).await.id);
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no session twice");
    let deleted = deleted.unwrap();
    for id in live.iter().filter(|id| **id != deleted) {
        assert!(seen.contains(id), "a session live all along is returned");
    }
    assert!(!seen.contains(&deleted), "a session deleted before its page is not");
    // The one created meanwhile may or may not have been returned (it was not live all
    // along), but a scan started afterwards returns it.
    let full = store.scan(None, NonZeroU32::new(100).unwrap(), now).await.unwrap();
    assert_eq!(full.len(), live.len(), "every live session: one deleted, one created");
    assert!(full.iter().any(|s| Some(&s.id) == added.as_ref()));
    let kept = live.iter().find(|id| **id != deleted).unwrap();
    let scanned = full.iter().find(|s| s.id == *kept).unwrap();
    assert_eq!(scanned, &store.load(kept, now).await.unwrap().unwrap(), "as `load` reads it");
}

/// `list_user` pages through a user's live sessions in creation order (ties by id): each
/// page starts after the last of the one before and holds at most its limit, dead sessions
/// are skipped, and sessions deleted or created between pages never make one repeat or go
/// missing.
pub async fn list_user_pages_through_every_session_once(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let millis = |n: u64| now + Duration::from_millis(n);
    let mut live = Vec::new();
    // Seven sessions, the last two created in the same millisecond, and a dead one among them.
    for n in [0, 1, 2, 3, 4, 5, 5] {
        let s = Session::new(SessionId::generate_for(&u), u.clone(), millis(n), IDLE, ABSOLUTE);
        create(&store, &s).await;
        live.push(s);
    }
    let dead = Session::new(SessionId::generate_for(&u), u.clone(), millis(3), Duration::from_millis(1), ABSOLUTE);
    create(&store, &dead).await;
    live.sort_by_key(Position::of);
    let later = now + SECOND;
    let three = Page::first(NonZeroU32::new(3).unwrap());

    let first = store.list_user(&u, &three, later).await.unwrap();
    assert_eq!(ids(&first), ids(&live[..3]));
    // Between pages: a listed session goes, and a new one comes after all the others.
    store.delete(&live[1].id, DeleteReason::Logout, Change::at(later)).await.unwrap();
    let newest = Session::new(SessionId::generate_for(&u), u.clone(), millis(100), IDLE, ABSOLUTE);
    create(&store, &newest).await;
    let second_page = three.next(&first).expect("a full page has a next one");
    let second = store.list_user(&u, &second_page, later).await.unwrap();
    assert_eq!(ids(&second), ids(&live[3..6]));
    let third_page = second_page.next(&second).expect("a full page has a next one");
    let third = store.list_user(&u, &third_page, later).await.unwrap();
    assert_eq!(ids(&third), vec![live[6].id.clone(), newest.id.clone()]);
    assert_eq!(third_page.next(&third), None, "a page that is not full is the last");
    assert!(store.list_user(&user("nobody"), &three, later).await.unwrap().is_empty());
}

/// Revoking a user deletes every one of their sessions and nobody else's.
pub async fn delete_user_removes_all_and_only_that_users_sessions(store: SharedStore) {
    let now = t0();
    let (u, other) = (user("u"), user("other"));
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(created(&store, &u, now).await.id);
    }
    let theirs = created(&store, &other, now).await;
    let mut deleted = store.delete_user(&u, Change::at(now)).await.unwrap();
    deleted.sort();
    mine.sort();
    assert_eq!(deleted, mine);
    for id in &mine {
        assert_eq!(store.load(id, now).await.unwrap(), None);
    }
    assert!(store.list_user(&u, &Page::DEFAULT, now).await.unwrap().is_empty());
    assert_eq!(store.load(&theirs.id, now).await.unwrap(), Some(theirs));
    assert!(store.delete_user(&u, Change::at(now)).await.unwrap().is_empty());
}

/// Listing and revoking ignore sessions that died, purged or not.
pub async fn list_and_revoke_stay_consistent_after_some_sessions_expire(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let short = Session::new(SessionId::generate_for(&u), u.clone(), now, SECOND * 10, ABSOLUTE);
    create(&store, &short).await;
    let long = created(&store, &u, now).await;
    let later = now + SECOND * 10;
    assert_eq!(ids(&store.list_user(&u, &Page::DEFAULT, later).await.unwrap()), vec![long.id.clone()]);
    assert_eq!(store.delete_user(&u, Change::at(later)).await.unwrap(), vec![long.id.clone()]);
    assert!(store.list_user(&u, &Page::DEFAULT, later).await.unwrap().is_empty());
    assert_eq!(store.load(&short.id, now).await.unwrap(), None, "revoke removes dead sessions too");
}

/// `count_active` counts live sessions only.
pub async fn count_active_ignores_expired_sessions(store: SharedStore) {
    let now = t0();
    let before = store.count_active(now).await.unwrap();
    let u = user("u");
    let short = Session::new(SessionId::generate_for(&u), u.clone(), now, SECOND * 10, ABSOLUTE);
    create(&store, &short).await;
    created(&store, &u, now).await;
    created(&store, &u, now).await;
    assert_eq!(store.count_active(now).await.unwrap(), before + 3);
    assert_eq!(store.count_active(now + SECOND * 10).await.unwrap(), before + 2);
}

/// `delete_expired` removes due sessions with their index entries, at most `limit` per call,
/// and leaves live ones alone.
pub async fn delete_expired_removes_due_sessions_in_bounded_batches(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let mut short = Vec::new();
    for _ in 0..5 {
        let s = Session::new(SessionId::generate_for(&u), u.clone(), now, SECOND * 10, ABSOLUTE);
        create(&store, &s).await;
        short.push(s.id);
    }
    let long = created(&store, &u, now).await;
    let later = now + SECOND * 10;
    let mut purged = Vec::new();
    let first = store.delete_expired(later, 3).await.unwrap();
    assert!(first.len() <= 3, "a batch is bounded by its limit");
    purged.extend(first);
    loop {
        let batch = store.delete_expired(later, 3).await.unwrap();
        if batch.is_empty() {
            break;
        }
        purged.extend(batch);
    }
    let mut purged_ids: Vec<_> = purged.iter().filter(|r| r.user_id == u).map(|r| r.id.clone()).collect();
    purged_ids.sort();
    short.sort();
    assert_eq!(purged_ids, short);
    assert_eq!(store.load(&long.id, later).await.unwrap(), Some(long.clone()));
    assert_eq!(
        ids(&store.list_user(&u, &Page::DEFAULT, now).await.unwrap()),
        vec![long.id],
        "purged sessions leave the index"
    );
}

/// Under `Refuse(n)`, the (n+1)-th live session is refused and nothing is written.
pub async fn refuse_limit_refuses_the_session_over_the_limit(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let limit = UserLimit::Refuse(NonZeroU32::new(2).unwrap());
    for _ in 0..2 {
        assert!(matches!(store.create(&session(&u, now), limit, now).await.unwrap(), Created::Created { .. }));
    }
    let third = session(&u, now);
    assert_eq!(store.create(&third, limit, now).await.unwrap(), Created::LimitReached);
    assert_eq!(store.load(&third.id, now).await.unwrap(), None);
    // Dead sessions do not count against the limit.
    let later = now + IDLE;
    let fresh = session(&u, later);
    assert!(matches!(store.create(&fresh, limit, later).await.unwrap(), Created::Created { .. }));
}

/// Under `EvictOldest(n)`, creating the (n+1)-th session deletes the oldest and reports it.
pub async fn evict_oldest_limit_deletes_the_oldest_sessions(store: SharedStore) {
    let now = t0();
    let u = user("u");
    let limit = UserLimit::EvictOldest(NonZeroU32::new(2).unwrap());
    let a = session(&u, now);
    let b = session(&u, now + SECOND);
    let c = session(&u, now + SECOND * 2);
    for s in [&a, &b] {
        assert_eq!(store.create(s, limit, s.created_at).await.unwrap(), Created::Created { evicted: vec![] });
    }
    assert_eq!(store.create(&c, limit, c.created_at).await.unwrap(), Created::Created { evicted: vec![a.id.clone()] });
    assert_eq!(store.load(&a.id, c.created_at).await.unwrap(), None);
    assert_eq!(ids(&store.list_user(&u, &Page::DEFAULT, c.created_at).await.unwrap()), vec![b.id, c.id]);
}

/// Concurrent creates under a limit never leave the user above it, even for an instant.
pub async fn concurrent_creates_never_exceed_the_user_limit(store: SharedStore) {
    let now = t0();
    let u = user("u");
    for limit in [UserLimit::Refuse(NonZeroU32::new(3).unwrap()), UserLimit::EvictOldest(NonZeroU32::new(3).unwrap())] {
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (store, s) = (store.clone(), session(&u, now));
                tokio::spawn(async move { store.create(&s, limit, now).await.unwrap() })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Created::Created { .. }) {
                created += 1;
            }
        }
        let live = store.list_user(&u, &Page::DEFAULT, now).await.unwrap().len();
        assert_eq!(live, 3, "{limit:?}");
        if matches!(limit, UserLimit::Refuse(_)) {
            assert_eq!(created, 3);
        }
        store.delete_user(&u, Change::at(now)).await.unwrap();
    }
}

/// Attribute values of any JSON shape come back unchanged.
pub async fn attributes_keep_any_json_value(store: SharedStore) {
    let now = t0();
    let s = created(&store, &user("üser ✓"), now).await;
    let values = [
        json!(null),
        json!(true),
        json!(-9_007_199_254_740_993_i64),
        json!(1.5e300),
        json!("ünïcødé \u{1F600} \"quoted\" \\ back"),
        json!([1, [2, [3]], {"a": null}]),
        json!({"nested": {"deep": {"deeper": [true, false]}}}),
        json!(""),
    ];
    let mut p = Patch::default();
    for (i, v) in values.iter().enumerate() {
        p = p.set(format!("key.{i} with space/and:colon"), v.clone());
    }
    patch(&store, &s.id, &p, now).await;
    let loaded = store.load(&s.id, now).await.unwrap().unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(&loaded.attributes[&format!("key.{i} with space/and:colon")], v);
    }
}

/// Services are created once, listed in id order without secrets, and deleted.
pub async fn services_are_created_once_listed_and_deleted(store: SharedStore) {
    let now = t0();
    let suffix = &SessionId::generate().as_ref()[..6].to_ascii_lowercase().replace(['-', '_'], "x");
    let (b, _) = ServiceRecord::issue(format!("b-{suffix}").parse().unwrap(), "B", vec![Permission::Read], now);
    let (a, token) = ServiceRecord::issue(format!("a-{suffix}").parse().unwrap(), "A", vec![Permission::Admin], now);
    assert!(store.create_service(&b).await.unwrap());
    assert!(store.create_service(&a).await.unwrap());
    let (dup, _) = ServiceRecord::issue(a.id.clone(), "dup", vec![], now);
    assert!(!store.create_service(&dup).await.unwrap(), "a taken service id is not overwritten");
    let loaded = store.load_service(&a.id).await.unwrap().unwrap();
    assert_eq!(loaded, a);
    assert!(loaded.verify(&token));
    // Every service, in pages of two: ordered by id, each page after the one before.
    let two = NonZeroU32::new(2).unwrap();
    let mut all: Vec<ServiceRecord> = Vec::new();
    loop {
        let page = store.list_services(all.last().map(|s| &s.id), two).await.unwrap();
        assert!(page.len() <= 2);
        let full = page.len() == 2;
        all.extend(page);
        if !full {
            break;
        }
    }
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ordered by id, each once");
    let listed: Vec<_> = all.into_iter().filter(|s| s.id.as_ref().ends_with(suffix.as_str())).collect();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert!(store.delete_service(&a.id).await.unwrap());
    let after_a = store.list_services(Some(&a.id), NonZeroU32::MIN).await.unwrap();
    assert!(after_a.iter().all(|s| s.id > a.id), "a page starts after its cursor");
    assert!(!store.delete_service(&a.id).await.unwrap());
    assert_eq!(store.load_service(&a.id).await.unwrap(), None);
}

/// A service's record is replaced whole, its secret still verifying; a missing one is not
/// created, and a removed one stays removed.
pub async fn services_are_updated_in_place_never_recreated(store: SharedStore) {
    let now = t0();
    let suffix = &SessionId::generate().as_ref()[..6].to_ascii_lowercase().replace(['-', '_'], "x");
    let (service, token) =
        ServiceRecord::issue(format!("u-{suffix}").parse().unwrap(), "U", vec![Permission::Read], now);
    assert!(store.create_service(&service).await.unwrap());
    let changed = ServiceRecord { permissions: vec![Permission::Read, Permission::Write], ..service.clone() };
    assert!(store.update_service(&changed).await.unwrap());
    let loaded = store.load_service(&service.id).await.unwrap().unwrap();
    assert_eq!(loaded, changed);
    assert!(loaded.verify(&token), "the token still works");
    // Writing what is stored already is still an update of a present service.
    assert!(store.update_service(&changed).await.unwrap());
    let listed = store.list_services(None, sessanger_core::Page::MAX_LIMIT).await.unwrap();
    assert_eq!(listed.iter().filter(|s| s.id == service.id).collect::<Vec<_>>(), vec![&changed]);

    let (missing, _) = ServiceRecord::issue(format!("m-{suffix}").parse().unwrap(), "M", vec![Permission::Admin], now);
    assert!(!store.update_service(&missing).await.unwrap());
    assert_eq!(store.load_service(&missing.id).await.unwrap(), None, "an update creates nothing");
    assert!(store.delete_service(&service.id).await.unwrap());
    assert!(!store.update_service(&changed).await.unwrap());
    assert_eq!(store.load_service(&service.id).await.unwrap(), None, "a removed service stays removed");
}

/// A healthy store answers `ping`.
pub async fn ping_answers(store: SharedStore) {
    store.ping().await.unwrap();
}
