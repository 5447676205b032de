-- deliver_check: may this consumer still work on this batch entry? Run before the handler
-- and before each Graph API send, so a replica that stalled past claim_idle_ms (GC pause,
-- SIGSTOP, a slow bot) does not send what the replica that claimed the entry sends too.
--
-- KEYS[1]  outbound stream     {ns}:{s}:out
-- KEYS[2]  conversation state  {ns}:{s}:cs:<conversation>  (field deadbatch:<seq>)
-- KEYS[3]  0.1 dead batches    {ns}:{s}:deadbatch          (batch_id -> entry; upgrade)
-- KEYS[4]  pause (optional)    {ns}:{s}:pause:<conversation> (exists exactly while paused)
-- ARGV[1]  group            ARGV[2]  entry id    ARGV[3]  consumer    ARGV[4]  batch id
-- ARGV[5]  seq
--
-- Returns {owned, marked, idle_ms, paused}: owned is 1 when the entry is pending with this consumer
-- (0 when another consumer claimed it or it was acknowledged); marked is 1 when the batch
-- finished as dead in another entry and was not delivered since: this entry is a replay of
-- it, to be delivered; idle_ms is how long the entry has been idle (0 when not owned): no
-- replica can claim it before claim_idle_ms - idle_ms from now; paused is 1 when KEYS[4] is
-- given and the conversation is paused (a human has it), 0 otherwise. The pause rides this
-- round trip: asked before the bot is called and right before a batch's first send.
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
  redis.call('HGET', KEYS[3], ARGV[4])
if died and died ~= ARGV[2] then
  marked = 1
end
local paused = 0
if KEYS[4] ~= nil then
  paused = redis.call('EXISTS', KEYS[4])
end
return {owned, marked, idle_ms, paused}
