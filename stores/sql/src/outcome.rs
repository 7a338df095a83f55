//! The contract's decisions, the same for both dialects: what a limited create may do with
//! the user's sessions, when a create may reuse a dead session's id, why a write matched no
//! row, and which increments a statement can apply. Each dialect runs its own statements
//! and hands what they returned to these functions.

use std::future::Future;

use sessanger_core::{
    Created, Patch, PatchOptions, Patched, Replaced, Session, SessionCap, SessionId, StoreError, Timestamp, UserLimit,
};
use sqlx::{Database, Transaction};

use crate::error::{is_unique_violation, store_error};

/// What an `UPDATE` of one session left: whether it matched the row, and the live session
/// after it.
#[derive(Debug)]
pub(crate) struct Updated {
    pub matched: bool,
    pub session: Option<Session>,
}

/// `create` without a limit: `insert` once. Only if the id is taken, `delete_dead` deletes
/// a dead session with that id (returning how many rows it deleted) and the insert is tried
/// again; a live session is never touched.
pub(crate) async fn insert_or_reuse_dead<I, D>(
    insert: impl Fn() -> I,
    delete_dead: impl Fn() -> D,
) -> Result<Created, StoreError>
where
    I: Future<Output = Result<u64, sqlx::Error>>,
    D: Future<Output = Result<u64, sqlx::Error>>,
{
    for _ in 0..2 {
        match insert().await {
            Ok(_) => return Ok(Created::Created { evicted: Vec::new() }),
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(store_error(e)),
        }
        if delete_dead().await.map_err(store_error)? == 0 {
            return Ok(Created::IdTaken);
        }
    }
    Ok(Created::IdTaken)
}

/// Whether a create of `id` under `limit` may go ahead, from the user's rows (`id`,
/// `expires_at`) oldest first, read under the user's lock: `Ok` with the live sessions to
/// evict, or `Err` with the refusal ([`Created::IdTaken`] or [`Created::LimitReached`]).
pub(crate) fn admit(
    rows: &[(String, i64)],
    id: &str,
    limit: UserLimit,
    now: Timestamp,
) -> Result<Vec<SessionId>, Created> {
    let live: Vec<&str> =
        rows.iter().filter(|(_, expires_at)| *expires_at > now.as_millis()).map(|(id, _)| id.as_str()).collect();
    if live.contains(&id) {
        return Err(Created::IdTaken);
    }
    let excess = limit.admit(live.len()).ok_or(Created::LimitReached)?;
    Ok(live.iter().take(excess).filter_map(|id| id.parse().ok()).collect())
}

/// Ends a limited create's transaction after its `INSERT`: commits if the row went in; if the
/// id was taken after all, rolls back (by dropping the transaction) and says so.
pub(crate) async fn finish_create<DB: Database>(
    tx: Transaction<'_, DB>,
    inserted: Result<DB::QueryResult, sqlx::Error>,
    evicted: Vec<SessionId>,
) -> Result<Created, StoreError> {
    match inserted {
        Ok(_) => tx.commit().await.map(|()| Created::Created { evicted }).map_err(store_error),
        Err(e) if is_unique_violation(&e) => Ok(Created::IdTaken),
        Err(e) => Err(store_error(e)),
    }
}

/// The increments of a patch as integers, in the patch's order; `None` if one is not an
/// integer: then no statement can apply the patch.
pub(crate) fn integer_increments(patch: &Patch) -> Option<Vec<(&str, i64)>> {
    patch.incr.iter().map(|(key, by)| Some((key.as_str(), by.as_i64()?))).collect()
}

/// How much room a patch that adds needs, as the in-place `UPDATE` checks it before writing:
/// the stored attributes' JSON text as the database prints it (never shorter than compact
/// JSON) plus `added_bytes` must fit in the cap, and the stored count plus `new_keys` too.
/// A bound, not the exact result: a patch that fails it may still fit, and is then decided
/// exactly under the row lock ([`settle_patch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Headroom {
    pub added_bytes: i64,
    pub max_bytes: i64,
    pub new_keys: i64,
    pub max_attributes: i64,
}

impl Headroom {
    /// The room `patch` needs under `cap`; `None` when nothing is checked (no cap, or a patch
    /// that only removes).
    pub(crate) fn of(patch: &Patch, cap: Option<SessionCap>) -> Option<Headroom> {
        let cap = cap.filter(|_| patch.adds())?;
        // `"key":value,` in compact JSON: the key quoted and escaped, a colon, a comma.
        let member = |key: &str, value_len: usize| encoded_len(key) + 2 + value_len;
        let sets = patch.set.iter().map(|(key, value)| member(key, encoded_len(value)));
        // A 64-bit integer is at most 20 characters (`-9223372036854775808`).
        let increments = patch.incr.keys().map(|key| member(key, 20));
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Some(Headroom {
            added_bytes: count(sets.chain(increments).sum()),
            max_bytes: count(cap.max_bytes),
            new_keys: count(patch.set.len() + patch.incr.len()),
            max_attributes: count(cap.max_attributes),
        })
    }
}

fn encoded_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX / 4, |v| v.len())
}

