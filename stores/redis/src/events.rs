//! The event log: a Redis Stream beside the sessions, appended to by the scripts that make
//! each change (`scripts.rs`: `record`), read back here.
//!
//! An entry's id is `<n>-0`, `n` the event's [`EventId`] from the counter `<log>:n`; its
//! fields have one-letter names: `a` the time in ms (first, so trimming by age reads one
//! field), `t` the type, `s` the session id, `u` the user, `b` the acting service (absent for
//! none), `o` the old id of a regeneration, `r` a deletion's reason, `k` the keys of an
//! attribute change as a JSON array.
//!
//! On a Cluster, a script can only write in its own slot: each writes its events to its
//! shard's log, `{<prefix>:<tag>}:events`, with the same layout, and the store gathers them
//! into the event log before reading it (`GATHER`): a shard's entries in order, each once,
//! under a watermark per shard kept beside the log (`<log>:gathered`), so a crash between
//! the copy and the shard log's trim copies nothing twice. A process gathers the shards it
//! wrote to at once, and every shard once a second (one `XLEN` each) for the others' writes.
//!
//! Relays keep their [`RelayState`] as JSON in the hash `<log>:relays`, one field per relay;
//! a claim reads it, applies [`RelayState::claim`] and writes back only if nobody wrote in
//! between (a compare-and-set script), so the rule is the one every store shares.

use std::{
    collections::HashSet,
    num::NonZeroU64,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use redis::{Script, Value};
use sessanger_core::{
    DeleteReason, EventId, EventLog, EventRecord, RelayClaim, RelayState, Retention, SessionEvent, StoreError,
    Timestamp,
};

use crate::{
    FAN_OUT, RedisStore,
    record::{self, Malformed, items, malformed, text},
};

/// The Lua function `append(log, fields)` every script that records starts with: appends an
/// entry of `fields` to the stream `log` under the next id of its counter `<log>:n`, as
/// `n-0`, so the stream's id is the event's id. A counter lost while the stream survived (a
/// key deleted by hand) resumes after the stream's newest id, never below it. `MAXLEN ~`
/// bounds the log to about `max_events` between two trims by the reaper, at the cost of a
/// whole node of the stream at a time.
pub(crate) fn append(max_events: NonZeroU64) -> String {
    // XADD's MAXLEN takes a signed 64-bit count.
    let max_events = max_events.get().min(i64::MAX as u64);
    format!(
        r#"
local function append(log, fields)
  local counter = log .. ':n'
  local n = redis.call('INCR', counter)
  if n == 1 and redis.call('EXISTS', log) == 1 then
    local info = redis.call('XINFO', 'STREAM', log)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then n = tonumber(string.match(info[i + 1], '^(%d+)')) + 1 end
    end
    redis.call('SET', counter, string.format('%d', n))
  end
  redis.call('XADD', log, 'MAXLEN', '~', '{max_events}', string.format('%d-0', n), unpack(fields))
end
"#
    )
}

/// `KEYS[1]` the event log; `ARGV[1]` a shard's tag, then its log's entries, oldest first, each
/// as its number, its field count and its fields. Appends those past the shard's watermark
/// to the log and moves the watermark to the last. Follows `append`.
const GATHER: &str = r#"
local log, tag = KEYS[1], ARGV[1]
local gathered = log .. ':gathered'
local mark = tonumber(redis.call('HGET', gathered, tag) or '0')
local at, last = 2, mark
while at <= #ARGV do
  local n, count = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  if n > mark then
    append(log, {unpack(ARGV, at + 2, at + 1 + count)})
    last = n
  end
  at = at + 2 + count
end
redis.call('HSET', gathered, tag, string.format('%d', last))
return last
"#;

/// How many entries of a shard's log one gathering step copies.
const GATHER_BATCH: usize = 256;

/// How often a process looks at every shard's log for other processes' events.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a store on a Cluster knows of the shard logs: those it wrote to since it last
/// gathered them, and when it last looked at every shard.
#[derive(Debug, Default)]
pub(crate) struct Shards {
    written: Mutex<HashSet<String>>,
    swept: Mutex<Option<Instant>>,
}

impl Shards {
    /// Notes that a script of shard `tag` may have recorded events.
    pub(crate) fn written(&self, tag: &str) {
        let mut written = self.written.lock().expect("shard set lock");
        if !written.contains(tag) {
            written.insert(tag.to_owned());
        }
    }

    /// The shards to gather now: those written to, and every shard once a sweep is due
    /// (`None`: look at every shard).
    fn due(&self) -> Option<Vec<String>> {
        let mut swept = self.swept.lock().expect("sweep lock");
        let written: Vec<String> = self.written.lock().expect("shard set lock").drain().collect();
        if swept.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
            *swept = Some(Instant::now());
            return None;
        }
        Some(written)
    }
}

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
    gather: Script,
}

