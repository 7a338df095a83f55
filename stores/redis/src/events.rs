//! The event log: a Redis Stream beside the sessions, appended to by the scripts that make
//! each change (`scripts.rs`: `record`), read back here.
//!
//! An entry's id is `<n>-0`, `n` the event's [`EventId`] from the counter `<log>:n`; its
//! fields have one-letter names: `a` the time in ms (first, so trimming by age reads one
//! field), `t` the type, `s` the session id, `u` the user, `b` the acting service (absent for
//! none), `o` the old id of a regeneration, `r` a deletion's reason, `k` the keys of an
//! attribute change as a JSON array.
//!
//! Relays keep their [`RelayState`] as JSON in the hash `<log>:relays`, one field per relay;
//! a claim reads it, applies [`RelayState::claim`] and writes back only if nobody wrote in
//! between (a compare-and-set script), so the rule is the one every store shares.

use async_trait::async_trait;
use redis::{Script, Value};
use sessanger_core::{
    DeleteReason, EventId, EventLog, EventRecord, RelayClaim, RelayState, Retention, SessionEvent, StoreError,
    Timestamp,
};

use crate::{
    RedisStore,
    record::{self, Malformed, items, malformed, text},
};

/// `KEYS[1]` the log. Returns `{newest id, newest trimmed id}` as stream ids, `''` for none:
/// the counter (or the stream's last id if the counter was lost), and the id before the first
/// entry kept, or the last id if trimming left none. Ids are consecutive, so whatever lies
/// below the first entry was trimmed (XTRIM leaves XINFO's `max-deleted-entry-id` alone).
const STATE: &str = r#"
local last = redis.call('GET', KEYS[1] .. ':n')
if redis.call('EXISTS', KEYS[1]) == 0 then return {last or '', ''} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local length, generated, first = 0, '', nil
for i = 1, #info, 2 do
  if info[i] == 'length' then length = info[i + 1] end
  if info[i] == 'last-generated-id' then generated = info[i + 1] end
  if info[i] == 'first-entry' then first = info[i + 1] end
end
local trimmed = ''
if length == 0 then
  trimmed = generated
elseif first then
  trimmed = string.format('%d-0', tonumber(string.match(first[1], '^(%d+)')) - 1)
end
return {last or generated, trimmed}
"#;

/// `KEYS[1]` the log; `ARGV[1]` the most events kept, `ARGV[2]` the oldest time kept (ms).
/// Trims by count, then by age: the entries before the first one recorded at or after
/// `ARGV[2]`, reading at most 10 000 of them per call (the next call goes on). Returns how many
/// entries it dropped.
const TRIM: &str = r#"
local log = KEYS[1]
local before = redis.call('XLEN', log)
if before == 0 then return 0 end
redis.call('XTRIM', log, 'MAXLEN', ARGV[1])
local cutoff = tonumber(ARGV[2])
local keep, old, start = nil, nil, '-'
for _ = 1, 100 do
  local batch = redis.call('XRANGE', log, start, '+', 'COUNT', 100)
  for _, entry in ipairs(batch) do
    if tonumber(entry[2][2]) >= cutoff then keep = entry[1]; break end
    old = entry[1]
  end
  if keep or #batch < 100 then break end
  start = '(' .. old
end
if keep then
  redis.call('XTRIM', log, 'MINID', keep)
elseif old then
  redis.call('XTRIM', log, 'MINID', string.format('%d-0', tonumber(string.match(old, '^(%d+)')) + 1))
end
return before - redis.call('XLEN', log)
"#;

/// `KEYS[1]` the relays' hash; `ARGV[1..3]` the relay, the state expected (`''`: none), the
/// state to write. Writes it only if the stored state is still the one expected; returns 1 if
/// it did.
const SWAP: &str = r#"
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"#;

/// The log's own scripts.
#[derive(Debug)]
pub(crate) struct LogScripts {
    state: Script,
    trim: Script,
    swap: Script,
}

impl LogScripts {
    pub(crate) fn new() -> Self {
        LogScripts { state: Script::new(STATE), trim: Script::new(TRIM), swap: Script::new(SWAP) }
    }
}

/// How often a claim or an advance reads and swaps again when another writer got in between.
const SWAP_ATTEMPTS: usize = 8;

fn stream_id(id: EventId) -> String {
    format!("{id}-0")
}

/// The event id of a stream id `<n>-0`; `None` for `''` and `0-0` (what XINFO says of a
/// stream nothing was trimmed from).
fn event_id(stream_id: &str) -> Result<Option<EventId>, StoreError> {
    let n = stream_id.split('-').next().unwrap_or_default();
    if n.is_empty() {
        return Ok(None);
    }
    let n: u64 = n.parse().map_err(|_| malformed(Malformed::Invalid("event id")))?;
    Ok((n > 0).then_some(EventId(n)))
}

