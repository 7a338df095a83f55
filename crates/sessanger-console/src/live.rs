//! The live page: the latest events of the store's log, whichever node made the change, and
//! then each new one as it is recorded (Server-Sent Events the page's script adds on top;
//! without script, the page reloads every few seconds); and a session's history, from the same
//! log.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use sessanger_core::{EventId, EventLog, EventRecord, LogFollower, SessionEvent, SessionId, StoreError};
use tokio::time::Instant;

use crate::{Console, operator::Operator, pages};

/// How many of the latest events the page shows.
pub(crate) const SHOWN: usize = 100;

pub(crate) async fn live(operator: Operator) -> Response {
    let Some(log) = operator.manager.event_log() else { return pages::live(&operator, None) };
    // The stream starts after the newest event shown, or after the last recorded if none is.
    let shown = match latest(log, SHOWN).await {
        Ok((events, _)) => events,
        Err(e) => return pages::unavailable(&e),
    };
    let after = match shown.last() {
        Some(newest) => Some(newest.id),
        None => match log.last_event_id().await {
            Ok(last) => last,
            Err(e) => return pages::unavailable(&e),
        },
    };
    let newest_first: Vec<EventRecord> = shown.into_iter().rev().collect();
    pages::live(&operator, Some((&newest_first, after)))
}

/// The longest one stream of the live page lasts. The browser opens the next at once, after
/// the last event it received (`EventSource` does, with `Last-Event-ID`), and that request
/// checks the operator's session and service again: a signed-out or removed operator's page
/// stops within this time.
const STREAM_LIFETIME: Duration = Duration::from_secs(60);

/// The most events one message batch reads from the log.
const BATCH: usize = 256;

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    /// Stream the events after this one (`Last-Event-ID` wins over it).
    after: Option<u64>,
}

/// One event as the live page's script adds it: what a row of the page shows.
#[derive(Debug, Serialize)]
struct Row<'a> {
    id: u64,
    at: String,
    kind: &'a str,
    user: &'a str,
    session: String,
    by: Option<&'a str>,
    details: String,
}

/// The events recorded after `after`, as Server-Sent Events (`event: row`, the id as `id`),
/// until [`STREAM_LIFETIME`] has passed or the server stops.
pub(crate) async fn stream(
    operator: Operator,
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    let resumed = headers.get("last-event-id").and_then(|id| id.to_str().ok()?.parse::<EventId>().ok());
    let Some(follower) = LogFollower::new(operator.manager.clone(), resumed.or(query.after.map(EventId))) else {
        return pages::refused(StatusCode::NOT_FOUND, "This store keeps no event log.");
    };
    let deadline = Instant::now() + STREAM_LIFETIME;
    let batches = stream::unfold((follower, console.stopping), move |(mut follower, mut stopping)| async move {
        let batch = tokio::select! {
            // A failed read ends this stream; the browser opens the next one.
            batch = follower.next(BATCH) => batch.ok(),
            _ = stopping.wait_for(|stopping| *stopping) => None,
            () = tokio::time::sleep_until(deadline) => None,
        };
        batch.map(|batch| (batch, (follower, stopping)))
    });
    let messages = batches.flat_map(|batch| stream::iter(batch.iter().map(message).collect::<Vec<_>>()));
    Sse::new(messages.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::default()).into_response()
}

fn message(record: &EventRecord) -> Event {
    let row = Row {
        id: record.id.0,
        at: record.at.to_string(),
        kind: record.event.kind(),
        user: record.event.user_id().as_ref(),
        session: record.event.session_id().fingerprint(),
        by: record.service.as_ref().map(AsRef::as_ref),
        details: pages::details(&record.event),
    };
    let data = serde_json::to_string(&row).expect("a row always serializes");
    Event::default().id(record.id.to_string()).event("row").data(data)
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
