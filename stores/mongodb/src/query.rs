//! The filters, updates and index keys the store sends, as pure functions of their inputs, so
//! their exact shape is unit-tested without a server.
//!
//! Every read filter carries `expires_at > now` with `now` from the caller: a dead session is
//! invisible at once, whatever the server's clock says and whether or not the TTL monitor has
//! removed it yet.

use std::num::NonZeroU32;

use mongodb::{
    bson::{Bson, Document, doc},
    options::UpdateModifications,
};
use sessanger_core::{Attributes, Device, Page, Patch, PatchError, SessionId, Timestamp, UserId, Version};

use crate::document::{attribute_path, date, device_document, field, object_to_document, to_bson};

/// The live session with this id.
pub(crate) fn live_by_id(id: &SessionId, now: Timestamp) -> Document {
    doc! { field::ID: id.as_ref(), field::EXPIRES_AT: { "$gt": date(now) } }
}

/// The session with this id if it is dead at `now` (a dead id may be taken again).
pub(crate) fn dead_by_id(id: &SessionId, now: Timestamp) -> Document {
    doc! { field::ID: id.as_ref(), field::EXPIRES_AT: { "$lte": date(now) } }
}

/// The user's live sessions; sorted by [`user_order`] this is a walk of the
/// `(user_id, created_at, _id)` index.
pub(crate) fn user_live(user: &UserId, now: Timestamp) -> Document {
    doc! { field::USER_ID: user.as_ref(), field::EXPIRES_AT: { "$gt": date(now) } }
}

/// The distinct users with a live session whose id starts with `prefix`, in id order, at
/// most `limit`: an anchored regular expression, which MongoDB reads as a range of the
/// `(user_id, created_at, _id)` index.
pub(crate) fn users_starting_with(prefix: &str, limit: NonZeroU32, now: Timestamp) -> Vec<Document> {
    let mut pattern = String::from("^");
    for c in prefix.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    vec![
        doc! { "$match": { field::USER_ID: { "$regex": pattern }, field::EXPIRES_AT: { "$gt": date(now) } } },
        doc! { "$group": { "_id": format!("${}", field::USER_ID) } },
        doc! { "$sort": { "_id": 1 } },
        doc! { "$limit": i64::from(limit.get()) },
    ]
}

/// A page of the user's live sessions: those after the page's start, in [`user_order`].
pub(crate) fn user_page(user: &UserId, page: &Page, now: Timestamp) -> Document {
    let mut filter = user_live(user, now);
    if let Some(after) = &page.after {
        let created_at = date(after.created_at);
        filter.insert(
            "$or",
            vec![
                doc! { field::CREATED_AT: { "$gt": created_at } },
                doc! { field::CREATED_AT: created_at, field::ID: { "$gt": after.id.as_ref() } },
            ],
        );
    }
    filter
}

/// Every session of the user, live or dead.
pub(crate) fn user_all(user: &UserId) -> Document {
    doc! { field::USER_ID: user.as_ref() }
}

/// Oldest first, ties broken by id, as the contract's `list_user` orders them.
pub(crate) fn user_order() -> Document {
    doc! { field::CREATED_AT: 1, field::ID: 1 }
}

/// Every live session (`count_active`): a range of the TTL index.
pub(crate) fn all_live(now: Timestamp) -> Document {
    doc! { field::EXPIRES_AT: { "$gt": date(now) } }
}

/// Every dead session (`delete_expired`), walked in expiry order on the TTL index.
pub(crate) fn all_dead(now: Timestamp) -> Document {
    doc! { field::EXPIRES_AT: { "$lte": date(now) } }
}

/// Keys of the TTL index; it also serves `count_active` and `delete_expired`.
pub(crate) fn expiry_index_keys() -> Document {
    doc! { field::EXPIRES_AT: 1 }
}

/// Keys of the per-user index: `list_user`, `delete_user` and the user limit read only it.
pub(crate) fn user_index_keys() -> Document {
    doc! { field::USER_ID: 1, field::CREATED_AT: 1, field::ID: 1 }
}

