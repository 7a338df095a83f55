//! Native expiry: Redis drops dead records by itself, and still the user index never lists a
//! dead session and `delete_expired` reports every expiry once. Run on standalone Redis and
//! on the cluster, with real (short) deadlines, since native expiry follows Redis's clock.

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use sessanger_core::{
    Change, DeleteReason, Device, Maintenance, Page, Patch, PatchOptions, Renamed, ServiceId, Session, SessionId,
    SessionStore, StoreError, Timestamp, UserId, UserLimit,
};
use sessanger_store_redis::{RedisConnection, RedisStore};

// Long enough that a loaded machine never sees a short session die before the test looks.
const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(600);

fn session(user: &UserId, idle: Duration) -> Session {
    Session::new(SessionId::generate_for(user), user.clone(), Timestamp::now(), idle, Duration::from_secs(3600))
}

fn unique_user() -> UserId {
    format!("expiry-{}", &SessionId::generate().as_ref()[..8]).parse().unwrap()
}

async fn create(store: &RedisStore, s: &Session) {
    store.create(s, UserLimit::Unlimited, s.created_at).await.unwrap();
}

/// A plain connection to the same Redis (the store's own connection type, standalone or
/// cluster), to look at the keys as the store laid them out.
async fn raw(url: &str) -> RedisConnection {
    RedisConnection::connect(url, &sessanger_tls::LoadedTls::default()).await.unwrap()
}

fn user_key(store: &RedisStore, user: &UserId) -> String {
    format!("{{{}:{}}}:u:{user}", store.prefix(), user.shard_tag())
}

fn single_key(store: &RedisStore, user: &UserId) -> String {
    format!("{{{}:{}}}:single", store.prefix(), user.shard_tag())
}

/// The part of its shard's expiry set that holds session `id`'s entry: by the id's third
/// character.
fn expiry_key(store: &RedisStore, id: &SessionId) -> String {
    format!("{}{}", unsplit_expiry_key(store, id), id.as_ref().as_bytes()[2] % 4)
}

/// The entry of session `id` of `user` in its part of the expiry set.
fn expiry_entry(id: &SessionId, user: &UserId) -> String {
    format!("{id}\x1f{user}")
}

/// The unsplit expiry set of session `id`'s shard, as versions before the parts kept it.
fn unsplit_expiry_key(store: &RedisStore, id: &SessionId) -> String {
    format!("{{{}:{}}}:x", store.prefix(), id.shard_tag())
}

fn session_key(store: &RedisStore, id: &SessionId) -> String {
    format!("{{{}:{}}}:s:{id}", store.prefix(), id.shard_tag())
}

/// A `#[tokio::test]` on standalone Redis and one on the cluster, each running `$case` on a
/// store of its own and a plain connection to the same server.
macro_rules! on_standalone_and_cluster {
    ($case:ident: $standalone:ident, $cluster:ident) => {
        #[tokio::test]
        async fn $standalone() {
            let url = common::redis_url();
            $case(common::store(url.clone()).await, raw(&url).await).await;
        }

        #[tokio::test]
        async fn $cluster() {
            let url = common::cluster_url();
            $case(common::store(url.clone()).await, raw(&url).await).await;
        }
    };
}

async fn the_index_never_lists_a_dead_session(store: RedisStore, mut raw: RedisConnection) {
    let user = unique_user();
    let short = session(&user, SHORT);
    let long = session(&user, LONG);
    create(&store, &short).await;
    create(&store, &long).await;
    let ids = |sessions: Vec<Session>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let listed = ids(store.list_user(&user, &Page::DEFAULT, short.created_at).await.unwrap());
    assert_eq!(listed.len(), 2);
    // Dead by the caller's clock, before Redis drops it: not listed.
    assert_eq!(ids(store.list_user(&user, &Page::DEFAULT, short.expires_at).await.unwrap()), vec![long.id.clone()]);
    // Dropped by Redis itself: not listed, and its index entry is pruned by the listing.
    tokio::time::sleep(SHORT * 2).await;
    let gone: bool = !raw.exists::<_, bool>(session_key(&store, &short.id)).await.unwrap();
    assert!(gone, "Redis expires the record natively at expires_at");
    assert_eq!(ids(store.list_user(&user, &Page::DEFAULT, Timestamp::now()).await.unwrap()), vec![long.id.clone()]);
    let indexed: Vec<String> = raw.zrange(user_key(&store, &user), 0, -1).await.unwrap();
    assert_eq!(indexed, vec![long.id.to_string()]);
}

