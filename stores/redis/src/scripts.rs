//! The Lua scripts: one per operation of the contract that reads and writes, so each is one
//! round trip and atomic (Redis runs a script with no other command in between).
//!
//! Every script is called with `KEYS[1]` = the key the operation is about (it routes the call
//! to the right cluster node) and `ARGV[1]` = `now` in ms, `ARGV[2]` = the hash tag `{prefix:tag}`
//! of the user's shard, `ARGV[3]` = the key of the log the events go to (the event log, or on a
//! Cluster the shard's own, in its slot; `''` when the store records no events), `ARGV[4]` = the acting service (`''` for none); the operation's own arguments
//! follow from `ARGV[5]`. Other keys the script touches (a user's index, the sessions it lists)
//! are built from `ARGV[2]` inside the script: they carry the same hash tag, so they live in the
//! slot of `KEYS[1]`, which Redis Cluster allows. Lists of sessions cannot be declared up front
//! anyway: they are read from the index by the script itself.

use std::num::NonZeroU64;

use redis::Script;

use crate::events::{LogScripts, append};

/// Helpers every script starts with. `now` is the caller's clock, never the server's: the
/// contract passes time in, and tests move it forward without sleeping.
const PRELUDE: &str = r#"
local now = tonumber(ARGV[1])
local base = ARGV[2]
local events, by = ARGV[3], ARGV[4]
local function skey(id) return base .. ':s:' .. id end
local function ukey(user) return base .. ':u:' .. user end
local single = base .. ':single'

-- Integers in hexadecimal, as record.rs writes them: `string.format` and `tonumber` do the
-- work in C. Below 2^53, Lua's numbers hold them exactly.
local function hex(n)
  if n < 0 then return '-' .. string.format('%x', -n) end
  return string.format('%x', n)
end
local function unhex(s)
  if string.byte(s, 1) == 45 then return -tonumber(string.sub(s, 2), 16) end
  return tonumber(s, 16)
end

-- The times and version of the record at `key` (its field `m`: `c,e,l,x,i,v`, with the
-- deadline, last access and absolute deadline counted from the creation; record.rs) and its
-- user (field `u`, up to the `\x1f` before the creator), as a table; nil if there is no record.
local function meta(key)
  local fields = redis.call('HMGET', key, 'm', 'u')
  if not fields[1] then return nil end
  local c, e, l, x, i, v = string.match(fields[1], '^(-?%x+),(-?%x+),(-?%x+),(-?%x+),(-?%x+),(-?%x+)$')
  local user = fields[2] and string.match(fields[2], '^[^\31]+')
  if not (v and user) then error({err = 'ERR sessanger: malformed metadata in ' .. key}) end
  c = unhex(c)
  return {c = c, e = c + unhex(e), l = c + unhex(l), x = c + unhex(x), i = unhex(i), v = unhex(v), user = user}
end

local function store_meta(key, f)
  redis.call('HSET', key, 'm', hex(f.c) .. ',' .. hex(f.e - f.c) .. ',' .. hex(f.l - f.c) .. ',' .. hex(f.x - f.c)
    .. ',' .. hex(f.i) .. ',' .. hex(f.v))
end

-- The record at `key` as one string, each field and value followed by a NUL, or nil if there
-- is none: no field or value holds a NUL (JSON escapes it, ids refuse control characters), and
-- one string is one step for the store's reply parser where a reply of many values takes one
-- per value (`record.rs`, `decode`).
local function packed(key)
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then return false end
  table.insert(fields, '')
  return table.concat(fields, '\0')
end