/// The live session with this id at the expected version.
/// The live session with this id, at version `expected` if one is named.
pub(crate) fn live_at(id: &SessionId, expected: Option<Version>, now: Timestamp) -> Document {
    match expected {
        Some(expected) => live_at_version(id, expected, now),
        None => live_by_id(id, now),
    }
}

pub(crate) fn live_at_version(id: &SessionId, expected: Version, now: Timestamp) -> Document {
    let mut filter = live_by_id(id, now);
    filter.insert(field::VERSION, version(expected));
    filter
}

/// The filter of a patch: the live session, at `expected` if given, and only if every
/// attribute to increment is absent or an integer that the increment does not overflow. A
/// patch [`Session::apply`](sessanger_core::Session::apply) would refuse thus matches nothing
/// and writes nothing.
///
/// The integer check uses `$expr` with the aggregation `$type`, which looks at the value
/// itself: a plain `{$type: "long"}` query would also match an *array* holding a long.
pub(crate) fn patch_filter(
    id: &SessionId,
    increments: &[(String, i64)],
    expected: Option<Version>,
    now: Timestamp,
) -> Document {
    let mut filter = live_at(id, expected, now);
    if !increments.is_empty() {
        let checks: Vec<Bson> = increments.iter().map(|(key, by)| Bson::Document(incrementable(key, *by))).collect();
        filter.insert("$expr", doc! { "$and": checks });
    }
    filter
}

/// `$expr` condition: the attribute is missing, or an int/long that `by` can be added to.
fn incrementable(key: &str, by: i64) -> Document {
    let value = format!("${}", attribute_path(key));
    let in_range = if by >= 0 {
        doc! { "$lte": [&value, i64::MAX - by] }
    } else {
        doc! { "$gte": [&value, i64::MIN - by] }
    };
    doc! {
        "$or": [
            { "$eq": [{ "$type": &value }, "missing"] },
            { "$and": [{ "$in": [{ "$type": &value }, ["int", "long"]] }, in_range] },
        ]
    }
}

/// A patch reduced to what it does to each key, as [`Session::apply`] orders it: removals,
/// then sets, then increments counted from the *stored* value. A key named twice (which
/// [`Patch::validate`] refuses anyway) keeps its last effect, and MongoDB never sees two
/// operators on one path.
///
/// [`Session::apply`]: sessanger_core::Session::apply
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AttributeChanges {
    pub(crate) set: Vec<(String, Bson)>,
    pub(crate) unset: Vec<String>,
    pub(crate) increments: Vec<(String, i64)>,
}

impl AttributeChanges {
    /// The changes of `patch`, or the error `apply` gives for an increment that is no integer.
    pub(crate) fn of(patch: &Patch) -> Result<AttributeChanges, PatchError> {
        let mut increments = Vec::with_capacity(patch.incr.len());
        for (key, by) in &patch.incr {
            let by = by.as_i64().ok_or_else(|| PatchError::NotAnInteger(key.clone()))?;
            increments.push((key.clone(), by));
        }
        let incremented = |key: &str| patch.incr.contains_key(key);
        let set = patch
            .set
            .iter()
            .filter(|(key, _)| !incremented(key))
            .map(|(key, value)| (key.clone(), to_bson(value)))
            .collect();
        let mut unset: Vec<String> = patch
            .remove
            .iter()
            .filter(|key| !incremented(key) && !patch.set.contains_key(key.as_str()))
            .cloned()
            .collect();
        unset.sort();
        unset.dedup();
        Ok(AttributeChanges { set, unset, increments })
    }
}

/// The update of a patch without touch: `$set`, `$unset` and `$inc` on `attributes.<key>`,
/// plus `$inc` of the version by the `writes` the patch carries, in one operator document.
pub(crate) fn patch_update(changes: &AttributeChanges, device: Option<&Device>, writes: i64) -> Document {
    let mut set = device_changes(device);
    for (key, value) in &changes.set {
        set.insert(attribute_path(key), value.clone());
    }
    let mut unset = Document::new();
    for key in &changes.unset {
        unset.insert(attribute_path(key), "");
    }
    let mut inc = doc! { field::VERSION: writes };
    for (key, by) in &changes.increments {
        inc.insert(attribute_path(key), *by);
    }
    let mut update = Document::new();
    if !set.is_empty() {
        update.insert("$set", set);
    }
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update.insert("$inc", inc);
    update
}