/// One entry of an `XRANGE` reply as the event it records.
fn decode(entry: Value) -> Result<EventRecord, StoreError> {
    let invalid = |what| malformed(Malformed::Invalid(what));
    let mut parts = items(entry)?.into_iter();
    let id = event_id(&text(parts.next().unwrap_or(Value::Nil))?)?.ok_or_else(|| invalid("event id"))?;
    let mut fields = items(parts.next().unwrap_or(Value::Nil))?.into_iter();
    let (mut at, mut kind, mut session, mut user, mut service, mut old, mut reason, mut keys) =
        (None, None, None, None, None, None, None, None);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = text(value)?;
        match text(name)?.as_str() {
            "a" => at = value.parse().ok().map(Timestamp::from_millis),
            "t" => kind = Some(value),
            "s" => session = value.parse().ok(),
            "u" => user = value.parse().ok(),
            "b" => service = Some(value.parse().map_err(|_| invalid("event service"))?),
            "o" => old = value.parse().ok(),
            "r" => reason = serde_json::from_value::<DeleteReason>(value.into()).ok(),
            "k" => keys = serde_json::from_str::<Vec<String>>(&value).ok(),
            // A field this version does not know: written by a newer one.
            _ => {}
        }
    }
    let (session_id, user_id) =
        (session.ok_or_else(|| invalid("event session"))?, user.ok_or_else(|| invalid("event user"))?);
    let event = match kind.as_deref() {
        Some("created") => SessionEvent::Created { session_id, user_id },
        Some("refreshed") => SessionEvent::Refreshed { session_id, user_id },
        Some("attributes_changed") => {
            SessionEvent::AttributesChanged { session_id, user_id, keys: keys.ok_or_else(|| invalid("event keys"))? }
        }
        Some("regenerated") => SessionEvent::Regenerated {
            old_session_id: old.ok_or_else(|| invalid("event old session"))?,
            session_id,
            user_id,
        },
        Some("deleted") => {
            SessionEvent::Deleted { session_id, user_id, reason: reason.ok_or_else(|| invalid("event reason"))? }
        }
        Some("expired") => SessionEvent::Expired { session_id, user_id },
        _ => return Err(invalid("event type")),
    };
    Ok(EventRecord { id, at: at.ok_or_else(|| invalid("event time"))?, service, event })
}

impl RedisStore {
    /// The log's key; only called on a store that records events.
    fn log(&self) -> &str {
        self.events.as_deref().unwrap_or_default()
    }

    /// The newest and the newest trimmed id.
    async fn state(&self) -> Result<(Option<EventId>, Option<EventId>), StoreError> {
        let reply = self.scripts.log.state.key(self.log()).invoke_async(&mut self.connection()).await;
        let mut parts = items(reply.map_err(crate::connection::store_error)?)?.into_iter();
        let last = event_id(&text(parts.next().unwrap_or(Value::Nil))?)?;
        let trimmed = event_id(&text(parts.next().unwrap_or(Value::Nil))?)?;
        Ok((last, trimmed))
    }

    /// Reads relay `name`'s state, hands it to `update`, and writes what it returns if nobody
    /// wrote in between (reading again otherwise). `update` returns its answer, and the state
    /// to write or `None` to write nothing.
    async fn swap_relay<T>(
        &self,
        name: &str,
        update: impl Fn(Option<RelayState>) -> (T, Option<RelayState>),
    ) -> Result<T, StoreError> {
        let relays = format!("{}:relays", self.log());
        for _ in 0..SWAP_ATTEMPTS {
            let stored = self.query(redis::cmd("HGET").arg(&relays).arg(name)).await?;
            let stored = match stored {
                Value::Nil => String::new(),
                value => text(value)?,
            };
            let current = if stored.is_empty() {
                None
            } else {
                Some(serde_json::from_str(&stored).map_err(|e| StoreError::Decode(e.into()))?)
            };
            let (answer, next) = update(current);
            let Some(next) = next else { return Ok(answer) };
            let mut swap = self.scripts.log.swap.key(&relays);
            swap.arg(name).arg(&stored).arg(record::json(&next)?);
            let swapped: i64 =
                swap.invoke_async(&mut self.connection()).await.map_err(crate::connection::store_error)?;
            if swapped == 1 {
                return Ok(answer);
            }
        }
        Err(StoreError::Other(format!("relay `{name}`: the state kept changing while it was claimed").into()))
    }
}

#[async_trait]
impl EventLog for RedisStore {
    async fn read_events(&self, after: Option<EventId>, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = after.map_or_else(|| "-".to_owned(), |after| format!("({}", stream_id(after)));
        let range = redis::cmd("XRANGE").arg(self.log()).arg(start).arg("+").arg("COUNT").arg(limit).to_owned();
        items(self.query(&range).await?)?.into_iter().map(decode).collect()
    }

    async fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        Ok(self.state().await?.0)
    }

    async fn trimmed_through(&self) -> Result<Option<EventId>, StoreError> {
        Ok(self.state().await?.1)
    }

    async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<RelayClaim, StoreError> {
        self.swap_relay(name, |current| RelayState::claim(current, holder, until, now)).await
    }

    async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        position: Option<EventId>,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.swap_relay(name, |current| match current {
            Some(state) if state.holder == holder => (true, Some(RelayState { until, position, ..state })),
            _ => (false, None),
        })
        .await
    }

    async fn trim_events(&self, retention: &Retention, now: Timestamp) -> Result<u64, StoreError> {
        // XTRIM takes a signed 64-bit count.
        let max_events = retention.max_events.get().min(i64::MAX as u64);
        let oldest = now.as_millis().saturating_sub(i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX));
        let mut trim = self.scripts.log.trim.key(self.log());
        trim.arg(max_events).arg(oldest);
        trim.invoke_async(&mut self.connection()).await.map_err(crate::connection::store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_map_onto_event_ids() {
        assert_eq!(event_id("42-0").unwrap(), Some(EventId(42)));
        assert_eq!(event_id(&stream_id(EventId(7))).unwrap(), Some(EventId(7)));
        assert_eq!(event_id("0-0").unwrap(), None);
        assert_eq!(event_id("").unwrap(), None);
        assert!(event_id("x-0").is_err());
    }
}
