//! [`ReplyCache`]: recent replies by request id, so a request delivered twice runs once.
//!
//! RabbitMQ delivers a request again when the manager lost its channel before the ack, even
//! if the request already ran (a login would open a second session). Clients give each
//! request a unique `message_id`; a manager that sees an id again answers with the reply of
//! the first run instead, or waits for it if that run is still going.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    hash::BuildHasher,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use crate::message::Reply;

/// The reply of one request, filled by whichever delivery runs it first.
pub(crate) type Slot = Arc<OnceCell<Reply>>;

/// Replies of recent requests by `message_id`, bounded by entry count and by age.
pub(crate) struct ReplyCache {
    entries: HashMap<String, Entry>,
    /// Ids oldest first, for eviction; each id in `entries` appears here exactly once.
    order: VecDeque<String>,
    capacity: usize,
    hasher: std::hash::RandomState,
}

struct Entry {
    /// A hash of the body: an id reused for another request must not get this one's reply.
    body: u64,
    expires: Instant,
    slot: Slot,
}

// Replies hold session ids: Debug shows only the size.
impl fmt::Debug for ReplyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyCache")
            .field("entries", &self.entries.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl ReplyCache {
    /// A cache of at most `capacity` replies.
    pub(crate) fn new(capacity: usize) -> Self {
        ReplyCache { entries: HashMap::new(), order: VecDeque::new(), capacity, hasher: std::hash::RandomState::new() }
    }

    /// The slot of request `id` with `body`: the one of an earlier delivery of the same
    /// request if it is younger than its `ttl`, else a new one, kept for `ttl` from `now`.
    /// An id seen again with another body, or after its time, gets a slot nobody shares.
    pub(crate) fn slot(&mut self, id: &str, body: &[u8], ttl: Duration, now: Instant) -> Slot {
        let body = self.hasher.hash_one(body);
        if let Some(entry) = self.entries.get(id) {
            return if entry.body == body && entry.expires > now { Arc::clone(&entry.slot) } else { Slot::default() };
        }
        while self.order.len() >= self.capacity.max(1)
            || self.order.front().is_some_and(|oldest| self.entries[oldest].expires <= now)
        {
            let oldest = self.order.pop_front().expect("the loop condition saw an entry");
            self.entries.remove(&oldest);
        }
        let slot = Slot::default();
        self.entries.insert(id.to_owned(), Entry { body, expires: now + ttl, slot: Arc::clone(&slot) });
        self.order.push_back(id.to_owned());
        slot
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn ok() -> Reply {
        Reply::Ok(Map::new())
    }

    #[test]
    fn same_id_and_body_share_one_reply() {
        let mut cache = ReplyCache::new(8);
        let now = Instant::now();
        let first = cache.slot("a", b"login", TTL, now);
        first.set(ok()).unwrap();
        let again = cache.slot("a", b"login", TTL, now + Duration::from_secs(9));
        assert_eq!(again.get(), Some(&ok()));
        assert!(cache.slot("b", b"login", TTL, now).get().is_none(), "another id is another request");
    }

    #[test]
    fn reused_id_with_another_body_gets_a_slot_of_its_own() {
        let mut cache = ReplyCache::new(8);
        let now = Instant::now();
        cache.slot("a", b"login", TTL, now).set(ok()).unwrap();
        assert!(cache.slot("a", b"logout", TTL, now).get().is_none());
        assert_eq!(cache.slot("a", b"login", TTL, now).get(), Some(&ok()), "the first request's reply stays");
    }

    #[test]
    fn replies_are_forgotten_after_their_ttl() {
        let mut cache = ReplyCache::new(8);
        let now = Instant::now();
        cache.slot("a", b"login", TTL, now).set(ok()).unwrap();
        assert!(cache.slot("a", b"login", TTL, now + TTL).get().is_none());
        // The expired entry goes as soon as a new request comes.
        cache.slot("b", b"login", TTL, now + TTL);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn oldest_replies_make_room_at_capacity() {
        let mut cache = ReplyCache::new(3);
        let now = Instant::now();
        for id in ["a", "b", "c", "d"] {
            cache.slot(id, b"get", TTL, now).set(ok()).unwrap();
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.slot("a", b"get", TTL, now).get().is_none(), "the oldest was evicted");
        assert_eq!(cache.slot("d", b"get", TTL, now).get(), Some(&ok()));
    }

    #[tokio::test]
    async fn a_duplicate_waits_for_the_run_in_progress() {
        let mut cache = ReplyCache::new(8);
        let now = Instant::now();
        let first = cache.slot("a", b"login", TTL, now);
        let second = cache.slot("a", b"login", TTL, now);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            first
                .get_or_init(|| async {
                    let _ = released.await;
                    ok()
                })
                .await
                .clone()
        });
        tokio::task::yield_now().await;
        let waiting = tokio::spawn(async move { second.get_or_init(|| async { panic!("ran twice") }).await.clone() });
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), ok());
        assert_eq!(waiting.await.unwrap(), ok());
    }
}
