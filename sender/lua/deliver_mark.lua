-- deliver_mark: finish a batch in one atomic step: delivered seq, ack, history, cleanup.
--
-- KEYS[1]  delivered hash   {ns}:{s}:delivered   (conversation -> last finished seq)
-- KEYS[2]  outbound stream  {ns}:{s}:out
-- KEYS[3]  send state       {ns}:{s}:send:<batch_id>
-- KEYS[4]  history list     {ns}:{s}:h:<conversation>
-- ARGV[1]  group            ARGV[2]  entry id       ARGV[3]  conversation
-- ARGV[4]  seq              ARGV[5]  history length to keep (0: keep none)
-- ARGV[6]  history ttl s    ARGV[7..] history items (JSON) to append, oldest first
--
-- Returns the delivered seq before this call. The seq only moves forward: a stale replica
-- that finishes an older batch late cannot move it back.

local previous = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0')
local seq = tonumber(ARGV[4])
if seq > previous then
  redis.call('HSET', KEYS[1], ARGV[3], seq)
end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[3])
local keep = tonumber(ARGV[5])
if keep > 0 and #ARGV > 6 then
  redis.call('RPUSH', KEYS[4], unpack(ARGV, 7))
  redis.call('LTRIM', KEYS[4], -keep, -1)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
return previous
