-- window_flush: make one conversation's open window due now (lull flush --conversation).
--
-- KEYS[1]  due zset   {ns}:{s}:due
-- ARGV[1]  conversation
--
-- Returns 1 when the conversation had an open window, 0 otherwise. The closer then emits it
-- with its own close reason (the flush is an operator's act, not the user's).

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
  return 1
end
return 0