async fn delete_expired_reports_every_expiry_once(store: RedisStore, mut raw: RedisConnection) {
    let user = unique_user();
    let dead: Vec<Session> = (0..3).map(|_| session(&user, SHORT)).collect();
    for s in &dead {
        create(&store, s).await;
    }
    let live = session(&user, LONG);
    create(&store, &live).await;
    tokio::time::sleep(SHORT * 2).await;
    for s in &dead {
        let exists: bool = raw.exists(session_key(&store, &s.id)).await.unwrap();
        assert!(!exists, "Redis dropped the record by itself");
    }
    let now = Timestamp::now();
    assert_eq!(store.count_active(now).await.unwrap(), 1);
    let mut reported = store.delete_expired(now, 2).await.unwrap();
    assert_eq!(reported.len(), 2, "bounded by the limit");
    reported.extend(store.delete_expired(now, 100).await.unwrap());
    let mut ids: Vec<_> = reported.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    let mut expected: Vec<_> = dead.iter().map(|s| s.id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected, "every expired session is reported, though Redis dropped its record");
    assert!(reported.iter().all(|r| r.user_id == user));
    assert!(store.delete_expired(now, 100).await.unwrap().is_empty(), "reported once");
    assert_eq!(store.list_user(&user, &Page::DEFAULT, now).await.unwrap(), vec![live]);
}

