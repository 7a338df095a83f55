//! The live page: the latest events of the store's log, whichever node made the change, read
//! again every few seconds (the page asks its browser to reload it; no script needed); and a
//! session's history, from the same log.

use axum::response::Response;
use sessanger_core::{EventId, EventLog, EventRecord, SessionEvent, SessionId, StoreError};

use crate::{operator::Operator, pages};

/// How many of the latest events the page shows.
pub(crate) const SHOWN: usize = 100;

pub(crate) async fn live(operator: Operator) -> Response {
    let events = match operator.manager.event_log() {
        None => None,
        Some(log) => match latest(log, SHOWN).await {
            Ok((mut events, _)) => {
                events.reverse();
                Some(events)
            }
            Err(e) => return pages::unavailable(&e),
        },
    };
    pages::live(&operator, events.as_deref())
}

/// How many of the latest events a session's page looks through for its history.
pub(crate) const HISTORY_SEARCHED: usize = 10_000;

/// The events of session `id` among the latest [`HISTORY_SEARCHED`] of `log`, oldest first,
/// including those of the ids it had before a regeneration; and whether the log holds older
/// events, not looked through.
pub(crate) async fn history(log: &dyn EventLog, id: &SessionId) -> Result<(Vec<EventRecord>, bool), StoreError> {
    let (events, older) = latest(log, HISTORY_SEARCHED).await?;
    let mut ids = vec![id.clone()];
    let mut history: Vec<EventRecord> = Vec::new();
    // Newest first, so a regeneration is met before the events of the id it replaced.
    for record in events.into_iter().rev() {
        if !ids.contains(record.event.session_id()) {
            continue;
        }
        if let SessionEvent::Regenerated { old_session_id, .. } = &record.event {
            ids.push(old_session_id.clone());
        }
        history.push(record);
    }
    history.reverse();
    Ok((history, older))
}

/// The latest `most` events of `log`, oldest first, in one bounded read; and whether the log
/// holds older ones.
pub(crate) async fn latest(log: &dyn EventLog, most: usize) -> Result<(Vec<EventRecord>, bool), StoreError> {
    let Some(EventId(last)) = log.last_event_id().await? else { return Ok((Vec::new(), false)) };
    let after = last.checked_sub(most as u64).map(EventId);
    Ok((log.read_events(after, most).await?, after.is_some()))
}
