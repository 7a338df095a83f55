//! The contract's decisions, the same for both dialects: what a limited create may do with
//! the user's sessions, when a create may reuse a dead session's id, why a write matched no
//! row, and which increments a statement can apply. Each dialect runs its own statements
//! and hands what they returned to these functions.

use std::future::Future;

use sessanger_core::{
    Created, Patch, Patched, Replaced, Session, SessionId, StoreError, Timestamp, UserLimit, Version,
};
use sqlx::{Database, Transaction};

use crate::error::{ATTEMPTS, is_unique_violation, store_error};

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

/// Applies `patch` where the version is `expected` (if any): `write` runs one `UPDATE` with
/// the patch's increments, again until it applies or the session as it is now says why it
/// cannot (a write that matched nothing although nothing forbids it lost a race with a
/// concurrent write). An increment by a non-integer runs nothing: `load` reads the session
/// to say why.
pub(crate) async fn settle_patch<'p, L, W, Fut>(
    patch: &'p Patch,
    expected: Option<Version>,
    load: impl FnOnce() -> L,
    mut write: W,
) -> Result<Patched, StoreError>
where
    L: Future<Output = Result<Option<Session>, StoreError>>,
    W: FnMut(Vec<(&'p str, i64)>) -> Fut,
    Fut: Future<Output = Result<Updated, StoreError>>,
{
    let Some(increments) = integer_increments(patch) else {
        return Ok(explain_patch(load().await?, patch, expected).unwrap_or(Patched::NotFound));
    };
    for _ in 0..ATTEMPTS {
        match write(increments.clone()).await? {
            Updated { matched: true, session: Some(session) } => return Ok(Patched::Applied(session)),
            Updated { matched: true, session: None } => return Ok(Patched::NotFound),
            Updated { matched: false, session } => {
                if let Some(outcome) = explain_patch(session, patch, expected) {
                    return Ok(outcome);
                }
            }
        }
    }
    Err(StoreError::Other("a patch kept racing with concurrent writes".into()))
}

/// Why a patch matched no row, from the session as it is now; `None` if nothing forbids it
/// any more (a concurrent write changed the session in between).
pub(crate) fn explain_patch(current: Option<Session>, patch: &Patch, expected: Option<Version>) -> Option<Patched> {
    let Some(mut session) = current else { return Some(Patched::NotFound) };
    if expected.is_some_and(|v| v != session.version) {
        return Some(Patched::VersionMismatch(session.version));
    }
    session.apply(patch).err().map(Patched::Rejected)
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

    use super::*;
    use crate::row::tests::session;

    #[test]
    fn a_failed_patch_is_explained_from_the_current_session() {
        let patch = Patch::default().incr("name", 1);
        assert_eq!(explain_patch(None, &patch, None), Some(Patched::NotFound));
        let mut s = session();
        assert_eq!(
            explain_patch(Some(s.clone()), &patch, Some(Version(7))),
            Some(Patched::VersionMismatch(Version(1)))
        );
        assert_eq!(explain_patch(Some(s.clone()), &patch, None), None, "nothing forbids it: try again");
        s.attributes.insert("name".into(), json!("bob"));
        assert!(matches!(explain_patch(Some(s), &patch, None), Some(Patched::Rejected(_))));
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