impl LogScripts {
    pub(crate) fn new(max_events: NonZeroU64) -> Self {
        LogScripts {
            state: Script::new(STATE),
            trim: Script::new(TRIM),
            swap: Script::new(SWAP),
            gather: Script::new(&format!("{}{GATHER}", append(max_events))),
        }
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

    /// On a Cluster, copies into the event log what the shard logs hold (see the module
    /// docs); nothing on standalone Redis, where scripts write the event log itself.
    async fn gather(&self) -> Result<(), StoreError> {
        let Some(shards) = &self.shards else { return Ok(()) };
        let tags = match shards.due() {
            Some(tags) => tags,
            None => {
                let lengths = self
                    .every_shard(|tag| {
                        let cmd = redis::cmd("XLEN").arg(self.keys.shard_events(&tag)).to_owned();
                        async move { Ok((tag, crate::count(self.query(&cmd).await?)?)) }
                    })
                    .await?;
                lengths.into_iter().filter(|(_, length)| *length > 0).map(|(tag, _)| tag).collect()
            }
        };
        let gathering = tags.into_iter().map(|tag| async move { self.gather_shard(&tag).await });
        stream::iter(gathering).buffer_unordered(FAN_OUT).try_collect().await
    }

    /// Copies shard `tag`'s log into the event log, batch after batch, trimming what was copied.
    async fn gather_shard(&self, tag: &str) -> Result<(), StoreError> {
        let shard = self.keys.shard_events(tag);
        loop {
            let range = redis::cmd("XRANGE").arg(&shard).arg("-").arg("+").arg("COUNT").arg(GATHER_BATCH).to_owned();
            let entries = items(self.query(&range).await?)?;
            let batch = entries.len();
            if batch == 0 {
                return Ok(());
            }
            let mut gather = self.scripts.log.gather.key(self.log());
            gather.arg(tag);
            for entry in entries {
                let mut parts = items(entry)?.into_iter();
                let id = text(parts.next().unwrap_or(Value::Nil))?;
                let number = event_id(&id)?.ok_or_else(|| malformed(Malformed::Invalid("event id")))?;
                let fields = items(parts.next().unwrap_or(Value::Nil))?;
                gather.arg(number.0).arg(fields.len());
                for field in fields {
                    gather.arg(text(field)?);
                }
            }
            let last: u64 =
                gather.invoke_async(&mut self.connection()).await.map_err(crate::connection::store_error)?;
            // Copied, or copied before (a crash after the copy): either way past the watermark.
            let trim = redis::cmd("XTRIM").arg(&shard).arg("MINID").arg(stream_id(EventId(last).next())).to_owned();
            self.query(&trim).await?;
            if batch < GATHER_BATCH {
                return Ok(());
            }
        }
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
        self.gather().await?;
        let start = after.map_or_else(|| "-".to_owned(), |after| format!("({}", stream_id(after)));
        let range = redis::cmd("XRANGE").arg(self.log()).arg(start).arg("+").arg("COUNT").arg(limit).to_owned();
        items(self.query(&range).await?)?.into_iter().map(decode).collect()
    }

    async fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        if self.shards.is_none() {
            // The counter is the last id given out (the appending script sets both): one plain
            // read, which every node's event feed makes twice a second. The state script also
            // covers a counter deleted by hand.
            let counter = self.query(redis::cmd("GET").arg(format!("{}:n", self.log()))).await?;
            if counter != Value::Nil {
                return event_id(&text(counter)?);
            }
        }
        self.gather().await?;
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
