-- deliver_mark: finish a batch in one atomic step: delivered seq, ack, history, cleanup.
--
-- KEYS[1]  delivered hash   {ns}:{s}:delivered   (conversation -> last finished seq)
-- KEYS[2]  outbound stream  {ns}:{s}:out
-- KEYS[3]  send state       {ns}:{s}:send:<batch_id>
-- KEYS[4]  history list     {ns}:{s}:h:<conversation>
-- KEYS[5]  dead seqs hash   {ns}:{s}:deadseq     ("<conversation>|<seq>" -> 1)
-- KEYS[6]  dead batches     {ns}:{s}:deadbatch   (batch_id -> id of the entry that died)
-- ARGV[1]  group            ARGV[2]  entry id       ARGV[3]  conversation
-- ARGV[4]  seq              ARGV[5]  history length to keep (0: keep none)
-- ARGV[6]  history ttl s    ARGV[7]  done | dead    ARGV[8]  batch id
-- ARGV[9..] history items (JSON) to append, oldest first
--
-- Returns the delivered seq after this call. It only moves forward, one finished batch at
-- a time: a batch dead-lettered before its predecessor finished is remembered in KEYS[5]
-- and counted when its turn comes, so the predecessor is never skipped as a duplicate.
--
-- KEYS[6] remembers the batches that finished as dead, so that a replay of one (`lull dead
-- replay`, a new entry) is delivered although its seq is finished; delivering it removes the
-- mark, so a second replay is skipped as a duplicate. The mark names the entry that died:
-- that entry itself, read again (its ack failed), is not a replay. A dead step for a seq that
-- was finished before keeps a mark (a replay that failed again: now naming the replay's
-- entry) and makes none (a stray copy of a delivered batch).

local conversation, seq = ARGV[3], tonumber(ARGV[4])
local previous = tonumber(redis.call('HGET', KEYS[1], conversation) or '0')
local top = previous
local dead = ARGV[7] == 'dead'
if dead and seq > previous + 1 then
  redis.call('HSET', KEYS[5], conversation .. '|' .. seq, 1)
  redis.call('HSET', KEYS[6], ARGV[8], ARGV[2])
else
  if seq > top then top = seq end
  while redis.call('HDEL', KEYS[5], conversation .. '|' .. (top + 1)) == 1 do
    top = top + 1
  end
  if top > previous then
    redis.call('HSET', KEYS[1], conversation, top)
  end
  if not dead then
    redis.call('HDEL', KEYS[6], ARGV[8])
  elseif seq > previous or redis.call('HEXISTS', KEYS[6], ARGV[8]) == 1 then
    redis.call('HSET', KEYS[6], ARGV[8], ARGV[2])
  end
end
-- The XACK is here, in the same atomic step as the delivered mark, although the consumer
-- loop acks the entry again when the delivery's outcome comes back (a no-op then): a
-- delivery still running at a stop finishes after the loop has left, and without this ack
-- its entry would stay pending until another replica claimed it and found it delivered.
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[3])
local keep = tonumber(ARGV[5])
if keep > 0 and #ARGV > 8 then
  redis.call('RPUSH', KEYS[4], unpack(ARGV, 9))
  redis.call('LTRIM', KEYS[4], -keep, -1)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
return top
