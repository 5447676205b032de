-- api_accept: a message the send API accepted joins its conversation's order, in one
-- atomic step: the Idempotency-Key is looked up (a repeated key answers the first message's
-- id, and nothing else happens), the conversation's next seq is taken, the message is
-- appended to the shard's outbound stream like a batch (the sender delivers it in seq order,
-- after every batch closed before it), its state record is written as queued, and the key
-- is remembered.
--
-- KEYS[1]  idempotency key    {ns}:{s}:apikey:<conversation>\x1f<key>
-- KEYS[2]  message record     {ns}:{s}:api:<message id>
-- KEYS[3]  conversation state {ns}:{s}:cs:<conversation>   (fields: common/store/keys.py)
-- KEYS[4]  outbound stream    {ns}:{s}:out
-- KEYS[5]  pause              {ns}:{s}:pause:<conversation>
-- KEYS[6]  0.1 seq hash        {ns}:{s}:seq         (the upgrade: legacy.lua, prepended)
-- KEYS[7]  0.1 delivered hash  {ns}:{s}:delivered
-- KEYS[8]  0.1 dead-seq hash   {ns}:{s}:deadseq
-- ARGV[1]  message id       ARGV[2]  conversation
-- ARGV[3]  the entry's JSON before its seq: '{"batch_id":"…"'
-- ARGV[4]  the entry's JSON after its seq:  ',"platform":…}'
-- ARGV[5]  idempotency ttl s (the record lives as long)
-- ARGV[6]  conversation ttl s
-- ARGV[7]  1: refuse while the conversation is paused ("as": "bot" without force)
--
-- Returns {message id, status}: status 1 accepted now, 0 the key accepted it before (the
-- id is the first message's), 2 refused: the conversation is paused (nothing written).

local existing = redis.call('GET', KEYS[1])
if existing then
  return {existing, 0}
end
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then
  return {'', 2}
end
local state, conversation = KEYS[3], ARGV[2]
local now = clock_ms()
ensure_life(state, conversation, now, KEYS[6], KEYS[7], KEYS[8])
local seq = redis.call('HINCRBY', state, 'seq', 1)
local seq_text = string.format('%d', seq)
-- The sender's supersede asks whether a newer batch is closed; a seq taken by the API is
-- no newer batch of the user's (common/store/deliveries.py, latest_batch_seq).
redis.call('HSET', state, 'apiseq', seq_text)
redis.call('EXPIRE', state, ARGV[6])
local entry = redis.call('XADD', KEYS[4], '*', 'batch', ARGV[3] .. ',"seq":' .. seq_text .. ARGV[4])
redis.call('HSET', KEYS[2], 'state', 'queued', 'conversation', conversation, 'seq', seq_text,
  'accepted_ms', string.format('%d', now), 'entry', entry)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
return {ARGV[1], 1}