/// Applies `patch` as `options` say. `write` runs the dialect's one in-place `UPDATE` with
/// the patch's integer increments (and the [`Headroom`] check); when it matches no row, the
/// session as it is now says why ([`Session::patched`]). If nothing forbids the patch after
/// all — it lost a race with another write, or it fits the cap although the bound said it
/// might not — `locked` decides it exactly: read under the row's lock, patched, written, in
/// one transaction. An increment by a non-integer runs nothing: `load` reads the session to
/// say why.
pub(crate) async fn settle_patch<'p, L, W, Fut, K, KFut>(
    patch: &'p Patch,
    options: PatchOptions<'_>,
    now: Timestamp,
    load: impl FnOnce() -> L,
    write: W,
    locked: K,
) -> Result<Patched, StoreError>
where
    L: Future<Output = Result<Option<Session>, StoreError>>,
    W: FnOnce(Vec<(&'p str, i64)>) -> Fut,
    Fut: Future<Output = Result<Updated, StoreError>>,
    K: FnOnce() -> KFut,
    KFut: Future<Output = Result<Patched, StoreError>>,
{
    let Some(increments) = integer_increments(patch) else {
        return Ok(explain_patch(load().await?, patch, options, now).unwrap_or(Patched::NotFound));
    };
    match write(increments).await? {
        Updated { matched: true, session: Some(session) } => Ok(Patched::Applied(session)),
        Updated { matched: true, session: None } => Ok(Patched::NotFound),
        Updated { matched: false, session } => match explain_patch(session, patch, options, now) {
            Some(outcome) => Ok(outcome),
            None => locked().await,
        },
    }
}

/// Why a patch matched no row, from the session as it is now; `None` if nothing forbids it.
pub(crate) fn explain_patch(
    current: Option<Session>,
    patch: &Patch,
    options: PatchOptions<'_>,
    now: Timestamp,
) -> Option<Patched> {
    let Some(mut session) = current else { return Some(Patched::NotFound) };
    match session.patched(patch, options, now) {
        Patched::Applied(_) => None,
        refused => Some(refused),
    }
}

/// What a compare-and-set `replace` did, from its `UPDATE`.
pub(crate) fn replaced(updated: Updated) -> Replaced {
    match updated {
        Updated { matched: true, session: Some(session) } => Replaced::Applied(session),
        Updated { session: None, .. } => Replaced::NotFound,
        Updated { matched: false, session: Some(current) } => Replaced::VersionMismatch(current.version),
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use serde_json::json;
    use sessanger_core::{PatchError, Version};

    use super::*;
    use crate::row::tests::session;

    #[test]
    fn a_failed_patch_is_explained_from_the_current_session() {
        let (patch, now) = (Patch::default().incr("name", 1), Timestamp::from_millis(0));
        let at = |v| PatchOptions::new().with_expected(Some(Version(v)));
        assert_eq!(explain_patch(None, &patch, PatchOptions::new(), now), Some(Patched::NotFound));
        let mut s = session();
        assert_eq!(explain_patch(Some(s.clone()), &patch, at(7), now), Some(Patched::VersionMismatch(Version(1))));
        assert_eq!(explain_patch(Some(s.clone()), &patch, PatchOptions::new(), now), None, "nothing forbids it");
        let tiny = PatchOptions::new().with_cap(Some(SessionCap { max_attributes: 10, max_bytes: 4 }));
        assert_eq!(
            explain_patch(Some(s.clone()), &patch, tiny, now),
            Some(Patched::Rejected(PatchError::SessionTooLarge(4)))
        );
        s.attributes.insert("name".into(), json!("bob"));
        assert!(matches!(explain_patch(Some(s), &patch, PatchOptions::new(), now), Some(Patched::Rejected(_))));
    }

    #[test]
    fn the_headroom_bounds_what_a_patch_adds_in_compact_json() {
        let cap = Some(SessionCap { max_attributes: 10, max_bytes: 100 });
        let patch = Patch::default().set("a\"b", json!([1, 2])).incr("n", 1).remove("gone");
        // `"a\"b":[1,2],` is 13 bytes, `"n":<20 digits>,` 25.
        let room = Headroom::of(&patch, cap).unwrap();
        assert_eq!((room.added_bytes, room.new_keys, room.max_bytes, room.max_attributes), (38, 2, 100, 10));
        assert_eq!(Headroom::of(&Patch::default().remove("gone"), cap), None, "a removal is never refused");
        assert_eq!(Headroom::of(&patch, None), None);
    }

    #[test]
    fn an_increment_by_a_non_integer_builds_no_statement() {
        let mut patch = Patch::default().incr("m", 2);
        assert_eq!(integer_increments(&patch), Some(vec![("m", 2)]));
        patch.incr.insert("n".into(), json!(1.5));
        assert_eq!(integer_increments(&patch), None);
    }

    #[test]
    fn a_limited_create_counts_only_live_sessions_and_evicts_the_oldest() {
        let s = session();
        let (a, b) = (SessionId::generate_for(&s.user_id), SessionId::generate_for(&s.user_id));
        let rows = vec![("dead".to_owned(), 0), (a.to_string(), 10), (b.to_string(), 10)];
        let two = NonZeroU32::new(2).unwrap();
        let now = Timestamp::from_millis(5);
        assert_eq!(admit(&rows, s.id.as_ref(), UserLimit::EvictOldest(two), now), Ok(vec![a.clone()]));
        assert_eq!(admit(&rows, s.id.as_ref(), UserLimit::Refuse(two), now), Err(Created::LimitReached));
        assert_eq!(admit(&rows, a.as_ref(), UserLimit::Refuse(two), now), Err(Created::IdTaken));
    }
}
