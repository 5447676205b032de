-- rate_limit: take cost units of one rate limiter (GCRA) now, or reserve them at a slot
-- within the horizon, or say how long until they could be taken.
--
-- KEYS[1]  limiter key   (its theoretical arrival time, TAT: Redis-clock microseconds, a string)
-- ARGV[1]  emission interval us (period / count and 1%, rounded up: sender/rates/rate.py)
-- ARGV[2]  burst                  ARGV[3]  cost (1 <= cost <= burst)
-- ARGV[4]  now ms, or "" for the Redis clock (tests pass a virtual clock)
-- ARGV[5]  horizon us: how far ahead a slot may be reserved (0: take now or not at all)
--
-- Returns {taken, wait_ms}. taken = 1: the units are the caller's, to use wait_ms from now
-- (0: at once; else its reserved slot, rounded up to a whole ms so it is never early).
-- taken = 0: nothing was taken or written (a flood of refusals cannot push the wait out);
-- wait_ms (rounded up) is how long until the units could be taken.
--
-- The state is one number, the TAT: the time the limiter is back at rest. A request of cost c
-- fits at allowed_at = TAT + c * interval - burst * interval. A reservation moves the TAT on
-- from the TAT, not from now: slots are exactly one interval apart however late their callers
-- come back, so a busy limiter runs at its rate, never below it. The TAT is kept in
-- microseconds, not in units of the interval, so a key keeps its meaning when the configured
-- rate changes; whole microseconds keep the sums exact in a double until the year 2255.

local key = KEYS[1]
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon = tonumber(ARGV[5])

local now
if ARGV[4] == '' then
  -- One clock for every replica: theirs may drift, Redis's is the same for all of them.
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
else
  now = tonumber(ARGV[4]) * 1000
end

local tat = tonumber(redis.call('GET', key) or '') or now
-- A limiter idle past its TAT is at rest: the full burst is back, and no more than that.
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allowed_at = new_tat - burst * interval
local wait = allowed_at - now
if wait > horizon then
  return {0, math.ceil(wait / 1000)}
end
-- Once the TAT is past, the key says nothing a missing key would not: let it expire then. The
-- extra second spares a virtual clock that runs behind Redis's from losing state early.
redis.call('SET', key, string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000) + 1000))
if wait <= 0 then
  return {1, 0}
end
return {1, math.ceil(wait / 1000)}
