//! The live page: the latest events of the store's log, whichever node made the change, read
//! again every few seconds (the page asks its browser to reload it; no script needed).

use axum::response::Response;
use sessanger_core::{EventId, EventLog, EventRecord, StoreError};

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

/// The latest `most` events of `log`, oldest first, in one bounded read; and whether the log
/// holds older ones.
pub(crate) async fn latest(log: &dyn EventLog, most: usize) -> Result<(Vec<EventRecord>, bool), StoreError> {
    let Some(EventId(last)) = log.last_event_id().await? else { return Ok((Vec::new(), false)) };
    let after = last.checked_sub(most as u64).map(EventId);
    Ok((log.read_events(after, most).await?, after.is_some()))
}