/// The update of a patch with touch. The new deadline depends on the stored idle TTL and
/// absolute deadline, which only an update pipeline can read, so the whole patch is one
/// pipeline: values are wrapped in `$literal` (a stored string `"$x"` must not be read as a
/// field path), increments are `$add`s on the value or 0 (the filter has checked the type).
pub(crate) fn patch_with_touch_pipeline(
    changes: &AttributeChanges,
    device: Option<&Device>,
    writes: i64,
    now: Timestamp,
) -> Vec<Document> {
    let mut set: Document = device_changes(device)
        .into_iter()
        .map(|(path, value)| (path, Bson::from(doc! { "$literal": value })))
        .collect();
    for (key, value) in &changes.set {
        set.insert(attribute_path(key), doc! { "$literal": value.clone() });
    }
    for (key, by) in &changes.increments {
        let path = attribute_path(key);
        set.insert(&path, doc! { "$add": [{ "$ifNull": [format!("${path}"), 0_i64] }, *by] });
    }
    set.insert(field::VERSION, doc! { "$add": [format!("${}", field::VERSION), writes] });
    set.extend(touch_fields(now));
    let mut pipeline = vec![doc! { "$set": set }];
    if !changes.unset.is_empty() {
        let paths: Vec<String> = changes.unset.iter().map(|key| attribute_path(key)).collect();
        pipeline.push(doc! { "$unset": paths });
    }
    pipeline
}

/// The update of a patch carrying `writes` writes ([`PatchOptions::writes`](sessanger_core::PatchOptions::writes)), as the driver takes it.
pub(crate) fn patch_modifications(
    changes: &AttributeChanges,
    device: Option<&Device>,
    touch: bool,
    writes: NonZeroU32,
    now: Timestamp,
) -> UpdateModifications {
    let writes = i64::from(writes.get());
    if touch {
        UpdateModifications::Pipeline(patch_with_touch_pipeline(changes, device, writes, now))
    } else {
        UpdateModifications::Document(patch_update(changes, device, writes))
    }
}

/// The device fields a patch changes, as `device.<field>` paths to their new values
/// ([`Device::merge`](sessanger_core::Device::merge): the fields it has, the others kept).
fn device_changes(device: Option<&Device>) -> Document {
    device
        .map(device_document)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (format!("{}.{name}", field::DEVICE), value))
        .collect()
}

/// `last_access_at = now`, `expires_at = min(now + idle_ttl_ms, absolute_expires_at)`, as
/// [`Session::touch`](sessanger_core::Session::touch) computes them, for a pipeline `$set`.
fn touch_fields(now: Timestamp) -> Document {
    doc! {
        field::LAST_ACCESS_AT: date(now),
        field::EXPIRES_AT: {
            "$min": [
                { "$add": [date(now), format!("${}", field::IDLE_TTL_MS)] },
                format!("${}", field::ABSOLUTE_EXPIRES_AT),
            ]
        },
    }
}

/// The update of `touch`: renews the idle deadline, never past the absolute one.
pub(crate) fn touch_pipeline(now: Timestamp) -> Vec<Document> {
    vec![doc! { "$set": touch_fields(now) }]
}

/// The update of `replace`: attributes whole (and the device, if named), version plus one. A
/// new absolute deadline caps the idle deadline, which depends on stored fields: that takes a
/// pipeline.
pub(crate) fn replace_modifications(
    attributes: &Attributes,
    device: Option<&Device>,
    absolute_expires_at: Option<Timestamp>,
) -> UpdateModifications {
    let mut values = doc! { field::ATTRIBUTES: object_to_document(attributes) };
    if let Some(device) = device {
        values.insert(field::DEVICE, device_document(device));
    }
    let Some(at) = absolute_expires_at else {
        return UpdateModifications::Document(doc! { "$set": values, "$inc": { field::VERSION: 1_i64 } });
    };
    // In a pipeline a value is an expression: `$literal` keeps a stored string `"$x"` from
    // being read as a field path.
    let mut set: Document =
        values.into_iter().map(|(name, value)| (name, Bson::from(doc! { "$literal": value }))).collect();
    set.insert(field::VERSION, doc! { "$add": [format!("${}", field::VERSION), 1_i64] });
    set.insert(field::ABSOLUTE_EXPIRES_AT, date(at));
    set.insert(
        field::EXPIRES_AT,
        doc! {
            "$min": [
                { "$add": [format!("${}", field::LAST_ACCESS_AT), format!("${}", field::IDLE_TTL_MS)] },
                date(at),
            ]
        },
    );
    UpdateModifications::Pipeline(vec![doc! { "$set": set }])
}

