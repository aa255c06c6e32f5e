"""
The Lua scripts of the Redis limiter: admission, settlement, lease renewal
and the slot count, each one atomic step and one round trip.

They follow `zerfoo_cloud.buckets` operation by operation: Lua numbers are
IEEE doubles like Python floats, levels travel and are stored as ``%.17g``
(exact round trips both ways), so Redis reaches the very floats that
`zerfoo_cloud.buckets.take_all` and `zerfoo_cloud.buckets.adjust_bucket`
reach. A bucket is one string, ``"<level> <stamp>"``.

Every script reads the clock from Redis (``TIME``) unless ``ARGV[1]`` holds
a time, which only a store built for tests sends. Redis 7 replicates a
script by its effects, so a script that reads ``TIME`` replicates exactly.
"""

from __future__ import annotations

__all__ = ["ADMIT", "RENEW", "SETTLE", "SLOTS_IN_USE"]

#: Shared by every script: the clock, and a bucket's refill
#: (`zerfoo_cloud.buckets.refill`) and write.
_COMMON = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local expire = ARGV[2] == '1'

local function refill(raw, capacity, rate)
  if not raw then
    return capacity, now
  end
  local cut = string.find(raw, ' ', 1, true)
  local level = tonumber(string.sub(raw, 1, cut - 1))
  local stamp = tonumber(string.sub(raw, cut + 1))
  local elapsed = now - stamp
  if elapsed > 0 then
    level = level + elapsed * rate
    stamp = now
  end
  if level < capacity then
    return level, stamp
  end
  return capacity, stamp
end

-- Store a bucket; with expiry on, it lives until it would be full again
-- (then it reads as never written: full), plus a second.
local function store(key, level, stamp, capacity, rate)
  local value = string.format('%.17g %.17g', level, stamp)
  if expire and rate > 0 then
    local ms = math.ceil((capacity - level) / rate * 1000) + 1000
    if ms < 1e15 then
      redis.call('SET', key, value, 'PX', string.format('%d', ms))
      return
    end
  end
  redis.call('SET', key, value)
end
"""

#: KEYS: the n buckets, then the m lease sets of the slots asked.
#: ARGV: clock, expire, n, m, lease seconds, lease id, then each slot's
#: limit, then capacity, rate and cost of each bucket.
#: Returns {slot_free, allowed, level..., count...}: levels as strings,
#: then each lease set's leases after the call.
ADMIT = (
    _COMMON
    + """
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
local base = 6 + m
local levels, stamps = {}, {}
local enough = true
for i = 1, n do
  local at = base + 3 * (i - 1)
  local capacity, rate, cost = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local level, stamp = refill(redis.call('GET', KEYS[i]), capacity, rate)
  if level + 1e-6 < cost then
    enough = false
  end
  levels[i], stamps[i] = level, stamp
end
local out = {1, 0}
local counts = {}
for j = 1, m do
  local leases = KEYS[n + j]
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', string.format('%.17g', now))
  counts[j] = redis.call('ZCARD', leases)
  if counts[j] >= tonumber(ARGV[6 + j]) then
    out[1] = 0
    enough = false
  end
end
if enough then
  out[2] = 1
  for i = 1, n do
    local at = base + 3 * (i - 1)
    local capacity, rate, cost = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    levels[i] = levels[i] - cost
    store(KEYS[i], levels[i], stamps[i], capacity, rate)
  end
  local lease = tonumber(ARGV[5])
  for j = 1, m do
    local leases = KEYS[n + j]
    redis.call('ZADD', leases, string.format('%.17g', now + lease), ARGV[6])
    counts[j] = counts[j] + 1
    if expire then
      redis.call('PEXPIRE', leases, math.ceil(lease * 1000) + 1000)
    end
  end
end
for i = 1, n do
  out[i + 2] = string.format('%.17g', levels[i])
end
for j = 1, m do
  out[n + 2 + j] = counts[j]
end
return out
"""
)

#: KEYS: the n buckets, then the m lease sets leases are given back to.
#: ARGV: clock, expire, n, m, then the m lease ids, then capacity, rate and
#: delta of each bucket. Returns the levels, as strings.
SETTLE = (
    _COMMON
    + """
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
local base = 4 + m
local out = {}
for i = 1, n do
  local at = base + 3 * (i - 1)
  local capacity, rate, delta = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local level, stamp = refill(redis.call('GET', KEYS[i]), capacity, rate)
  if delta ~= 0 then
    level = level + delta
    if delta > 0 and level > capacity then
      level = capacity
    end
    store(KEYS[i], level, stamp, capacity, rate)
  end
  out[i] = string.format('%.17g', level)
end
for j = 1, m do
  redis.call('ZREM', KEYS[n + j], ARGV[4 + j])
end
return out
"""
)

#: KEYS: one lease set. ARGV: clock, expire, lease seconds, lease ids.
#: Returns the ids that are gone (expired, or never there); an expired
#: lease is never renewed.
RENEW = (
    _COMMON
    + """
local lease = tonumber(ARGV[3])
local expiry = string.format('%.17g', now + lease)
local gone = {}
for i = 4, #ARGV do
  local held = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if held and tonumber(held) > now then
    redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
  else
    -- Expired (purged or not): its slot was given back, never revived.
    redis.call('ZREM', KEYS[1], ARGV[i])
    gone[#gone + 1] = ARGV[i]
  end
end
if expire and #gone < #ARGV - 3 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
end
return gone
"""
)

#: KEYS: one lease set. ARGV: clock, expire. Returns the leases not expired.
SLOTS_IN_USE = (
    _COMMON
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.17g', now), '+inf')
"""
)
