-- deliver_check: may this consumer still work on this batch entry? Run before the handler
-- and before each Graph API send, so a replica that stalled past claim_idle_ms (GC pause,
-- SIGSTOP, a slow bot) does not send what the replica that claimed the entry sends too.
--
-- KEYS[1]  outbound stream     {ns}:{s}:out
-- KEYS[2]  conversation state  {ns}:{s}:cs:<conversation>  (field deadbatch:<seq>)
-- KEYS[3]  0.1 dead batches    {ns}:{s}:deadbatch          (batch_id -> entry; upgrade:
--                                                          legacy.lua, prepended)
-- KEYS[4]  0.1 delivered hash  {ns}:{s}:delivered          (conversation -> seq; upgrade)
-- KEYS[5]  0.1 seq hash        {ns}:{s}:seq                (conversation -> seq; upgrade)
-- KEYS[6]  pause (optional)    {ns}:{s}:pause:<conversation> (exists exactly while paused)
-- ARGV[1]  group            ARGV[2]  entry id    ARGV[3]  consumer    ARGV[4]  batch id
-- ARGV[5]  seq              ARGV[6]  conversation
--
-- Returns {owned, marked, idle_ms, paused, delivered, user_last_ms}: owned is 1 when the entry is pending with this consumer
-- (0 when another consumer claimed it or it was acknowledged); marked is 1 when the batch
-- finished as dead in another entry and was not delivered since: this entry is a replay of
-- it, to be delivered; idle_ms is how long the entry has been idle (0 when not owned): no
-- replica can claim it before claim_idle_ms - idle_ms from now; paused is 1 when KEYS[6] is
-- given and the conversation is paused (a human has it), 0 otherwise. The pause rides this
-- round trip: asked before the bot is called and right before a batch's first send.
-- delivered is the conversation's newest finished seq: from its state hash, else (a
-- conversation 0.1 knew that 0.2 has not written yet) 0.1's delivered field, 0 when 0.1 had
-- only its seq; -1 when there is no state at all (it expired: common/lifetime.py). Here and
-- not in reads beside the script: one command a batch instead of four, which the sender's
-- throughput feels.
--
-- user_last_ms is the state's `user_last_ms` (the user's newest message in an emitted batch,
-- where Meta's 24-hour reply window starts), 0 when unknown.
--
-- A script and not a bare XPENDING: its reply then rides the sender's shared pipelines
-- (redis-py cannot parse the range form of XPENDING there).

local owned, idle_ms = 0, 0
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if pending[1] ~= nil and pending[1][2] == ARGV[3] then
  owned, idle_ms = 1, pending[1][3]
end
local marked = 0
local died = redis.call('HGET', KEYS[2], 'deadbatch:' .. ARGV[5]) or
  legacy_dead_batch(KEYS[3], ARGV[4])
if died and died ~= ARGV[2] then
  marked = 1
end
local paused = 0
if KEYS[6] ~= nil then
  paused = redis.call('EXISTS', KEYS[6])
end
local delivered = redis.call('HGET', KEYS[2], 'delivered') or
  legacy_delivered(KEYS[4], KEYS[5], ARGV[6]) or '-1'
local user_last_ms = redis.call('HGET', KEYS[2], 'user_last_ms') or '0'
return {owned, marked, idle_ms, paused, delivered, user_last_ms}
