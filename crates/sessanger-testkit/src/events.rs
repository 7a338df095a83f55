//! The cases of the event log's conformance suite ([`crate::store_events_conformance!`]): every
//! change recorded once, in its own atomic step, with the right fields; nothing recorded for
//! a step that changes nothing; the log read from any point and trimmed as retention says.
//!
//! Cases share nothing with each other: each works on users of its own and looks only at
//! their events, so it holds on a store that other cases write to at the same time.

use std::{num::NonZeroU64, sync::Arc, time::Duration};

use serde_json::json;
use sessanger_core::{
    Change, Created, DeleteReason, EventId, EventLog, EventRecord, Patch, PatchOptions, Patched, RelayClaim, Renamed,
    Replaced, Replacement, Retention, ServiceId, Session, SessionEvent, SessionId, Store, Timestamp, UserId, UserLimit,
    Version,
};

type SharedStore = Arc<dyn Store>;

const IDLE: Duration = Duration::from_secs(600);
const ABSOLUTE: Duration = Duration::from_secs(3600);

fn user(name: &str) -> UserId {
    format!("{name}-{}", &SessionId::generate().as_ref()[..8]).parse().expect("valid user id")
}

fn session(user: &UserId, now: Timestamp) -> Session {
    Session::new(SessionId::generate_for(user), user.clone(), now, IDLE, ABSOLUTE)
}

fn log(store: &SharedStore) -> &dyn EventLog {
    store.event_log().expect("this store keeps an event log")
}

/// Every event recorded after `after` whose session belongs to `user`, oldest first, read in
/// small pages so paging is exercised too.
async fn events_of(store: &SharedStore, user: &UserId, after: Option<EventId>) -> Vec<EventRecord> {
    let mut found = Vec::new();
    let mut cursor = after;
    loop {
        let page = log(store).read_events(cursor, 3).await.expect("read_events");
        let Some(last) = page.last() else { return found };
        cursor = Some(last.id);
        found.extend(page.into_iter().filter(|e| e.event.user_id() == user));
    }
}

fn kinds(events: &[EventRecord]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.kind()).collect()
}

