//! Concurrent increments of one session, written as one patch.
//!
//! Many clients counting in one session (a rate counter, a cart several tabs fill) would each
//! pay a store round trip and, on Redis, a script run that costs the database far more than
//! the addition itself. While one patch of a session is on its way to the store, the
//! increments that arrive for that session wait behind it in its [`Lane`], then go to the
//! store together as one patch adding their sums: one round trip, one record written, one
//! event. Every caller is answered as if the increments had been written one at a time in the
//! order they arrived: the store moves the version by their number
//! ([`PatchOptions::writes`](crate::PatchOptions::writes)) and each caller gets the version
//! and values right after its own increment ([`answers`]). No answer differs from one a
//! client could have had without combining, and an `If-Match` on any but the last caller's
//! version fails, as it would have.
//!
//! Only patches that commute are combined: increments alone, at any version, without device
//! fields; and one write combines only increments of the same keys, so every key of every
//! answer has had an increment and its value right after each one is known exactly (a key
//! another caller created later would be absent, not 0). A combined patch the store refuses
//! (the cap, an overflow) is written again one caller at a time, so each gets the answer its
//! own patch would have had.

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::{Patch, Patched, ServiceId, Session, SessionId, StoreError};

/// Most increments one combined patch carries, so a caller never waits behind an unbounded
/// queue's write: the rest go in the next one.
const MOST_PER_WRITE: usize = 256;

/// What patches must share to be combined: the session, the service acting (the event names
/// it), and whether the write renews the idle deadline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Lane {
    pub(crate) id: SessionId,
    pub(crate) service: Option<ServiceId>,
    pub(crate) touch: bool,
}

/// An increment waiting for the write in flight in its lane to end.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) incr: Map<String, Value>,
    pub(crate) turn: oneshot::Sender<Turn>,
}

/// What a waiting increment is told.
// Sent once through a channel and matched at once, like `Patched`: boxing the answer would
// cost an allocation per caller for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Turn {
    /// The store's answer, as its own patch would have had it.
    Done(Result<Patched, StoreError>),
    /// Nobody will write it: write it alone.
    Alone,
}

/// How a patch joined its lane.
#[derive(Debug)]
pub(crate) enum Joined {
    /// No write was in flight in the lane: the caller writes its own patch now, and the lane
    /// stays busy, collecting later increments, until the caller calls [`Combiner::done`].
    First,
    /// A write is in flight: wait for the turn.
    Queued(oneshot::Receiver<Turn>),
}

/// The lanes with a write in flight, and the increments waiting in each.
#[derive(Debug, Default)]
pub(crate) struct Combiner {
    lanes: Mutex<HashMap<Lane, VecDeque<Waiting>>>,
}

impl Combiner {
    /// Joins `lane` with the increments `incr`.
    pub(crate) fn join(&self, lane: &Lane, incr: &Map<String, Value>) -> Joined {
        let mut lanes = self.lock();
        match lanes.get_mut(lane) {
            Some(queue) => {
                let (turn, receiver) = oneshot::channel();
                queue.push_back(Waiting { incr: incr.clone(), turn });
                Joined::Queued(receiver)
            }
            None => {
                lanes.insert(lane.clone(), VecDeque::new());
                Joined::First
            }
        }
    }

    /// The next increments to write in `lane`: the oldest, and those right behind it that
    /// add to the same keys, at most [`MOST_PER_WRITE`]; none, and the lane is free again,
    /// when nobody waits. Callers that gave up waiting (their request timed out) are left
    /// out: nothing of theirs is written.
    pub(crate) fn next(&self, lane: &Lane) -> Vec<Waiting> {
        let mut lanes = self.lock();
        let Some(queue) = lanes.get_mut(lane) else { return Vec::new() };
        queue.retain(|waiting| !waiting.turn.is_closed());
        let Some(first) = queue.front() else {
            lanes.remove(lane);
            return Vec::new();
        };
        let same_keys = |incr: &Map<String, Value>| {
            incr.len() == first.incr.len() && incr.keys().all(|key| first.incr.contains_key(key))
        };
        let count = queue.iter().take(MOST_PER_WRITE).take_while(|waiting| same_keys(&waiting.incr)).count();
        queue.drain(..count).collect()
    }