/// The per-user lease lock of a server without transactions: free, or held by a lease that
/// ran out before `now`.
pub(crate) fn lock_free(user: &UserId, now: Timestamp) -> Document {
    doc! {
        "_id": user.as_ref(),
        "$or": [{ "lock_until": { "$exists": false } }, { "lock_until": { "$lte": date(now) } }],
    }
}

/// Takes the lease at `now`: `token` holds it until `until`. `seen_at` lets the users
/// collection's TTL index drop the document once the user has not created a session for a day.
pub(crate) fn lock_take(token: &str, now: Timestamp, until: Timestamp) -> Document {
    doc! { "$set": { "lock": token, "lock_until": date(until), USER_SEEN_AT: date(now) } }
}

/// The lock, if `token` still holds it.
pub(crate) fn lock_held(user: &UserId, token: &str) -> Document {
    doc! { "_id": user.as_ref(), "lock": token }
}

/// Releases the lease.
pub(crate) fn lock_release() -> Document {
    doc! { "$unset": { "lock": "", "lock_until": "" } }
}

/// In a transaction, a write to the user's guard document: two transactions creating
/// sessions for one user both write it, so one of them fails with a write conflict and is
/// retried, seeing the other's session. Without it, snapshot isolation would let both count
/// the same sessions and both insert (write skew).
pub(crate) fn guard_update(now: Timestamp) -> Document {
    doc! { "$inc": { "creates": 1_i64 }, "$set": { USER_SEEN_AT: date(now) } }
}

/// When a user document was last written; its TTL index drops idle ones.
pub(crate) const USER_SEEN_AT: &str = "seen_at";

/// Keys of the TTL index of the users collection.
pub(crate) fn user_seen_index_keys() -> Document {
    doc! { USER_SEEN_AT: 1 }
}

