-- deliver_mark: finish a batch in one atomic step: delivered seq, ack, history, cleanup.
--
-- KEYS[1]  conversation state {ns}:{s}:cs:<conversation>   (fields: common/store/keys.py)
-- KEYS[2]  outbound stream    {ns}:{s}:out
-- KEYS[3]  send state         {ns}:{s}:send:<batch_id>
-- KEYS[4]  history list       {ns}:{s}:h:<conversation>
-- KEYS[5]  0.1 seq hash        {ns}:{s}:seq         (the upgrade: legacy.lua,
-- KEYS[6]  0.1 delivered hash  {ns}:{s}:delivered    prepended, moves a conversation's
-- KEYS[7]  0.1 dead-seq hash   {ns}:{s}:deadseq      fields from these; batch_id -> entry
-- KEYS[8]  0.1 dead batches    {ns}:{s}:deadbatch    marks are read and cleared here)
-- KEYS[9]  last outcomes       {ns}:{s}:o:<conversation>  (lull conversation; newest first)
-- KEYS[10] in-flight mark      {ns}:{s}:inflight:<conversation>  (sender/sends/marks.py)
-- ARGV[1]  group            ARGV[2]  entry id       ARGV[3]  conversation
-- ARGV[4]  seq              ARGV[5]  history length to keep (0: keep none)
-- ARGV[6]  conversation ttl s                       ARGV[7]  done | dead
-- ARGV[8]  batch id         ARGV[9]  outcome record (JSON; '' none)
-- ARGV[10] outcomes to keep (0: none)               ARGV[11..] history items (JSON) to
--          append, oldest first
--
-- Returns the delivered seq after this call. It only moves forward, one finished batch at
-- a time: a batch dead-lettered before its predecessor finished is remembered (field
-- deadseq:<seq>) and counted when its turn comes, so the predecessor is never skipped as a
-- duplicate.
--
-- deadbatch:<seq> remembers a batch that finished as dead, so that a replay of it (`lull
-- dead replay`, a new entry) is delivered although its seq is finished; delivering it
-- removes the mark, so a second replay is skipped as a duplicate. The mark names the entry
-- that died: that entry itself, read again (its ack failed), is not a replay. A dead step for
-- a seq that was finished before keeps a mark (a replay that failed again: now naming the
-- replay's entry) and makes none (a stray copy of a delivered batch).
--
-- With no state hash (the state expired: this batch is older than every retry horizon) a
-- new life starts below which this batch's seq lies: nothing is marked delivered for it,
-- and the next batch of the conversation is in order (conversation_life.lua). Every call
-- refreshes the expiry of the state and of the history.

local state, conversation, seq = KEYS[1], ARGV[3], tonumber(ARGV[4])
local legacy_dead_batches, batch_id = KEYS[8], ARGV[8]
ensure_life(state, conversation, clock_ms(), KEYS[5], KEYS[6], KEYS[7])
local previous = tonumber(redis.call('HGET', state, 'delivered'))
local top = previous
local dead = ARGV[7] == 'dead'
local dead_batch = 'deadbatch:' .. ARGV[4]
-- A 0.1 mark of this batch (by batch id) counts as this life's own, and moves here.
local marked = redis.call('HEXISTS', state, dead_batch) == 1 or
  legacy_take_dead_batch(legacy_dead_batches, batch_id)
if dead and seq > previous + 1 then
  redis.call('HSET', state, 'deadseq:' .. ARGV[4], 1, dead_batch, ARGV[2])
else
  if seq > top then top = seq end
  while redis.call('HDEL', state, 'deadseq:' .. string.format('%d', top + 1)) == 1 do
    top = top + 1
  end
  if top > previous then
    redis.call('HSET', state, 'delivered', string.format('%d', top))
  end
  if not dead then
    redis.call('HDEL', state, dead_batch)
  elseif seq > previous or marked then
    redis.call('HSET', state, dead_batch, ARGV[2])
  end
end
redis.call('EXPIRE', state, ARGV[6])
-- The XACK is here, in the same atomic step as the delivered mark, although the consumer
-- loop acks the entry again when the delivery's outcome comes back (a no-op then): a
-- delivery still running at a stop finishes after the loop has left, and without this ack
-- its entry would stay pending until another replica claimed it and found it delivered.
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[3])
local keep = tonumber(ARGV[5])
if keep > 0 and #ARGV > 10 then
  redis.call('RPUSH', KEYS[4], unpack(ARGV, 11))
  redis.call('LTRIM', KEYS[4], -keep, -1)
end
redis.call('EXPIRE', KEYS[4], ARGV[6])
local outcomes_kept = tonumber(ARGV[10])
if outcomes_kept > 0 and ARGV[9] ~= '' then
  redis.call('LPUSH', KEYS[9], ARGV[9])
  redis.call('LTRIM', KEYS[9], 0, outcomes_kept - 1)
  redis.call('EXPIRE', KEYS[9], ARGV[6])
end
-- The echoes of this batch's sends are told by the mids remembered beside this step.
redis.call('DEL', KEYS[10])
return top
