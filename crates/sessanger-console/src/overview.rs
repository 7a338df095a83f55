//! The overview: whether the store answers, how many sessions are live, and sessions created
//! and ended per minute over the last hour, from the store's event log.

use std::time::Duration;

use axum::response::Response;
use sessanger_core::{EventLog, EventRecord, Page, SessionEvent, StoreError, Timestamp};

use crate::{operator::Operator, pages};

/// The chart's span, in minutes.
pub(crate) const MINUTES: usize = 60;

/// Most events read for the chart: a page costs one bounded read however busy the hour was.
const MOST_EVENTS: usize = 20_000;

/// What the overview shows.
#[derive(Debug)]
pub(crate) struct Overview {
    /// `Err` with the store's failure when it does not answer a ping.
    pub(crate) store: Result<(), String>,
    pub(crate) active: Option<u64>,
    /// How many services, `Page::MAX_LIMIT` meaning at least as many.
    pub(crate) services: Option<usize>,
    pub(crate) chart: Chart,
}

/// Sessions created and ended in each of the last [`MINUTES`] minutes, oldest first.
#[derive(Debug)]
pub(crate) enum Chart {
    /// The store keeps no event log (or records no events).
    NoLog,
    /// The log could not be read.
    Unavailable,
    Minutes {
        /// [`MINUTES`] counts each.
        created: Vec<u64>,
        ended: Vec<u64>,
        /// Whether the hour held more than [`MOST_EVENTS`] events, so only the latest count.
        partial: bool,
    },
}

pub(crate) async fn overview(operator: Operator) -> Response {
    let manager = &operator.manager;
    let store = manager.store().ping().await.map_err(|e| e.to_string());
    let active = manager.count_active().await.ok();
    let services = manager.list_services(None, Page::MAX_LIMIT).await.ok().map(|services| services.len());
    let chart = match manager.event_log() {
        None => Chart::NoLog,
        Some(log) => match recent(log, manager.now()).await {
            Ok(chart) => chart,
            Err(error) => {
                tracing::warn!(%error, "console: the event log could not be read");
                Chart::Unavailable
            }
        },
    };
    pages::overview(&operator, &Overview { store, active, services, chart })
}

/// The chart of the hour before `now`, from the latest events of `log`.
async fn recent(log: &dyn EventLog, now: Timestamp) -> Result<Chart, StoreError> {
    let (events, more_before) = crate::live::latest(log, MOST_EVENTS).await?;
    Ok(chart(&events, now, more_before))
}

/// Counts `events` into minutes before `now`; `more_before` says whether the log holds events
/// older than the first of them.
fn chart(events: &[EventRecord], now: Timestamp, more_before: bool) -> Chart {
    let (mut created, mut ended) = (vec![0; MINUTES], vec![0; MINUTES]);
    let start = now - Duration::from_secs(60 * MINUTES as u64);
    for record in events.iter().filter(|record| record.at > start && record.at <= now) {
        let minute = usize::try_from((record.at.as_millis() - start.as_millis() - 1) / 60_000).unwrap_or(0);
        let minute = minute.min(MINUTES - 1);
        match record.event {
            SessionEvent::Created { .. } => created[minute] += 1,
            SessionEvent::Deleted { .. } | SessionEvent::Expired { .. } => ended[minute] += 1,
            _ => {}
        }
    }
    let partial = more_before && events.first().is_some_and(|first| first.at > start);
    Chart::Minutes { created, ended, partial }
}

#[cfg(test)]
mod tests {
    use sessanger_core::{DeleteReason, EventId, SessionId, UserId};

    use super::*;

    fn record(at: Timestamp, event: fn(SessionId, UserId) -> SessionEvent) -> EventRecord {
        EventRecord { id: EventId(0), at, service: None, event: event(SessionId::generate(), "u".parse().unwrap()) }
    }

    #[test]
    fn events_fall_into_their_minute_and_older_ones_are_left_out() {
        let now = Timestamp::from_millis(10_000_000);
        let ago = |secs: u64| now - Duration::from_secs(secs);
        let created = |session_id, user_id| SessionEvent::Created { session_id, user_id };
        let revoked =
            |session_id, user_id| SessionEvent::Deleted { session_id, user_id, reason: DeleteReason::Revoked };
        let expired = |session_id, user_id| SessionEvent::Expired { session_id, user_id };
        let events = [
            record(ago(3700), created),
            record(ago(3599), created),
            record(ago(30), created),
            record(ago(10), revoked),
            record(ago(0), expired),
        ];
        let Chart::Minutes { created, ended, partial } = chart(&events, now, false) else { panic!() };
        assert_eq!((created[0], created[MINUTES - 1], created.iter().sum::<u64>()), (1, 1, 2));
        assert_eq!((ended[MINUTES - 1], ended.iter().sum::<u64>()), (2, 2));
        assert!(!partial);
        let Chart::Minutes { partial, .. } = chart(&events[2..], now, true) else { panic!() };
        assert!(partial, "the latest events begin inside the hour and the log holds older ones");
    }
}
