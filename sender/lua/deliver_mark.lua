-- deliver_mark: finish a batch in one atomic step: delivered seq, ack, history, cleanup.
--
-- KEYS[1]  delivered hash   {ns}:{s}:delivered   (conversation -> last finished seq)
-- KEYS[2]  outbound stream  {ns}:{s}:out
-- KEYS[3]  send state       {ns}:{s}:send:<batch_id>
-- KEYS[4]  history list     {ns}:{s}:h:<conversation>
-- KEYS[5]  dead seqs hash   {ns}:{s}:deadseq     ("<conversation>|<seq>" -> 1)
-- ARGV[1]  group            ARGV[2]  entry id       ARGV[3]  conversation
-- ARGV[4]  seq              ARGV[5]  history length to keep (0: keep none)
-- ARGV[6]  history ttl s    ARGV[7]  done | dead
-- ARGV[8..] history items (JSON) to append, oldest first
--
-- Returns the delivered seq after this call. It only moves forward, one finished batch at
-- a time: a batch dead-lettered before its predecessor finished is remembered in KEYS[5]
-- and counted when its turn comes, so the predecessor is never skipped as a duplicate.

local conversation, seq = ARGV[3], tonumber(ARGV[4])
local previous = tonumber(redis.call('HGET', KEYS[1], conversation) or '0')
local top = previous
if ARGV[7] == 'dead' and seq > previous + 1 then
  redis.call('HSET', KEYS[5], conversation .. '|' .. seq, 1)
else
  if seq > top then top = seq end
  while redis.call('HDEL', KEYS[5], conversation .. '|' .. (top + 1)) == 1 do
    top = top + 1
  end
  if top > previous then
    redis.call('HSET', KEYS[1], conversation, top)
  end
end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[3])
local keep = tonumber(ARGV[5])
if keep > 0 and #ARGV > 7 then
  redis.call('RPUSH', KEYS[4], unpack(ARGV, 8))
  redis.call('LTRIM', KEYS[4], -keep, -1)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
return top