fn version(v: Version) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use mongodb::bson::DateTime;
    use serde_json::json;

    use super::*;

    fn id() -> SessionId {
        "AAbcdefghijklmnopqrstuvwxyz0123456789-_ABCD".parse().unwrap()
    }

    const NOW: Timestamp = Timestamp::from_millis(1_000);

    #[test]
    fn a_user_prefix_is_an_anchored_pattern_matching_its_characters_literally() {
        let pipeline = users_starting_with("a.b(c)*$\\", NonZeroU32::new(5).unwrap(), NOW);
        let matched = pipeline[0].get_document("$match").unwrap();
        let pattern = matched.get_document(field::USER_ID).unwrap().get_str("$regex").unwrap();
        assert_eq!(pattern, r"^a\.b\(c\)\*\$\\");
        assert_eq!(
            matched.get_document(field::EXPIRES_AT).unwrap().get("$gt"),
            Some(&Bson::DateTime(DateTime::from_millis(1_000)))
        );
        assert_eq!(pipeline[3], doc! { "$limit": 5_i64 });
    }

    #[test]
    fn read_filters_compare_expires_at_with_the_callers_now() {
        let now = DateTime::from_millis(1_000);
        assert_eq!(live_by_id(&id(), NOW), doc! { "_id": id().as_ref(), "expires_at": { "$gt": now } });
        assert_eq!(dead_by_id(&id(), NOW), doc! { "_id": id().as_ref(), "expires_at": { "$lte": now } });
        let bob: UserId = "bob".parse().unwrap();
        assert_eq!(user_live(&bob, NOW), doc! { "user_id": "bob", "expires_at": { "$gt": now } });
        assert_eq!(all_live(NOW), doc! { "expires_at": { "$gt": now } });
        assert_eq!(all_dead(NOW), doc! { "expires_at": { "$lte": now } });
        assert_eq!(user_order(), doc! { "created_at": 1, "_id": 1 });
    }

    #[test]
    fn a_patch_without_touch_is_one_operator_update_on_escaped_attribute_paths() {
        let patch =
            Patch::default().set("theme", json!({"dark": true})).set("a.b", json!("$x")).remove("drop").incr("n", 2);
        let changes = AttributeChanges::of(&patch).unwrap();
        let device = Device { device_id: Some("phone".into()), ..Device::default() };
        assert_eq!(
            patch_update(&changes, Some(&device), 1),
            doc! {
                "$set": { "device.device_id": "phone", "attributes.a%2Eb": "$x", "attributes.theme": { "dark": true } },
                "$unset": { "attributes.drop": "" },
                "$inc": { "version": 1_i64, "attributes.n": 2_i64 },
            }
        );
    }

    #[test]
    fn an_empty_patch_only_counts_a_write() {
        let changes = AttributeChanges::of(&Patch::default()).unwrap();
        assert_eq!(patch_update(&changes, None, 1), doc! { "$inc": { "version": 1_i64 } });
    }

    #[test]
    fn a_key_named_twice_keeps_the_effect_apply_gives_it() {
        let mut patch = Patch::default().set("k", json!(1)).remove("k").remove("r").incr("k", 5);
        patch.set.insert("s".into(), json!("x"));
        patch.remove.push("s".into());
        let changes = AttributeChanges::of(&patch).unwrap();
        assert_eq!(changes.set, vec![("s".to_owned(), Bson::String("x".into()))]);
        assert_eq!(changes.unset, vec!["r".to_owned()]);
        assert_eq!(changes.increments, vec![("k".to_owned(), 5)]);
    }

    #[test]
    fn an_increment_by_a_non_integer_is_refused_before_any_command() {
        let mut patch = Patch::default();
        patch.incr.insert("n".into(), json!(1.5));
        assert_eq!(AttributeChanges::of(&patch), Err(PatchError::NotAnInteger("n".into())));
    }

    #[test]
    fn the_patch_filter_checks_version_and_that_increments_hit_integers_in_range() {
        let filter = patch_filter(&id(), &[("n".into(), 2), ("m.x".into(), -3)], Some(Version(4)), NOW);
        assert_eq!(
            filter,
            doc! {
                "_id": id().as_ref(),
                "expires_at": { "$gt": DateTime::from_millis(1_000) },
                "version": 4_i64,
                "$expr": { "$and": [
                    { "$or": [
                        { "$eq": [{ "$type": "$attributes.n" }, "missing"] },
                        { "$and": [
                            { "$in": [{ "$type": "$attributes.n" }, ["int", "long"]] },
                            { "$lte": ["$attributes.n", i64::MAX - 2] },
                        ] },
                    ] },
                    { "$or": [
                        { "$eq": [{ "$type": "$attributes.m%2Ex" }, "missing"] },
                        { "$and": [
                            { "$in": [{ "$type": "$attributes.m%2Ex" }, ["int", "long"]] },
                            { "$gte": ["$attributes.m%2Ex", i64::MIN + 3] },
                        ] },
                    ] },
                ] },
            }
        );
        assert_eq!(patch_filter(&id(), &[], None, NOW), live_by_id(&id(), NOW));
    }

    #[test]
    fn a_patch_with_touch_is_one_pipeline_with_literal_values() {
        let patch = Patch::default().set("s", json!("$notAPath")).remove("r").incr("n", 1);
        let changes = AttributeChanges::of(&patch).unwrap();
        let now = DateTime::from_millis(1_000);
        assert_eq!(
            patch_with_touch_pipeline(&changes, None, 1, NOW),
            vec![
                doc! { "$set": {
                    "attributes.s": { "$literal": "$notAPath" },
                    "attributes.n": { "$add": [{ "$ifNull": ["$attributes.n", 0_i64] }, 1_i64] },
                    "version": { "$add": ["$version", 1_i64] },
                    "last_access_at": now,
                    "expires_at": { "$min": [{ "$add": [now, "$idle_ttl_ms"] }, "$absolute_expires_at"] },
                } },
                doc! { "$unset": ["attributes.r"] },
            ]
        );
        assert!(matches!(
            patch_modifications(&changes, None, true, NonZeroU32::MIN, NOW),
            UpdateModifications::Pipeline(_)
        ));
        assert!(matches!(
            patch_modifications(&changes, None, false, NonZeroU32::MIN, NOW),
            UpdateModifications::Document(_)
        ));
    }

    #[test]
    fn touch_renews_the_deadline_from_stored_ttl_and_absolute_deadline() {
        let now = DateTime::from_millis(1_000);
        assert_eq!(
            touch_pipeline(NOW),
            vec![doc! { "$set": {
                "last_access_at": now,
                "expires_at": { "$min": [{ "$add": [now, "$idle_ttl_ms"] }, "$absolute_expires_at"] },
            } }]
        );
    }

    #[test]
    fn replace_sets_attributes_and_device_whole_and_counts_a_write() {
        let mut attributes = Attributes::new();
        attributes.insert("cart.items".into(), json!([1]));
        let device = Device { user_agent: Some("curl".into()), ..Device::default() };
        let UpdateModifications::Document(update) = replace_modifications(&attributes, Some(&device), None) else {
            panic!("without a deadline, a plain update");
        };
        assert_eq!(
            update,
            doc! {
                "$set": { "attributes": { "cart%2Eitems": [1_i64] }, "device": { "user_agent": "curl" } },
                "$inc": { "version": 1_i64 },
            }
        );
        let at = DateTime::from_millis(9_000);
        let UpdateModifications::Pipeline(pipeline) =
            replace_modifications(&attributes, Some(&device), Some(Timestamp::from_millis(9_000)))
        else {
            panic!("a new deadline reads stored fields: a pipeline");
        };
        assert_eq!(
            pipeline,
            vec![doc! { "$set": {
                "attributes": { "$literal": { "cart%2Eitems": [1_i64] } },
                "device": { "$literal": { "user_agent": "curl" } },
                "version": { "$add": ["$version", 1_i64] },
                "absolute_expires_at": at,
                "expires_at": { "$min": [{ "$add": ["$last_access_at", "$idle_ttl_ms"] }, at] },
            } }]
        );
        assert_eq!(
            live_at_version(&id(), Version(3), NOW),
            doc! { "_id": id().as_ref(), "expires_at": { "$gt": DateTime::from_millis(1_000) }, "version": 3_i64 }
        );
    }

    #[test]
    fn the_user_lock_is_taken_only_when_free_or_its_lease_ran_out() {
        let bob: UserId = "bob".parse().unwrap();
        assert_eq!(
            lock_free(&bob, NOW),
            doc! {
                "_id": "bob",
                "$or": [{ "lock_until": { "$exists": false } }, { "lock_until": { "$lte": DateTime::from_millis(1_000) } }],
            }
        );
        assert_eq!(
            lock_take("t", NOW, Timestamp::from_millis(6_000)),
            doc! { "$set": {
                "lock": "t",
                "lock_until": DateTime::from_millis(6_000),
                "seen_at": DateTime::from_millis(1_000),
            } }
        );
        assert_eq!(lock_held(&bob, "t"), doc! { "_id": "bob", "lock": "t" });
        assert_eq!(lock_release(), doc! { "$unset": { "lock": "", "lock_until": "" } });
    }

    #[test]
    fn indexes_cover_expiry_and_each_users_sessions_in_order() {
        assert_eq!(expiry_index_keys(), doc! { "expires_at": 1 });
        assert_eq!(user_index_keys(), doc! { "user_id": 1, "created_at": 1, "_id": 1 });
        assert_eq!(
            guard_update(NOW),
            doc! { "$inc": { "creates": 1_i64 }, "$set": { "seen_at": DateTime::from_millis(1_000) } }
        );
        assert_eq!(user_seen_index_keys(), doc! { "seen_at": 1 });
    }
}