-- The shard's expiry set, an entry per session scored by its deadline, is split in
-- EXPIRY_PARTS parts by the id's first random character: at 10^6 sessions a shard holds ~244
-- entries, and a part of ~61 stays a listpack (~60 bytes an entry) where one set of all would
-- be a skiplist (~160 bytes). An entry is `<session id>\31<user id>` (neither holds a control
-- character), which stays within a listpack's 64 bytes for users of up to 39 bytes (20 with an
-- id of an earlier version's length). `unsplit`
-- is the one set of versions before the parts, its entries `<session id><user id>` with ids of
-- ID_LEN characters: still read, and emptied by every write or purge that meets one of them.
-- The scripts that read all the sets are given them as `KEYS` (lib.rs, `Keys::expiry_sets`).
local unsplit = base .. ':x'
local function xpart(id) return unsplit .. (string.byte(id, 3) % EXPIRY_PARTS) end

-- The session id and user id of expiry entry `m`, of a part or of the unsplit set.
local function expiry_entry(m)
  local at = string.find(m, '\31', 1, true)
  if at then return string.sub(m, 1, at - 1), string.sub(m, at + 1) end
  return string.sub(m, 1, ID_LEN), string.sub(m, ID_LEN + 1)
end

-- Removes the entry an earlier version left for session `id` of `user` in the unsplit set;
-- whether there was one. Those versions made ids of ID_LEN characters only: a write of any
-- other id skips the call.
local function unsplit_remove(id, user)
  return #id == ID_LEN and redis.call('ZREM', unsplit, id .. user) == 1
end

-- Sets the expiry entry of session `id` of `user` to deadline `at`, in its part.
local function expire_at(id, user, at)
  redis.call('ZADD', xpart(id), at, id .. '\31' .. user)
  unsplit_remove(id, user)
end

-- Removes the expiry entry of session `id` of `user`; whether there was one.
local function unexpire(id, user)
  local removed = redis.call('ZREM', xpart(id), id .. '\31' .. user) == 1
  return unsplit_remove(id, user) or removed
end

-- Whether string `a` sorts before `b` byte by byte: Lua's `<` follows the server's locale.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The metadata of the live session stored at `key`, or nil if it is missing or dead.
local function live(key)
  local f = meta(key)
  if f and f.e > now then return f end
  return nil
end

-- Pushes the native expiry of an index key, if it exists, out to `at` (never pulls it in): the
-- user's index outlives every session in it, and disappears by itself after the last one.
local function extend(key, at)
  local t = redis.call('PEXPIRETIME', key)
  if t ~= -2 and t < at then redis.call('PEXPIREAT', key, at) end
end

-- A user's index. Most users have one session: its id is then the user's field in the shard's
-- hash `single`, some 60 bytes in a compact listpack where a sorted set of the user's own
-- costs a key, about 190 bytes. A second session moves the user to a sorted set `ukey(user)`,
-- scored by creation, for good (until it expires with the last session). A user is in one of
-- the two, never both: `index_add` adds to the sorted set whenever it exists.

-- The user's indexed ids, oldest first.
local function index_ids(user)
  local id = redis.call('HGET', single, user)
  if id then return {id} end
  return redis.call('ZRANGE', ukey(user), 0, -1)
end

-- Indexes session `id` of `user`, created at `created`, with deadline `expires`.
local function index_add(user, id, created, expires)
  local index = ukey(user)
  if redis.call('EXISTS', index) == 0 then
    local other = redis.call('HGET', single, user)
    local g = other and live(skey(other))
    if not g then
      -- A dead one here is still in the expiry set, which reports it: it need not be listed.
      redis.call('HSET', single, user, id)
      return
    end
    redis.call('HDEL', single, user)
    redis.call('ZADD', index, g.c, other)
    expires = math.max(expires, g.e)
  end
  redis.call('ZADD', index, created, id)
  extend(index, expires)
end

local function index_remove(user, id)
  if redis.call('HGET', single, user) == id then
    redis.call('HDEL', single, user)
  else
    redis.call('ZREM', ukey(user), id)
  end
end

-- Moves the entry of session `old` of `user`, created at `created`, to its new id `new`.
local function index_rename(user, old, new, created)
  if redis.call('HGET', single, user) == old then
    redis.call('HSET', single, user, new)
  else
    local index = ukey(user)
    redis.call('ZREM', index, old)
    redis.call('ZADD', index, created, new)
  end
end

