-- Redis memory per session of the Redis store's layout, and of layouts it could take instead:
-- writes `ARGV[1]` sessions numbered from `ARGV[3]` the way the store would (a record, its
-- native expiry, its expiry entry, its user's field in the shard's `single` hash), changed by
-- the letters of `ARGV[2]` (`-` for none):
--   S1 each shard's expiry set in one key, as before the store split it in 4 (`S<n>`: n keys)
--   N  no native expiry on the record (the reaper's sweep would be what frees it)
--   I  the expiry entry is the session id alone (today `<id><user>`)
--   L  session ids of 43 characters (244 random bits), as earlier versions (and the tower
--      adapter) make them, instead of 24 (132)
--   E  user ids like e-mail addresses, 29 bytes or more (`first.last-<n>@example.com`)
--   C  a compact record: the times in base 64, the user in the same value, attribute
--      fields without the `a:` prefix (metadata under a control character no attribute
--      key may hold): a listpack of 128 bytes where today's takes 160
-- The sessions are the load harness's fill: user `fill-<n>`, its four attributes, an hour's
-- idle TTL. Not the store's code: an experiment on what the store writes (`BENCHMARKS.md`,
-- "What 400 B a session would take"). Per variant, on a database nothing else uses (the tests
-- take 0, the load harness 13-15):
--   redis-cli -n 9 flushdb; before=$(redis-cli -n 9 info memory | grep '^used_memory:')
--   for s in $(seq 0 100000 900000); do
--     redis-cli -n 9 eval "$(cat benches/load/layouts.lua)" 0 100000 NI $s; done
--   then `used_memory` again; the difference over 10⁶.
local n, variant, first = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
local function has(letter) return string.find(variant, letter, 1, true) ~= nil end
local split = tonumber(string.match(variant, 'S(%d)') or '4')
-- Ids as `SessionId::generate_for` makes them: 24 base64url characters (or 43), the first two
-- the shard tag. Random enough for a layout (Lua's generator), not for a session.
local function id()
  local chars = {}
  for i = 1, has('L') and 43 or 24 do
    local k = math.random(1, 64)
    chars[i] = string.sub(alphabet, k, k)
  end
  return table.concat(chars)
end
local now = tonumber(redis.call('TIME')[1]) * 1000
for i = first, first + n - 1 do
  local sid, user = id(), (has('E') and 'first.last-' .. i .. '@example.com' or 'fill-' .. i)
  local base = '{bench:' .. string.sub(sid, 1, 2) .. '}'
  local key = base .. ':s:' .. sid
  local expires = now + 3600000 + math.random(0, 1000)
  if has('C') then
    redis.call('HSET', key, '\1', 'Bj8kq2D,dnA,0,FJcA,dnA,1,' .. user,
      'theme', '"dark"', 'lang', '"en-GB"', 'cart_items', '3', 'csrf', '"q8Xl2vK1ZbQe9rT0wYh3sA"')
  else
    redis.call('HSET', key, 'm', '18f0a1b2c3d,36ee80,0,5265c00,36ee80,1', 'u', user,
      'a:theme', '"dark"', 'a:lang', '"en-GB"', 'a:cart_items', '3', 'a:csrf', '"q8Xl2vK1ZbQe9rT0wYh3sA"')
  end
  if not has('N') then redis.call('PEXPIREAT', key, expires) end
  redis.call('HSET', base .. ':single', user, sid)
  -- The parts' entries are `<id>\31<user>`; the unsplit set's (S1), of earlier versions, `<id><user>`.
  local xkey, entry = base .. ':x', sid .. '\31' .. user
  if split > 1 then xkey = xkey .. (string.byte(sid, 3) % split) else entry = sid .. user end
  redis.call('ZADD', xkey, expires, has('I') and sid or entry)
end
return n
