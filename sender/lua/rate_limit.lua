-- rate_limit: take cost units from one rate limiter (GCRA), or say how long until they could be.
--
-- KEYS[1]  limiter key   (its theoretical arrival time, TAT: Redis-clock microseconds, a string)
-- ARGV[1]  emission interval us (period / count, rounded up)
-- ARGV[2]  burst                  ARGV[3]  cost (1 <= cost <= burst)
-- ARGV[4]  now ms, or "" for the Redis clock (tests pass a virtual clock)
--
-- Returns 0 when cost units were taken, else the wait in ms (rounded up) until they could be;
-- a refused call takes and writes nothing, so a flood of refusals cannot push the wait out.
--
-- The state is one number, the TAT: the time the limiter is back at rest. A request of cost c
-- fits when TAT + c * interval - burst * interval <= now. The TAT is kept in microseconds,
-- not in units of the interval, so a key keeps its meaning when the configured rate changes;
-- whole microseconds keep the sums exact in a double until the year 2255.

local key = KEYS[1]
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local now
if ARGV[4] == '' then
  -- One clock for every replica: theirs may drift, Redis's is the same for all of them.
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
else
  now = tonumber(ARGV[4]) * 1000
end

local tat = tonumber(redis.call('GET', key) or '') or now
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allowed_at = new_tat - burst * interval
if allowed_at > now then
  return math.ceil((allowed_at - now) / 1000)
end
-- Once the TAT is past, the key says nothing a missing key would not: let it expire then. The
-- extra second spares a virtual clock that runs behind Redis's from losing state early.
redis.call('SET', key, string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000) + 1000))
return 0
