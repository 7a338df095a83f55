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
        Some(log) => match latest(log).await {
            Ok(events) => Some(events),
            Err(e) => return pages::unavailable(&e),
        },
    };
    pages::live(&operator, events.as_deref())
}

/// The latest [`SHOWN`] events of `log`, newest first.
async fn latest(log: &dyn EventLog) -> Result<Vec<EventRecord>, StoreError> {
    let Some(EventId(last)) = log.last_event_id().await? else { return Ok(Vec::new()) };
    let after = last.checked_sub(SHOWN as u64).map(EventId);
    let mut events = log.read_events(after, SHOWN).await?;
    events.reverse();
    Ok(events)
}