/// Versions before the expiry sets were split in parts kept a shard's entries in one set: what
/// they left there is still counted, scanned and searched, moved to its part by the next write,
/// and reported once when due, and the set empties by itself.
async fn what_the_unsplit_expiry_set_holds_is_still_kept(store: RedisStore, mut raw: RedisConnection) {
    let user = unique_user();
    // With ids of 43 characters, as those versions made them; due by the caller's clock, not
    // Redis's: nothing here waits for a deadline.
    let earlier = |idle| {
        let id = format!("{}{}", SessionId::generate_for(&user), &SessionId::generate().as_ref()[..19]);
        Session { id: id.parse().unwrap(), ..session(&user, idle) }
    };
    let (dying, kept, touched) = (earlier(LONG / 20), earlier(LONG), earlier(LONG));
    for s in [&dying, &kept, &touched] {
        assert_eq!(s.id.as_ref().len(), SessionId::LONG_LEN);
        create(&store, s).await;
        let (part, unsplit) = (expiry_key(&store, &s.id), unsplit_expiry_key(&store, &s.id));
        let entry = expiry_entry(&s.id, &user);
        let deadline: f64 = raw.zscore(&part, &entry).await.unwrap();
        let unsplit_entry = format!("{}{user}", s.id);
        let _: () = redis::pipe()
            .zrem(&part, &entry)
            .zadd(&unsplit, unsplit_entry, deadline)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let (now, ten) = (Timestamp::now(), std::num::NonZeroU32::new(10).unwrap());
    assert_eq!(store.count_active(now).await.unwrap(), 3);
    assert_eq!(store.scan(None, ten, now).await.unwrap().len(), 3);
    assert_eq!(store.find_users("expiry-", ten, now).await.unwrap(), vec![user.clone()]);

    // A write moves the entry it meets to its part.
    assert!(store.touch(&touched.id, Timestamp::now()).await.unwrap().is_some());
    let in_part: Option<f64> =
        raw.zscore(expiry_key(&store, &touched.id), expiry_entry(&touched.id, &user)).await.unwrap();
    let left: Option<f64> =
        raw.zscore(unsplit_expiry_key(&store, &touched.id), format!("{}{user}", touched.id)).await.unwrap();
    assert!(in_part.is_some() && left.is_none(), "{in_part:?} {left:?}");

    // Reported once when due.
    let now = dying.expires_at;
    let reported: Vec<SessionId> = store.delete_expired(now, 100).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(reported, vec![dying.id.clone()]);
    assert!(store.delete_expired(now, 100).await.unwrap().is_empty(), "reported once");
    assert_eq!(store.count_active(now).await.unwrap(), 2);
    assert!(store.delete(&kept.id, DeleteReason::Logout, Change::at(now)).await.unwrap().is_some());
    assert!(!raw.exists::<_, bool>(unsplit_expiry_key(&store, &kept.id)).await.unwrap(), "emptied by itself");
}

on_standalone_and_cluster!(
    what_the_unsplit_expiry_set_holds_is_still_kept:
    what_the_unsplit_expiry_set_holds_is_still_kept_on_standalone_redis,
    what_the_unsplit_expiry_set_holds_is_still_kept_on_the_cluster
);

/// Most users have one session: theirs is indexed by a field of the shard's hash, with no key
/// of the user's own; a second session moves the user to a sorted set of its own. Either way the
/// index follows a regeneration, a revocation, an expiry and the revocation of all.
async fn a_user_with_one_session_has_no_index_key_of_its_own(store: RedisStore, mut raw: RedisConnection) {
    let user = unique_user();
    let (single, sorted) = (single_key(&store, &user), user_key(&store, &user));
    let first = session(&user, SHORT);
    create(&store, &first).await;
    let only: Option<String> = raw.hget(&single, user.as_ref()).await.unwrap();
    assert_eq!(only.as_deref(), Some(first.id.as_ref()));
    assert!(!raw.exists::<_, bool>(&sorted).await.unwrap(), "no key of the user's own");
    let renamed = first.id.regenerate();
    assert!(matches!(
        store.rename(&first.id, &renamed, Change::at(Timestamp::now())).await.unwrap(),
        Renamed::Renamed(_)
    ));
    let only: Option<String> = raw.hget(&single, user.as_ref()).await.unwrap();
    assert_eq!(only.as_deref(), Some(renamed.as_ref()), "a regeneration moves the field");
    let listed = |at| store.list_user(&user, &Page::DEFAULT, at);
    assert_eq!(listed(Timestamp::now()).await.unwrap().len(), 1);

    // A second session: both move to the sorted set, oldest first.
    let second = session(&user, LONG);
    create(&store, &second).await;
    assert!(!raw.hexists::<_, _, bool>(&single, user.as_ref()).await.unwrap());
    let indexed: Vec<String> = raw.zrange(&sorted, 0, -1).await.unwrap();
    assert_eq!(indexed, vec![renamed.to_string(), second.id.to_string()]);
    // The first expires: the purge takes it out of the sorted set, which stays the index.
    tokio::time::sleep(SHORT * 2).await;
    let reported = store.delete_expired(Timestamp::now(), 100).await.unwrap();
    assert!(reported.iter().any(|r| r.id == renamed));
    let indexed: Vec<String> = raw.zrange(&sorted, 0, -1).await.unwrap();
    assert_eq!(indexed, vec![second.id.to_string()]);
    assert_eq!(store.delete_user(&user, Change::at(Timestamp::now())).await.unwrap(), vec![second.id.clone()]);
    assert!(!raw.exists::<_, bool>(&sorted).await.unwrap());

    // Alone again: back in the hash; revoked: gone from it.
    let third = session(&user, LONG);
    create(&store, &third).await;
    let only: Option<String> = raw.hget(&single, user.as_ref()).await.unwrap();
    assert_eq!(only.as_deref(), Some(third.id.as_ref()));
    let reason = sessanger_core::DeleteReason::Revoked;
    assert!(store.delete(&third.id, reason, Change::at(Timestamp::now())).await.unwrap().is_some());
    assert!(!raw.hexists::<_, _, bool>(&single, user.as_ref()).await.unwrap());
    assert!(listed(Timestamp::now()).await.unwrap().is_empty());
}

on_standalone_and_cluster!(
    a_user_with_one_session_has_no_index_key_of_its_own:
    a_user_with_one_session_has_no_index_key_of_its_own_on_standalone_redis,
    a_user_with_one_session_has_no_index_key_of_its_own_on_the_cluster
);

on_standalone_and_cluster!(
    the_index_never_lists_a_dead_session:
    the_user_index_never_lists_a_dead_session_on_standalone_redis,
    the_user_index_never_lists_a_dead_session_on_the_cluster
);

on_standalone_and_cluster!(
    delete_expired_reports_every_expiry_once:
    delete_expired_reports_sessions_redis_already_dropped_on_standalone_redis,
    delete_expired_reports_sessions_redis_already_dropped_on_the_cluster
);

#[tokio::test]
async fn a_stored_record_that_does_not_decode_is_a_decode_error() {
    let url = common::redis_url();
    // No node cache: the test writes behind the store's back and reads at once, where a cache
    // would be told of the write a moment later.
    let store = common::uncached_store(url.clone()).await;
    let user = unique_user();
    let s = session(&user, LONG);
    create(&store, &s).await;
    let mut raw = raw(&url).await;
    let _: () = raw.hset(session_key(&store, &s.id), "a:broken", "{not json").await.unwrap();
    let loaded = store.load(&s.id, Timestamp::now()).await;
    assert!(matches!(loaded, Err(StoreError::Decode(_))), "{loaded:?}");
    let _: () = raw.hdel(session_key(&store, &s.id), "a:broken").await.unwrap();
    // A device the decoder cannot read: the scripts pass it through, the decoder refuses it.
    let _: () = raw.hset(session_key(&store, &s.id), "d", "{not json").await.unwrap();
    let listed = store.list_user(&user, &Page::DEFAULT, Timestamp::now()).await;
    assert!(matches!(listed, Err(StoreError::Decode(_))), "{listed:?}");
    // Metadata the scripts cannot read: a clear error, and the record is left as it was.
    let _: () = raw.hset(session_key(&store, &s.id), "m", "yesterday").await.unwrap();
    let patched = store.patch(&s.id, &Patch::default(), PatchOptions::new(), Change::at(Timestamp::now())).await;
    assert!(
        matches!(&patched, Err(StoreError::Other(e)) if e.to_string().contains("malformed metadata")),
        "{patched:?}"
    );
    let kept: String = raw.hget(session_key(&store, &s.id), "m").await.unwrap();
    assert_eq!(kept, "yesterday");
}

/// A device that says nothing takes no field of the record; a record an earlier version wrote
/// with `"d": "{}"` still reads, and device fields a write names are stored either way.
#[tokio::test]
async fn a_device_that_says_nothing_takes_no_field() {
    let url = common::redis_url();
    // No node cache, for the same reason.
    let store = common::uncached_store(url.clone()).await;
    let mut raw = raw(&url).await;
    let s = session(&unique_user(), LONG);
    create(&store, &s).await;
    let key = session_key(&store, &s.id);
    assert!(!raw.hexists::<_, _, bool>(&key, "d").await.unwrap());
    async fn device(store: &RedisStore, id: &SessionId) -> Device {
        store.load(id, Timestamp::now()).await.unwrap().unwrap().device
    }
    assert_eq!(device(&store, &s.id).await, Device::default());
    let named = Device { ip: Some("192.0.2.7".into()), ..Device::default() };
    let nothing = Patch::default();
    let patch = || {
        let options = PatchOptions { device: Some(&named), ..PatchOptions::new() };
        store.patch(&s.id, &nothing, options, Change::at(Timestamp::now()))
    };
    // As an earlier version stored it: read as no device, and merged into.
    let _: () = raw.hset(&key, "d", "{}").await.unwrap();
    assert_eq!(device(&store, &s.id).await, Device::default());
    patch().await.unwrap();
    assert_eq!(device(&store, &s.id).await, named);
    // No field at all: merged into as well.
    let _: () = raw.hdel(&key, "d").await.unwrap();
    assert_eq!(device(&store, &s.id).await, Device::default());
    patch().await.unwrap();
    assert_eq!(device(&store, &s.id).await, named);
}

#[tokio::test]
async fn a_creator_shares_the_user_field_when_both_fit() {
    let url = common::redis_url();
    // No node cache, for the same reason.
    let store = common::uncached_store(url.clone()).await;
    let mut raw = raw(&url).await;
    let web: ServiceId = "web".parse().unwrap();
    let short = unique_user();
    // 63 bytes of user: with the separator and `web`, past one listpack value.
    let long: UserId = format!("{short}-{}", "x".repeat(62 - short.as_ref().len())).parse().unwrap();
    for (user, folded) in [(short, true), (long, false)] {
        let mut s = session(&user, LONG);
        s.created_by = Some(web.clone());
        create(&store, &s).await;
        let key = session_key(&store, &s.id);
        let (u, b): (String, Option<String>) =
            redis::pipe().hget(&key, "u").hget(&key, "b").query_async(&mut raw).await.unwrap();
        if folded {
            assert_eq!((u, b), (format!("{user}\x1fweb"), None));
        } else {
            assert_eq!((u, b), (user.to_string(), Some("web".to_owned())));
        }
        let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg(&key).query_async(&mut raw).await.unwrap();
        assert_eq!(encoding, "listpack", "{user}");
        // Every script finds the user in either form: a patch, the index, the expiry entry.
        let loaded = store.load(&s.id, Timestamp::now()).await.unwrap().unwrap();
        assert_eq!((&loaded.user_id, &loaded.created_by), (&user, &Some(web.clone())));
        let mut patch = Patch::default();
        patch.set.insert("k".into(), 1.into());
        store.patch(&s.id, &patch, PatchOptions::new(), Change::at(Timestamp::now())).await.unwrap();
        let listed = store.list_user(&user, &Page::DEFAULT, Timestamp::now()).await.unwrap();
        assert_eq!(listed.iter().map(|s| (&s.id, &s.created_by)).collect::<Vec<_>>(), [(&s.id, &Some(web.clone()))]);
        let (part, entry) = (expiry_key(&store, &s.id), expiry_entry(&s.id, &user));
        assert!(raw.zscore::<_, _, Option<f64>>(&part, &entry).await.unwrap().is_some(), "{entry:?}");
        let deleted = store.delete(&s.id, DeleteReason::Logout, Change::at(Timestamp::now())).await.unwrap();
        assert!(deleted.is_some());
        let left: Option<f64> = raw.zscore(&part, &entry).await.unwrap();
        assert_eq!(left, None, "the expiry entry goes with the record");
    }
    // As an earlier version stored it, the creator in a field of its own: read the same.
    let user = unique_user();
    let s = session(&user, LONG);
    create(&store, &s).await;
    let _: () = raw.hset(session_key(&store, &s.id), "b", "web").await.unwrap();
    let loaded = store.load(&s.id, Timestamp::now()).await.unwrap().unwrap();
    assert_eq!((loaded.user_id, loaded.created_by), (user, Some(web)));
}

#[tokio::test]
async fn every_key_of_a_user_sits_in_one_cluster_slot() {
    let url = common::cluster_url();
    let store = common::store(url.clone()).await;
    let mut raw = raw(&url).await;
    let user = unique_user();
    let sessions: Vec<Session> = (0..3).map(|_| session(&user, LONG)).collect();
    for s in &sessions {
        create(&store, s).await;
    }
    let mut keys: Vec<String> = sessions.iter().map(|s| session_key(&store, &s.id)).collect();
    keys.push(user_key(&store, &user));
    keys.extend(sessions.iter().map(|s| expiry_key(&store, &s.id)));
    let mut slots = std::collections::HashSet::new();
    for key in &keys {
        let exists: bool = raw.exists(key).await.unwrap();
        assert!(exists, "{key} is where the layout says");
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut raw).await.unwrap();
        slots.insert(slot);
    }
    // The hash of users with one session: empty (and so absent) once this user has three.
    let slot: i64 =
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(single_key(&store, &user)).query_async(&mut raw).await.unwrap();
    slots.insert(slot);
    assert_eq!(slots.len(), 1, "{keys:?} span slots {slots:?}");
}