-- Appends an event about session `id` of `user` to the log (`events.rs` reads it back), in
-- the script that makes the change, so the two are one atomic step; `...` are the event's
-- other fields.
local function record(kind, id, user, ...)
  if events == '' then return end
  local fields = {'a', ARGV[1], 't', kind, 's', id, 'u', user}
  if by ~= '' then table.insert(fields, 'b'); table.insert(fields, by) end
  for _, field in ipairs({...}) do table.insert(fields, field) end
  append(events, fields)
end

-- Removes the record at `key` (session `id`) and its index entries, live or not; returns its
-- metadata, nil if there was no record.
local function forget(key, id)
  local f = meta(key)
  if f then
    index_remove(f.user, id)
    unexpire(id, f.user)
    redis.call('DEL', key)
  end
  return f
end

-- Removes the dead record at `key`, if any, and records its expiry: the write that meets a
-- dead session first reports it, and takes its expiry entry so the reaper does not again.
local function bury(key, id)
  local f = forget(key, id)
  if f then record('expired', id, f.user) end
end

-- Stores metadata `f` of the live session at `key` with its idle deadline renewed from `now`,
-- never past its absolute deadline, with its native expiry and its expiry entry.
local function touch(key, id, f)
  f.l = now
  f.e = math.min(now + f.i, f.x)
  store_meta(key, f)
  redis.call('PEXPIREAT', key, f.e)
  expire_at(id, f.user, f.e)
  extend(ukey(f.user), f.e)
end

-- The ids in a user's index, oldest first, without entries whose record Redis already
-- expired (those are pruned). Dead records still present stay listed here for
-- `delete_expired` to report; callers skip them with `live`.
local function members(user)
  local ids = {}
  for _, id in ipairs(index_ids(user)) do
    if redis.call('EXISTS', skey(id)) == 1 then table.insert(ids, id) else index_remove(user, id) end
  end
  return ids
end
"#;

/// `KEYS[1]` the new session; `ARGV[5..]` id, user, created_at, expires_at, limit kind
/// (`unlimited`, `refuse`, `evict`), limit, then the record's field/value pairs.
/// Returns `{'created', evicted ids...}`, `{'taken'}` or `{'limit'}`.
const CREATE: &str = r#"
local key, id, user = KEYS[1], ARGV[5], ARGV[6]
local created, expires, kind, max = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
if live(key) then return {'taken'} end
local evicted = {}
if kind ~= 'unlimited' then
  local alive = {}
  for _, sid in ipairs(members(user)) do
    if live(skey(sid)) then table.insert(alive, sid) end
  end
  if kind == 'refuse' then
    if #alive >= max then return {'limit'} end
  else
    for i = 1, #alive + 1 - max do
      forget(skey(alive[i]), alive[i])
      record('deleted', alive[i], user, 'r', 'evicted')
      table.insert(evicted, alive[i])
    end
  end
end
bury(key, id)
redis.call('HSET', key, unpack(ARGV, 11))
redis.call('PEXPIREAT', key, expires)
index_add(user, id, created, expires)
expire_at(id, user, expires)
record('created', id, user)
return {'created', unpack(evicted)}
"#;

/// `KEYS[1]` the session; `ARGV[5..]` its id, whether to record a `refreshed` event (`0`/`1`).
/// Returns the record (`packed`), or nil.
const TOUCH: &str = r#"
local f = live(KEYS[1])
if not f then return false end
touch(KEYS[1], ARGV[5], f)
if ARGV[6] == '1' then record('refreshed', ARGV[5], f.user) end
return packed(KEYS[1])
"#;

