-- rate_use: record that a unit of a rate limiter is used now, unless the last `most` uses all
-- fall within the span before now; then say how long until the oldest of them leaves it.
--
-- KEYS[1]  use log: the Redis-clock ms of the limiter's last `most` uses, newest first
-- ARGV[1]  most: the uses any span may hold (N, or N + B - 1 with a burst)
-- ARGV[2]  span ms (PERIOD and a margin: sender/rates/rate.py)
-- ARGV[3]  now ms, or "" for the Redis clock (tests pass a virtual clock)
--
-- Returns the wait in ms: 0 when the use was recorded (the caller sends now), else how long
-- until a use fits (rounded up; nothing was recorded).
--
-- Why a log beside the GCRA slots (rate_limit.lua): a slot bounds when a unit may be used,
-- not when it is. A replica that stalls past its callers' slots (a busy host) wakes them
-- all at once, and the slots after them come on time: 209 sends in one second at 200/s.
-- The log counts the uses themselves, on the one Redis clock, whatever the replicas did.

local key = KEYS[1]
local most, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] == '' then now = clock_ms() else now = tonumber(ARGV[3]) end

if redis.call('LLEN', key) >= most then
  local oldest = tonumber(redis.call('LINDEX', key, most - 1))
  if oldest ~= nil and oldest + span > now then
    return oldest + span - now
  end
end
redis.call('LPUSH', key, string.format('%.0f', now))
redis.call('LTRIM', key, 0, most - 1)
-- Uses older than the span count for nothing: the log expires with its newest one.
redis.call('PEXPIRE', key, span)
return 0