/// Not a benchmark: keeps the cost of visiting all 4096 shards in view (printed with
/// `--nocapture`) and fails if it grows out of proportion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_all_shards_stays_cheap() {
    for url in [common::redis_url(), common::cluster_url()] {
        let store = common::store(url.clone()).await;
        store.count_active(Timestamp::now()).await.unwrap();
        let started = std::time::Instant::now();
        store.count_active(Timestamp::now()).await.unwrap();
        let count = started.elapsed();
        let started = std::time::Instant::now();
        store.delete_expired(Timestamp::now(), 1000).await.unwrap();
        let purge = started.elapsed();
        println!("{url}: count_active {count:?}, delete_expired (nothing due) {purge:?}");
        assert!(count < Duration::from_secs(5) && purge < Duration::from_secs(5), "{url}: {count:?} {purge:?}");
    }
}

/// One hash value over `hash-max-listpack-value` (64 bytes) would turn the whole record into a
/// hash table, several times larger: the packed times must stay short, even far in the future.
#[tokio::test]
async fn a_record_with_small_values_stays_a_compact_listpack() {
    let url = common::redis_url();
    let store = common::store(url.clone()).await;
    let user: UserId = format!("{}@example.com", unique_user()).parse().unwrap();
    let mut s = session(&user, Duration::from_secs(400 * 24 * 3600));
    s.version = sessanger_core::Version(u64::from(u32::MAX));
    s.created_by = Some("a-service-with-a-long-name".parse().unwrap());
    s.attributes.insert("theme".into(), serde_json::json!("dark"));
    create(&store, &s).await;
    let mut raw = raw(&url).await;
    let encoding: String =
        redis::cmd("OBJECT").arg("ENCODING").arg(session_key(&store, &s.id)).query_async(&mut raw).await.unwrap();
    assert_eq!(encoding, "listpack");
}