/// `KEYS[1]` the session; `ARGV[5..]` id, expected version (`''` for any), touch (`0`/`1`),
/// the counts of sets, removes and increments, the cap's most attributes and bytes (`''`
/// for no cap), the device fields to change as JSON (`''` for none), the keys the patch names
/// as a JSON array (for its event), how many writes the patch carries (the version grows by
/// that many: `PatchOptions::writes`), then set pairs, removed fields, increment pairs. Returns `{'applied',
/// record}`, `{'missing'}`, `{'mismatch', version}`, `{'rejected', field}` or
/// `{'too_large', 'attributes' | 'bytes'}`.
const PATCH: &str = r#"
local key, id = KEYS[1], ARGV[5]
local f = live(key)
if not f then return {'missing'} end
local version = string.format('%d', f.v)
if ARGV[6] ~= '' and ARGV[6] ~= version then return {'mismatch', version} end
local nset, nremove, nincr = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local at = 16
local sets = {}
for _ = 1, nset do
  table.insert(sets, ARGV[at]); table.insert(sets, ARGV[at + 1]); at = at + 2
end
local removes = {}
for _ = 1, nremove do table.insert(removes, ARGV[at]); at = at + 1 end
-- Increments first: HINCRBY does exact 64-bit arithmetic on the stored JSON text and refuses
-- a value that is not an integer, or an overflow. If the patch is refused after some, the ones
-- already done are put back as they were, so a refused patch writes nothing.
local done, sums = {}, {}
local function undo()
  for j = #done, 1, -1 do
    if done[j][2] then redis.call('HSET', key, done[j][1], done[j][2]) else redis.call('HDEL', key, done[j][1]) end
  end
end
for _ = 1, nincr do
  local field, by = ARGV[at], ARGV[at + 1]
  at = at + 2
  local old = redis.call('HGET', key, field)
  local sum = redis.pcall('HINCRBY', key, field, by)
  if type(sum) == 'table' and sum.err then
    undo()
    return {'rejected', field}
  end
  table.insert(done, {field, old})
  table.insert(sums, field); table.insert(sums, sum)