    /// Frees `lane` and tells everyone waiting in it to write alone: for a lane whose writer
    /// cannot go on (no runtime to run it).
    pub(crate) fn abandon(&self, lane: &Lane) {
        let waiting = self.lock().remove(lane).unwrap_or_default();
        for Waiting { turn, .. } in waiting {
            // A caller that gave up needs no answer.
            let _ = turn.send(Turn::Alone);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Lane, VecDeque<Waiting>>> {
        // The map is consistent between statements: a panic elsewhere leaves nothing half-done.
        self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The one patch adding every increment of `each`, and how many writes it carries; `None` if
/// there is only one (it is written as it is), a value is not an integer or a sum overflows
/// (each is then written alone and refused alone).
pub(crate) fn sum(each: &[&Map<String, Value>]) -> Option<(Patch, NonZeroU32)> {
    if each.len() < 2 {
        return None;
    }
    let mut sums: Map<String, Value> = Map::new();
    for incr in each {
        for (key, by) in *incr {
            let by = by.as_i64()?;
            let sum = match sums.get(key) {
                Some(current) => current.as_i64()?.checked_add(by)?,
                None => by,
            };
            sums.insert(key.clone(), Value::from(sum));
        }
    }
    let writes = NonZeroU32::new(u32::try_from(each.len()).ok()?)?;
    Some((Patch { incr: sums, ..Patch::default() }, writes))
}

/// What each of `each` is answered, given `last`, the session after the patch [`sum`] made
/// of them: the session right after its own increment, had they been written one at a time
/// in order. Going back from the last, each earlier answer has one version less and the later
/// increments taken off its values.
pub(crate) fn answers(last: Session, each: &[&Map<String, Value>]) -> Vec<Session> {
    let mut answers = Vec::with_capacity(each.len());
    let mut current = last;
    for incr in each.iter().skip(1).rev() {
        let earlier = before(&current, incr);
        answers.push(current);
        current = earlier;
    }
    answers.push(current);
    answers.reverse();
    answers
}

/// `session` as it was before `incr` was added to it.
fn before(session: &Session, incr: &Map<String, Value>) -> Session {
    let mut earlier = session.clone();
    earlier.version.0 -= 1;
    for (key, by) in incr {
        let (Some(value), Some(by)) = (earlier.attributes.get(key).and_then(Value::as_i64), by.as_i64()) else {
            continue;
        };
        // [`sum`] checked the whole run of additions, so each partial one is in range too.
        earlier.attributes.insert(key.clone(), Value::from(value - by));
    }
    earlier
}

/// `error` once for each of `count` callers, each copy of the same kind and cause.
pub(crate) fn copies(error: StoreError, count: usize) -> Vec<StoreError> {
    type Make = fn(crate::BoxError) -> StoreError;
    let (make, cause): (Make, crate::BoxError) = match error {
        StoreError::Encode(cause) => (StoreError::Encode, cause),
        StoreError::Decode(cause) => (StoreError::Decode, cause),
        StoreError::Unavailable(cause) => (StoreError::Unavailable, cause),
        StoreError::Other(cause) => (StoreError::Other, cause),
    };
    let cause: Arc<dyn std::error::Error + Send + Sync> = Arc::from(cause);
    (0..count).map(|_| make(Box::new(Arc::clone(&cause)))).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::time::Duration;

    use super::*;
    use crate::{Timestamp, Version};

    fn incr(pairs: &[(&str, i64)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect()
    }

    #[test]
    fn the_sum_adds_each_key_and_counts_the_writes() {
        let (a, b, c) = (incr(&[("n", 1)]), incr(&[("n", 2), ("m", -1)]), incr(&[("n", 3)]));
        let (patch, writes) = sum(&[&a, &b, &c]).unwrap();
        assert_eq!(patch.incr, incr(&[("n", 6), ("m", -1)]));
        assert!(patch.set.is_empty() && patch.remove.is_empty());
        assert_eq!(writes.get(), 3);
    }

    #[test]
    fn an_overflowing_or_odd_sum_is_not_combined() {
        let (big, one) = (incr(&[("n", i64::MAX)]), incr(&[("n", 1)]));
        assert!(sum(&[&big, &one]).is_none());
        // Nor is one alone: it is written as it is.
        assert!(sum(&[&one]).is_none());
        let odd: Map<String, Value> = [("n".to_owned(), json!(1.5))].into_iter().collect();
        assert!(sum(&[&one, &odd]).is_none());
    }

    #[test]
    fn a_write_takes_the_waiting_increments_of_the_same_keys_in_order() {
        let combiner = Combiner::default();
        let lane = Lane { id: SessionId::generate(), service: None, touch: false };
        assert!(matches!(combiner.join(&lane, &incr(&[("n", 1)])), Joined::First));
        let mut receivers: Vec<_> =
            [incr(&[("n", 1)]), incr(&[("n", 2)]), incr(&[("n", 3), ("m", 1)]), incr(&[("n", 4)])]
                .iter()
                .map(|incr| match combiner.join(&lane, incr) {
                    Joined::Queued(receiver) => receiver,
                    Joined::First => panic!("the lane is busy"),
                })
                .collect();
        // The caller of the second one gave up: it is left out.
        drop(receivers.remove(1));
        let by = |waiting: Vec<Waiting>| waiting.iter().map(|w| w.incr["n"].as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(by(combiner.next(&lane)), [1]);
        assert_eq!(by(combiner.next(&lane)), [3]);
        assert_eq!(by(combiner.next(&lane)), [4]);
        assert!(combiner.next(&lane).is_empty());
        // The lane is free again.
        assert!(matches!(combiner.join(&lane, &incr(&[("n", 1)])), Joined::First));
        let Joined::Queued(mut waiting) = combiner.join(&lane, &incr(&[("n", 1)])) else { panic!("the lane is busy") };
        combiner.abandon(&lane);
        assert!(matches!(waiting.try_recv(), Ok(Turn::Alone)));
        assert!(matches!(combiner.join(&lane, &incr(&[("n", 1)])), Joined::First));
    }

    #[test]
    fn each_caller_sees_the_session_right_after_its_own_increment() {
        let (a, b, c) = (incr(&[("n", 1), ("m", 5)]), incr(&[("n", 2), ("m", 0)]), incr(&[("n", 4), ("m", -1)]));
        // Before: n = 10, m absent, version 7; after the three: n = 17, m = 4, version 10.
        let (id, user) = (SessionId::generate(), "u".parse().unwrap());
        let hour = Duration::from_secs(3600);
        let mut last = Session::new(id, user, Timestamp::from_millis(1_000), hour, hour);
        last.version = Version(10);
        last.attributes = [("n".to_owned(), json!(17)), ("m".to_owned(), json!(4)), ("s".to_owned(), json!("x"))]
            .into_iter()
            .collect();
        let seen = answers(last.clone(), &[&a, &b, &c]);
        let figures: Vec<_> =
            seen.iter().map(|s| (s.version.0, s.attributes["n"].as_i64(), s.attributes["m"].as_i64())).collect();
        assert_eq!(figures, [(8, Some(11), Some(5)), (9, Some(13), Some(5)), (10, Some(17), Some(4))]);
        // Everything else is the session's as stored.
        for mut seen in seen {
            seen.version = last.version;
            seen.attributes.clone_from(&last.attributes);
            assert_eq!(seen, last);
        }
    }
}