/// Each change, as the manager makes them, records exactly one event, in order, with the
/// acting service, the time of the change and what changed.
pub async fn every_change_records_one_event_in_order(store: SharedStore) {
    let (alice, billing): (UserId, ServiceId) = (user("alice"), "billing".parse().unwrap());
    let now = Timestamp::now();
    let start = log(&store).last_event_id().await.unwrap();
    assert_eq!(log(&store).trimmed_through().await.unwrap(), None, "nothing trimmed yet");
    let mut s = session(&alice, now);
    s.created_by = Some(billing.clone());
    assert!(matches!(store.create(&s, UserLimit::Unlimited, now).await.unwrap(), Created::Created { .. }));
    let by = |at: Timestamp| Change::at(at).by(Some(&billing));
    let t1 = now + Duration::from_secs(1);
    store.refresh(&s.id, by(t1)).await.unwrap().expect("refreshed");
    let patch = Patch::default().set("theme", json!("dark")).remove("cart").incr("n", 1);
    assert!(matches!(store.patch(&s.id, &patch, PatchOptions::new(), by(t1)).await.unwrap(), Patched::Applied(_)));
    let attributes = [("role".to_owned(), json!("admin")), ("lang".to_owned(), json!("fr"))].into_iter().collect();
    let replaced = store.replace(&s.id, Replacement::attributes(&attributes), Change::at(t1)).await.unwrap();
    assert!(matches!(replaced, Replaced::Applied(_)));
    let new = s.id.regenerate();
    assert!(matches!(store.rename(&s.id, &new, by(t1)).await.unwrap(), Renamed::Renamed(_)));
    store.delete(&new, DeleteReason::Logout, by(t1)).await.unwrap().expect("deleted");

    let events = events_of(&store, &alice, start).await;
    assert_eq!(
        kinds(&events),
        ["created", "refreshed", "attributes_changed", "attributes_changed", "regenerated", "deleted"]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids grow: {events:?}");
    assert!(start.is_none_or(|start| events[0].id > start));
    assert_eq!(events[0].at, now);
    assert!(events[1..].iter().all(|e| e.at == t1));
    let services: Vec<_> = events.iter().map(|e| e.service.as_ref()).collect();
    assert_eq!(services, [Some(&billing), Some(&billing), Some(&billing), None, Some(&billing), Some(&billing)]);
    let SessionEvent::AttributesChanged { keys, .. } = &events[2].event else { panic!("{:?}", events[2]) };
    let mut keys = keys.clone();
    keys.sort();
    assert_eq!(keys, ["cart", "n", "theme"], "a patch names the keys it touched");
    let SessionEvent::AttributesChanged { keys, .. } = &events[3].event else { panic!("{:?}", events[3]) };
    let mut keys = keys.clone();
    keys.sort();
    assert_eq!(keys, ["lang", "role"], "a replacement names every key it holds");
    assert_eq!(
        events[4].event,
        SessionEvent::Regenerated { old_session_id: s.id.clone(), session_id: new.clone(), user_id: alice.clone() }
    );
    assert_eq!(
        events[5].event,
        SessionEvent::Deleted { session_id: new, user_id: alice.clone(), reason: DeleteReason::Logout }
    );
    assert_eq!(log(&store).last_event_id().await.unwrap().map(|id| id >= events[5].id), Some(true));
}

/// A step that changes nothing records nothing: unknown ids, stale versions, refused patches,
/// taken ids, limits, reads and plain touches.
pub async fn steps_that_change_nothing_record_nothing(store: SharedStore) {
    let bob = user("bob");
    let now = Timestamp::now();
    let s = session(&bob, now);
    store.create(&s, UserLimit::Unlimited, now).await.unwrap();
    let other = session(&bob, now);
    store.create(&other, UserLimit::Unlimited, now).await.unwrap();
    let after = log(&store).last_event_id().await.unwrap();
    let unknown = SessionId::generate_for(&bob);
    let change = Change::at(now);
    let set = Patch::default().set("a", json!(1));

    assert_eq!(store.patch(&unknown, &set, PatchOptions::new(), change).await.unwrap(), Patched::NotFound);
    let stale = PatchOptions::new().with_expected(Some(Version(7)));
    assert!(matches!(store.patch(&s.id, &set, stale, change).await.unwrap(), Patched::VersionMismatch(_)));
    store.patch(&s.id, &Patch::default().set("n", json!("text")), PatchOptions::new(), change).await.unwrap();
    let after_write = log(&store).last_event_id().await.unwrap();
    let incr = Patch::default().incr("n", 1);
    assert!(matches!(store.patch(&s.id, &incr, PatchOptions::new(), change).await.unwrap(), Patched::Rejected(_)));
    let attributes = Default::default();
    let stale = Replacement { expected: Some(Version(7)), ..Replacement::attributes(&attributes) };
    assert!(matches!(store.replace(&s.id, stale, change).await.unwrap(), Replaced::VersionMismatch(_)));
    assert_eq!(store.rename(&s.id, &other.id, change).await.unwrap(), Renamed::IdTaken);
    assert_eq!(store.rename(&unknown, &unknown.regenerate(), change).await.unwrap(), Renamed::NotFound);
    assert_eq!(store.delete(&unknown, DeleteReason::Logout, change).await.unwrap(), None);
    assert_eq!(store.refresh(&unknown, change).await.unwrap(), None);
    assert_eq!(store.create(&s, UserLimit::Unlimited, now).await.unwrap(), Created::IdTaken);
    let one = UserLimit::Refuse(std::num::NonZeroU32::new(2).unwrap());
    assert_eq!(store.create(&session(&bob, now), one, now).await.unwrap(), Created::LimitReached);
    store.touch(&s.id, now).await.unwrap().expect("touched");
    store.load(&s.id, now).await.unwrap().expect("loaded");

    let events = events_of(&store, &bob, after).await;
    assert_eq!(kinds(&events), ["attributes_changed"], "only the one patch that applied: {events:?}");
    assert_eq!(log(&store).last_event_id().await.unwrap(), after_write);
}

/// Evictions, revocations and expiries are recorded once each: an expiry by whoever removes
/// the dead session, the reaper or a write that meets it first.
pub async fn evictions_revocations_and_expiries_are_recorded_once(store: SharedStore) {
    let carol = user("carol");
    let now = Timestamp::now();
    let start = log(&store).last_event_id().await.unwrap();
    let first = session(&carol, now);
    let one = UserLimit::EvictOldest(std::num::NonZeroU32::new(1).unwrap());
    store.create(&first, one, now).await.unwrap();
    let second = session(&carol, now + Duration::from_millis(1));
    assert_eq!(
        store.create(&second, one, now + Duration::from_millis(1)).await.unwrap(),
        Created::Created { evicted: vec![first.id.clone()] }
    );
    let mut short = session(&carol, now);
    short.expires_at = now + Duration::from_secs(5);
    store.create(&short, UserLimit::Unlimited, now).await.unwrap();
    let mut dead_on_delete = session(&carol, now);
    dead_on_delete.expires_at = now + Duration::from_secs(5);
    store.create(&dead_on_delete, UserLimit::Unlimited, now).await.unwrap();

    let later = now + Duration::from_secs(10);
    assert_eq!(store.delete(&dead_on_delete.id, DeleteReason::Logout, Change::at(later)).await.unwrap(), None);
    let purged = store.delete_expired(later, 1000).await.unwrap();
    assert!(purged.iter().any(|gone| gone.id == short.id));
    assert!(store.delete_expired(later, 1000).await.unwrap().iter().all(|gone| gone.user_id != carol));
    assert_eq!(store.delete_user(&carol, Change::at(later)).await.unwrap(), vec![second.id.clone()]);

    let events = events_of(&store, &carol, start).await;
    let summary: Vec<(&str, &SessionId)> = events.iter().map(|e| (e.event.kind(), e.event.session_id())).collect();
    assert_eq!(
        summary,
        [
            ("created", &first.id),
            ("deleted", &first.id),
            ("created", &second.id),
            ("created", &short.id),
            ("created", &dead_on_delete.id),
            ("expired", &dead_on_delete.id),
            ("expired", &short.id),
            ("deleted", &second.id),
        ]
    );
    let reasons: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            SessionEvent::Deleted { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [DeleteReason::Evicted, DeleteReason::Revoked]);
    assert!(events.iter().filter(|e| e.event.kind() == "expired").all(|e| e.service.is_none() && e.at == later));
}

/// The log reads from any point in pages, and trimming drops the oldest events by count and
/// by age without ever giving an id again.
pub async fn the_log_reads_from_any_point_and_trims_by_count_and_age(store: SharedStore) {
    let dave = user("dave");
    let now = Timestamp::now();
    let start = log(&store).last_event_id().await.unwrap();
    for i in 0..10u64 {
        let at = now + Duration::from_secs(i);
        store.create(&session(&dave, at), UserLimit::Unlimited, at).await.unwrap();
    }
    let all = events_of(&store, &dave, start).await;
    assert_eq!(all.len(), 10);
    let from_fourth = events_of(&store, &dave, Some(all[3].id)).await;
    assert_eq!(from_fourth, all[4..], "reading after an id starts right after it");
    let page = log(&store).read_events(Some(all[1].id), 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(page[0].id > all[1].id);

    // By age: what is older than a minute at now + 65 s, the first five.
    let keep_all = NonZeroU64::new(u64::MAX).unwrap();
    let by_age = Retention { max_events: keep_all, max_age: Duration::from_secs(60) };
    log(&store).trim_events(&by_age, now + Duration::from_secs(65)).await.unwrap();
    let left = events_of(&store, &dave, start).await;
    assert_eq!(left, all[5..], "the events older than max_age are gone");
    let trimmed = log(&store).trimmed_through().await.unwrap().expect("trimming dropped events");
    assert!(trimmed >= all[4].id && trimmed < all[5].id, "a consumer after all[3] learns it missed some");
    // By count: the newest three.
    let by_count = Retention { max_events: NonZeroU64::new(3).unwrap(), max_age: Duration::from_secs(86_400) };
    log(&store).trim_events(&by_count, now).await.unwrap();
    let left = log(&store).read_events(None, 100).await.unwrap();
    assert!(left.len() <= 3, "{left:?}");
    assert!(left.iter().all(|e| e.id > all[6].id));
    let last = log(&store).last_event_id().await.unwrap();
    assert_eq!(last, Some(all[9].id).max(last), "trimming never moves the newest id back");
    let next = session(&dave, now);
    store.create(&next, UserLimit::Unlimited, now).await.unwrap();
    let newest = log(&store).read_events(last, 10).await.unwrap();
    assert!(newest.iter().all(|e| Some(e.id) > last), "a new event gets a new id, never a trimmed one");
}

/// A relay is held by one holder at a time: another claims it only once the lease ran out, and
/// a holder that lost it can no longer move its position.
pub async fn a_relay_is_held_by_one_holder_at_a_time(store: SharedStore) {
    let log = log(&store);
    let name = format!("relay-{}", &SessionId::generate().as_ref()[..8]);
    let now = Timestamp::now();
    let (lease, later) = (now + Duration::from_secs(10), now + Duration::from_secs(11));
    store.create(&session(&user("erin"), now), UserLimit::Unlimited, now).await.unwrap();
    let newest = log.last_event_id().await.unwrap();
    // A relay that never ran starts with the oldest event kept.
    assert_eq!(log.claim_relay(&name, "a", lease, now).await.unwrap(), RelayClaim::Held { position: None });
    assert_eq!(log.claim_relay(&name, "b", lease, now).await.unwrap(), RelayClaim::Busy { until: lease });
    let moved = newest.map(EventId::next);
    assert!(log.advance_relay(&name, "a", moved, lease).await.unwrap());
    assert_eq!(log.claim_relay(&name, "a", lease, now).await.unwrap(), RelayClaim::Held { position: moved });
    // The lease runs out: b takes over where a stopped, and a can no longer move.
    assert_eq!(
        log.claim_relay(&name, "b", later + Duration::from_secs(10), later).await.unwrap(),
        RelayClaim::Held { position: moved }
    );
    assert!(!log.advance_relay(&name, "a", moved.map(EventId::next), later).await.unwrap(), "a lost the lease");
    assert!(log.advance_relay(&name, "b", moved.map(EventId::next), later).await.unwrap());
    assert_eq!(
        log.claim_relay(&name, "b", later, later).await.unwrap(),
        RelayClaim::Held { position: moved.map(EventId::next) }
    );
}