end
-- The cap, on the attributes as they would be, measured as compact JSON the way
-- `sessanger_core::encoded_size` does: `{}`, then `"key":value` per attribute (the `a:`
-- prefix's two bytes stand for the quotes, a quote or backslash in a key takes one more), a
-- colon each and a comma between two. The record keeps the count and the sum of those entries
-- in its field `s` (`n,b` in hexadecimal), so a patch costs O(patch): it adds and subtracts the
-- entries it touches, read with HSTRLEN (a JSON value is never empty, so 0 means absent). A
-- record without `s` (a new one, or one written whole by `replace`) is measured once. A patch
-- that only removes is never refused.
local function entry(field, length)
  local size = #field + 2 + length
  if string.find(field, '["\\]', 3) then
    local _, escapes = string.gsub(field, '["\\]', '')
    size = size + escapes
  end
  return size
end
local tracked = ARGV[11] ~= ''
local n, b
if tracked then
  local stored = redis.call('HGET', key, 's')
  if stored then
    local sn, sb = string.match(stored, '^(%x+),(%x+)$')
    n, b = tonumber(sn, 16), tonumber(sb, 16)
  end
  if n and b then
    for _, d in ipairs(done) do
      if d[2] then b = b - entry(d[1], #d[2]) else n = n + 1 end
      b = b + entry(d[1], redis.call('HSTRLEN', key, d[1]))
    end
    for _, field in ipairs(removes) do
      local old = redis.call('HSTRLEN', key, field)
      if old > 0 then n = n - 1; b = b - entry(field, old) end
    end
    for i = 1, #sets, 2 do
      local old = redis.call('HSTRLEN', key, sets[i])
      if old > 0 then b = b - entry(sets[i], old) else n = n + 1 end
      b = b + entry(sets[i], #sets[i + 1])
    end
  else
    local lengths = {}
    local fields = redis.call('HGETALL', key)
    -- Byte tests rather than `string.sub`: no string is made for a field that is not `a:...`.
    for i = 1, #fields, 2 do
      local field = fields[i]
      if string.byte(field, 1) == 97 and string.byte(field, 2) == 58 then lengths[field] = #fields[i + 1] end
    end
    for _, field in ipairs(removes) do lengths[field] = nil end
    for i = 1, #sets, 2 do lengths[sets[i]] = #sets[i + 1] end
    n, b = 0, 0
    for field, length in pairs(lengths) do
      n = n + 1
      b = b + entry(field, length)
    end
  end
  if nset > 0 or nincr > 0 then
    local bytes = 2
    if n > 0 then bytes = 1 + b end
    if n > tonumber(ARGV[11]) then undo(); return {'too_large', 'attributes'} end
    if bytes > tonumber(ARGV[12]) then undo(); return {'too_large', 'bytes'} end
  end
end
if #removes > 0 then redis.call('HDEL', key, unpack(removes)) end
if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
-- An increment wins over a set or remove of the same key, as `Session::apply` has it.
if #sums > 0 and (#sets > 0 or #removes > 0) then redis.call('HSET', key, unpack(sums)) end
if tracked then redis.call('HSET', key, 's', hex(n) .. ',' .. hex(b)) else redis.call('HDEL', key, 's') end
-- The device fields named replace the stored ones (`Device::merge`).
if ARGV[13] ~= '' then
  local device = cjson.decode(redis.call('HGET', key, 'd') or '{}')
  for name, value in pairs(cjson.decode(ARGV[13])) do device[name] = value end
  redis.call('HSET', key, 'd', cjson.encode(device))
end
f.v = f.v + tonumber(ARGV[15])
if ARGV[7] == '1' then touch(key, id, f) else store_meta(key, f) end
record('attributes_changed', id, f.user, 'k', ARGV[14])
return {'applied', packed(key)}
"#;

/// `KEYS[1]` the session; `ARGV[5..]` id, expected version (`''` for any), new absolute
/// deadline in ms (`''` keeps it), device JSON (`''` keeps it), the new attributes' keys as a
/// JSON array (for its event), then attribute field/value pairs. Returns `{'applied', record}`,
/// `{'missing'}` or `{'mismatch', version}`.
const REPLACE: &str = r#"
local key, id = KEYS[1], ARGV[5]
local f = live(key)
if not f then return {'missing'} end
local version = string.format('%d', f.v)
if ARGV[6] ~= '' and ARGV[6] ~= version then return {'mismatch', version} end
local stale = {}
for _, field in ipairs(redis.call('HKEYS', key)) do
  if string.sub(field, 1, 2) == 'a:' then table.insert(stale, field) end
end
if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
-- The attributes are written whole: the next patch measures them again.
redis.call('HDEL', key, 's')
if ARGV[8] ~= '' then redis.call('HSET', key, 'd', ARGV[8]) end
if #ARGV >= 10 then redis.call('HSET', key, unpack(ARGV, 10)) end
f.v = f.v + 1
if ARGV[7] == '' then
  store_meta(key, f)
else
  -- A new absolute deadline, earlier or later: the idle deadline is capped by it, and the
  -- native expiry and the expiry entry follow.
  f.x = tonumber(ARGV[7])
  f.e = math.min(f.l + f.i, f.x)
  store_meta(key, f)
  redis.call('PEXPIREAT', key, f.e)
  expire_at(id, f.user, f.e)
  extend(ukey(f.user), f.e)
end
record('attributes_changed', id, f.user, 'k', ARGV[9])
return {'applied', packed(key)}
"#;

/// `KEYS[1]` the old session, `KEYS[2]` the new one (same hash tag); `ARGV[5..]` old id,
/// new id. Returns `{'renamed', record}`, `{'missing'}` or `{'taken'}`.
const RENAME: &str = r#"
local old, new, oldid, newid = KEYS[1], KEYS[2], ARGV[5], ARGV[6]
local f = live(old)
if not f then return {'missing'} end
if live(new) then return {'taken'} end
bury(new, newid)
redis.call('RENAME', old, new)
index_rename(f.user, oldid, newid, f.c)
unexpire(oldid, f.user)
f.v = f.v + 1
touch(new, newid, f)
record('regenerated', newid, f.user, 'o', oldid)
return {'renamed', packed(new)}
"#;

/// `KEYS[1]` the session; `ARGV[5..]` its id, the reason of its deletion. Deletes it, live or
/// not (recording its deletion or its expiry), and returns its record (the caller tells live
/// from dead), or nil.
const DELETE: &str = r#"
local fields = packed(KEYS[1])
if not fields then return false end
if live(KEYS[1]) then
  local f = forget(KEYS[1], ARGV[5])
  record('deleted', ARGV[5], f.user, 'r', ARGV[6])
else
  bury(KEYS[1], ARGV[5])
end
return fields
"#;

/// `KEYS[1]` the user's sorted set; `ARGV[5..]` the page's start (`created_at` ms and id of
/// the last session of the page before, `''` for the first page), limit, the user. Returns
/// `{id, record, id, record, ...}` of at most `limit` live sessions after the start, oldest
/// first (by score, then id, as the index orders them). Reads the index in batches of `limit`
/// from the start's score, so a page costs O(page) plus the dead entries on the way (entries
/// whose record Redis already expired are pruned).
const LIST_USER: &str = r#"
local out, found, limit = {}, 0, tonumber(ARGV[7])
local after, after_id = tonumber(ARGV[5]), ARGV[6]
local only = redis.call('HGET', single, ARGV[8])
if only then
  local key = skey(only)
  local f = live(key)
  if not f then
    if redis.call('EXISTS', key) == 0 then redis.call('HDEL', single, ARGV[8]) end
    return out
  end
  if limit > 0 and not (after and (f.c < after or (f.c == after and only <= after_id))) then
    out = {only, packed(key)}
  end
  return out
end
local min = '-inf'
if after then min = ARGV[5] end
local offset = 0
while found < limit do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], min, '+inf', 'WITHSCORES', 'LIMIT', offset, limit)
  if #batch == 0 then break end
  offset = offset + #batch / 2
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    if not (after and tonumber(score) == after and id <= after_id) then
      local key = skey(id)
      if redis.call('EXISTS', key) == 0 then
        redis.call('ZREM', KEYS[1], id)
        offset = offset - 1
      elseif live(key) then
        table.insert(out, id)
        table.insert(out, packed(key))
        found = found + 1
        if found == limit then break end
      end
    end
  end
end
return out
"#;

/// `KEYS[1]` the user's sorted set; `ARGV[5]` the user. Deletes every session in the user's
/// index, live or not, and the index, recording the live ones' revocation and the dead ones'
/// expiry (those still in the expiry set: not reported yet). Returns the ids of those that
/// were live.
const DELETE_USER: &str = r#"
local out = {}
for _, id in ipairs(index_ids(ARGV[5])) do
  local key = skey(id)
  local alive = live(key)
  redis.call('DEL', key)
  local due = unexpire(id, ARGV[5])
  if alive then
    table.insert(out, id)
    record('deleted', id, ARGV[5], 'r', 'revoked')
  elseif due then
    record('expired', id, ARGV[5])
  end
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', single, ARGV[5])
return out
"#;

/// `KEYS` the shard's expiry sets; `ARGV[5]` the most entries to purge. Deletes due
/// sessions with their index entries, whether or not Redis already expired the record, and
/// returns `{id, user, id, user, ...}`.
const PURGE: &str = r#"
local out, left = {}, tonumber(ARGV[5])
for _, set in ipairs(KEYS) do
  if left == 0 then break end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, left)) do
    left = left - 1
    local id, user = expiry_entry(m)
    local key = skey(id)
    local f = live(key)
    if f then
      -- Not dead after all (no write leaves this behind, but a stale entry must not lose a
      -- live session): fix its deadline instead.
      expire_at(id, user, f.e)
    else
      redis.call('DEL', key)
      index_remove(user, id)
      unexpire(id, user)
      record('expired', id, user)
      table.insert(out, id)
      table.insert(out, user)
    end
  end
