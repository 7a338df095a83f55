//! [`LogFollower`]: a reader that follows a store's event log as it grows, for whoever streams
//! it (the HTTP server's `/v1/events`, the admin console's live page).

use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::{EventId, EventRecord, SessionEvent, SessionManager, StoreError};

/// How long a follower waits before it reads the log again when nothing in this process woke
/// it: the delay with which it sees the events other processes record.
const POLL: Duration = Duration::from_secs(1);

/// Follows the event log of a manager's store from a position: each
/// [`next`](LogFollower::next) returns the events recorded after the last it returned, waiting
/// for some if there are none yet. A change made through this process wakes it at once; one
/// made by another process sharing the store is read within a second.
#[derive(Debug)]
pub struct LogFollower {
    manager: SessionManager,
    cursor: Option<EventId>,
    wake: broadcast::Receiver<SessionEvent>,
}

impl LogFollower {
    /// A follower of `manager`'s log that starts after `cursor` (from the oldest event kept
    /// for `None`); `None` if the store keeps no log.
    pub fn new(manager: SessionManager, cursor: Option<EventId>) -> Option<LogFollower> {
        manager.event_log()?;
        let wake = manager.subscribe();
        Some(LogFollower { manager, cursor, wake })
    }

    /// The next events of the log, oldest first, at most `most`: at least one, once there is
    /// one. Cancelling it loses nothing: the position moves only when events are returned.
    ///
    /// # Errors
    /// The log's own failures; the position stays where it was.
    pub async fn next(&mut self, most: usize) -> Result<Vec<EventRecord>, StoreError> {
        loop {
            let log = self.manager.event_log().expect("a store keeps its log: checked in `new`");
            let batch = log.read_events(self.cursor, most).await?;
            if let Some(last) = batch.last() {
                self.cursor = Some(last.id);
                return Ok(batch);
            }
            tokio::select! {
                // A change in this process (or a lagged receiver, which also means changes).
                woke = self.wake.recv() => if let Err(RecvError::Closed) = woke {
                    tokio::time::sleep(POLL).await;
                },
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
