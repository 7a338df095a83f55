//! `GET /v1/events`: the store's event log as Server-Sent Events.
//!
//! A stream starts after the event the client names (`Last-Event-ID`, which browsers send on
//! their own when they reconnect, or `?after=`), else with what happens next; it reads the log
//! from there, so a consumer that reconnects misses nothing the store still keeps, and learns
//! (an `event: lost` message) when trimming dropped some. New events wake the stream at once
//! when they happen in this process, and within a second when another process sharing the
//! store records them ([`LogFollower`]). Comment lines every [`EventOptions::heartbeat`] keep
//! proxies, and the server's own idle timeout, from closing a quiet stream; the stream ends
//! when the server stops.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::{Query, State, rejection::QueryRejection},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;
use sessanger_core::{
    EventFilter, EventId, EventRecord, LogFollower, Resume,
    wire::{ErrorBody, EventBody},
};
use tokio::sync::watch;

use crate::{
    AppState,
    auth::{Caller, Read},
    error::ApiError,
};

/// The most events read from the log at once.
const BATCH: usize = 256;

/// How `GET /v1/events` streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventOptions {
    /// Whether events carry session ids (else only their fingerprints). Default true.
    pub session_ids: bool,
    /// How often a quiet stream sends a comment line. Default 15 s.
    pub heartbeat: Duration,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions { session_ids: true, heartbeat: Duration::from_secs(15) }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/events", get(events))
}

/// The query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Comma-separated event types to keep.
    types: Option<String>,
    /// Keep only this user's events.
    user_id: Option<String>,
    /// Start after this event id (`0`: from the oldest kept).
    after: Option<String>,
}

fn filter(query: &EventsQuery) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter::default();
    if let Some(types) = &query.types {
        filter = filter.with_types(types).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    }
    if let Some(user) = &query.user_id {
        filter.user = Some(user.parse().map_err(|e| ApiError::InvalidRequest(format!("user_id: {e}")))?);
    }
    Ok(filter)
}

/// Stream the events the store records, as Server-Sent Events.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(
        ("types" = Option<String>, Query, description = "Comma-separated types to keep: created, refreshed, attributes_changed, regenerated, deleted, expired"),
        ("user_id" = Option<String>, Query, description = "Keep only this user's events"),
        ("after" = Option<String>, Query, description = "Start after this event id (0: from the oldest kept); `Last-Event-ID` wins over it. Absent: only what happens next"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: resume after it"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: each message has the event id as `id`, its type as `event` and an EventBody as `data`; `event: lost` (data `{\"after\", \"trimmed_through\"}`) says trimming dropped events the client had not seen", body = EventBody, content_type = "text/event-stream"),
        (status = 400, description = "`invalid_request`: an unknown type, a malformed user id or event id", body = ErrorBody),
        (status = 501, description = "`events_unavailable`: this store keeps no event log yet", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    caller: Caller<Read>,
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query?;
    let manager = caller.manager;
    let log = manager.event_log().ok_or(ApiError::EventsUnavailable)?;
    let filter = filter(&query)?;
    let resume = headers.get("last-event-id").map(|value| value.to_str().unwrap_or("!"));
    let after = match resume.or(query.after.as_deref()) {
        Some(id) => Some(id.parse::<EventId>().map_err(|e| ApiError::InvalidRequest(format!("event id: {e}")))?),
        None => None,
    };
    let Resume { cursor, lost } = Resume::from(log, after).await?;
    let lost = lost.map(|(after, trimmed)| lost_message(after, trimmed));
    let options = state.options.events;
    let follower = LogFollower::new(manager, cursor).ok_or(ApiError::EventsUnavailable)?;
    let reader = Reader { follower, filter, closing: state.closing.subscribe(), session_ids: options.session_ids };
    let events = stream::unfold(reader, Reader::next_batch).flat_map(stream::iter);
    let stream = stream::iter(lost).chain(events).map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(options.heartbeat)))
}

fn lost_message(after: EventId, trimmed: EventId) -> Event {
    let data = serde_json::json!({"after": after, "trimmed_through": trimmed});
    Event::default().event("lost").data(data.to_string())
}

/// One stream's place in the log, what it keeps, and what ends it.
struct Reader {
    follower: LogFollower,
    filter: EventFilter,
    session_ids: bool,
    closing: watch::Receiver<bool>,
}

impl Reader {
    /// The next messages to send: the kept events of the next batch of the log, waiting for
    /// one if there is none; `None` ends the stream (the server stops, or the store failed).
    async fn next_batch(mut self) -> Option<(Vec<Event>, Reader)> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            let batch = tokio::select! {
                batch = self.follower.next(BATCH) => batch,
                // The loop's first line decides; a dropped sender means the server is gone.
                changed = self.closing.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    continue;
                }
            };
            match batch {
                Ok(batch) => {
                    let events: Vec<Event> =
                        batch.iter().filter(|r| self.filter.keeps(r)).map(|r| self.message(r)).collect();
                    if !events.is_empty() {
                        return Some((events, self));
                    }
                }
                Err(error) => {
                    // The client reconnects with its Last-Event-ID and resumes.
                    tracing::warn!(%error, "reading the event log failed; ending the stream");
                    return None;
                }
            }
        }
    }

    fn message(&self, record: &EventRecord) -> Event {
        let body = EventBody::new(record, self.session_ids);
        let data = serde_json::to_string(&body).expect("event bodies always serialize");
        Event::default().id(record.id.to_string()).event(record.event.kind()).data(data)
    }
}
