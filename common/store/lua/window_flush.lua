-- window_flush: make one conversation's open window due now (lull flush --conversation).
--
-- KEYS[1]  due zset          {ns}:{s}:due
-- KEYS[2]  conversation key  {ns}:{s}:c:<conv>   (the window, window_layout.lua)
-- ARGV[1]  conversation
--
-- Returns 1 when the conversation had an open window, 0 otherwise.
--
-- The window's header takes deadline now and close reason flush (5), as a flush kind does in
-- window_apply.lua: the batch says it was flushed by hand (close_reason "flush"), and a
-- message that joins before the closer runs keeps the window due instead of moving its
-- deadline back to the quiet gap.

local now = clock_ms()
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local value = redis.call('GET', KEYS[2])
if value then
  local first_t, last_t, opened_at, deadline, count, bytes, arrivals, seen_len =
    struct.unpack(HDR, value)
  if deadline > 0 then
    -- SETRANGE rewrites the header alone: the records are not copied, the key keeps no TTL.
    redis.call('SETRANGE', KEYS[2], 0,
      struct.pack(HDR, first_t, last_t, opened_at, now, count, bytes, arrivals, seen_len, FLUSH))
  end
end
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 1