end
return out
"#;

/// `KEYS` the shard's expiry sets; `ARGV[5..]` a prefix, the most users to return.
/// Returns the distinct users of the shard's live sessions whose id starts with the prefix:
/// the first `limit` in byte order if there are more.
const FIND_USERS: &str = r#"
local prefix, limit, out, seen = ARGV[5], tonumber(ARGV[6]), {}, {}
for _, set in ipairs(KEYS) do
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', set, '(' .. now, '+inf')) do
    local _, user = expiry_entry(m)
    if string.sub(user, 1, #prefix) == prefix and not seen[user] then
      seen[user] = true
      table.insert(out, user)
    end
  end
end
if #out > limit then
  table.sort(out, bytes_before)
  for i = #out, limit + 1, -1 do out[i] = nil end
end
return out
"#;

/// `KEYS` the shard's expiry sets; `ARGV[5..]` the id to start after (`''`: from the
/// first), the most sessions to return. Returns `{id, record, id, record, ...}` of the
/// shard's live sessions after it, in byte order of their ids.
const SCAN_SHARD: &str = r#"
local after, limit, ids, seen, out = ARGV[5], tonumber(ARGV[6]), {}, {}, {}
for _, set in ipairs(KEYS) do
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', set, '(' .. now, '+inf')) do
    local id = expiry_entry(m)
    -- An entry an earlier version wrote to the unsplit set may also be in its part.
    if not seen[id] and (after == '' or bytes_before(after, id)) then
      seen[id] = true
      table.insert(ids, id)
    end
  end
end
table.sort(ids, bytes_before)
for _, id in ipairs(ids) do
  if #out == 2 * limit then break end
  local key = skey(id)
  if live(key) then
    table.insert(out, id)
    table.insert(out, packed(key))
  end
end
return out
"#;

/// `KEYS[1]` the service registry; `ARGV[1]` a service id, `ARGV[2]` its record. Replaces
/// the record if there is one (Redis has no `HSET` only-if-present). Returns 1 if it did, 0 if
/// there was none. Called without the prelude: it touches no session.
const REPLACE_SERVICE: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// In how many parts each shard's expiry set is split (the prelude says why). Part of the
/// stored layout: another number would leave entries where no script looks.
pub(crate) const EXPIRY_PARTS: u8 = 4;

/// `script` with the layout's numbers in place of their names: `ID_LEN`, the length of the
/// session ids in the unsplit expiry set's entries `<session id><user id>`, and `EXPIRY_PARTS`.
fn with_layout(script: &str) -> String {
    script
        .replace("ID_LEN", &sessanger_core::SessionId::LONG_LEN.to_string())
        .replace("EXPIRY_PARTS", &EXPIRY_PARTS.to_string())
}

/// The scripts, hashed once; [`Script::invoke_async`] sends `EVALSHA` and loads the script on
/// a `NOSCRIPT` answer (once per server, or after a restart).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) touch: Script,
    pub(crate) patch: Script,
    pub(crate) replace: Script,
    pub(crate) rename: Script,
    pub(crate) delete: Script,
    pub(crate) list_user: Script,
    pub(crate) delete_user: Script,
    pub(crate) purge: Script,
    pub(crate) find_users: Script,
    pub(crate) scan_shard: Script,
    pub(crate) replace_service: Script,
    pub(crate) log: LogScripts,
}

impl Scripts {
    /// The scripts of a store whose log keeps about `max_events` between two trims.
    pub(crate) fn new(max_events: NonZeroU64) -> Self {
        let prelude = format!("{}{PRELUDE}", append(max_events));
        let script = |body: &str| Script::new(&with_layout(&format!("{prelude}{body}")));
        Scripts {
            create: script(CREATE),
            touch: script(TOUCH),
            patch: script(PATCH),
            replace: script(REPLACE),
            rename: script(RENAME),
            delete: script(DELETE),
            list_user: script(LIST_USER),
            delete_user: script(DELETE_USER),
            purge: script(PURGE),
            find_users: script(FIND_USERS),
            scan_shard: script(SCAN_SHARD),
            replace_service: Script::new(REPLACE_SERVICE),
            log: LogScripts::new(max_events),
        }
    }
}
