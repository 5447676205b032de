-- window_close: close the due windows of one shard, emitting one batch each, atomically.
--
-- KEYS[1]  due zset          {ns}:{s}:due     (conversation -> deadline ms)
-- KEYS[2]  outbound stream   {ns}:{s}:out
-- KEYS[3]  0.1 seq hash        {ns}:{s}:seq        (read and emptied by the upgrade only,
-- KEYS[4]  0.1 delivered hash  {ns}:{s}:delivered   see conversation_life.lua)
-- KEYS[5]  0.1 dead-seq hash   {ns}:{s}:deadseq
-- ARGV[1]  conversation key prefix {ns}:{s}:c: (the keys it names share KEYS' hash tag)
-- ARGV[2]  grace ms          ARGV[3]  at most this many windows per call
-- ARGV[4]  dedupe ttl s      ARGV[5]  1 to close every open window now (lull flush --all;
--                            one not due yet closes with reason flush)
-- ARGV[6]  conversation state prefix {ns}:{s}:cs:   ARGV[7]  history prefix {ns}:{s}:h:
-- ARGV[8]  conversation ttl s
-- ARGV[9]  pause key prefix  {ns}:{s}:pause:   ('' or absent: pauses are not looked at)
-- ARGV[10] seen set prefix   {ns}:{s}:seen:
--
-- Returns {now_ms, next_deadline_ms or -1, open windows left, closed...} where each closed window is
-- {conversation, deadline_ms, messages, reason, seq, paused}; messages 0 means emptied by unsends
-- (nothing emitted, no seq used); paused 1 when the batch was stamped paused.
--
-- A batch closed while its conversation's pause key exists (common/store/lua/pause.lua: the key
-- exists exactly while a human has the conversation) carries "paused": true. The stamp is in
-- the batch itself, so the bot never answers it: not after the pause ends, a crash, a retry
-- or a `lull dead replay`.
--
-- The window is read, emitted and reset in this one script: a window is emitted exactly
-- once however many closers run. window_layout.lua and window_emit.lua (prepended) hold the
-- value layout and the emit, which window_apply.lua shares: an apply closes a full window
-- itself when the next message would pass a cap. The window key is deleted once emitted (an open window has no
-- TTL); only message ids seen before 0.3 and not yet moved to the seen set keep it, with the
-- dedupe TTL.
--
-- Emitting a batch writes the conversation's state hash (conversation_life.lua, prepended):
-- seq, and user_last_ms, the user's last message in this batch on the Redis clock, for the
-- 24-hour reply window. It is the earlier of the message's own timestamp (last_event_time)
-- and its clamped time t (window_apply.lua), never later than now: a late delivery makes
-- Meta's window start earlier than lull saw the message, never later, so a check against
-- it cannot send after Meta's window closed. It only moves forward. The state's and the
-- history's expiry are refreshed with it.

local due, out = KEYS[1], KEYS[2]
local prefix, grace_ms, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local all = ARGV[5] == '1'
local now = clock_ms()
local ctx = {
  out = out, ttl_s = tonumber(ARGV[4]), state_prefix = ARGV[6], history_prefix = ARGV[7],
  life_s = ARGV[8], pause_prefix = ARGV[9] or '',
  legacy_seq = KEYS[3], legacy_delivered = KEYS[4], legacy_dead_seq = KEYS[5],
}
local seen_prefix = ARGV[10]

local until_ms = all and '+inf' or (now - grace_ms)
local ready = redis.call('ZRANGE', due, '-inf', until_ms, 'BYSCORE', 'LIMIT', 0, limit)

local closed = {}
for _, conv in ipairs(ready) do
  local key = prefix .. conv
  local value = redis.call('GET', key)
  redis.call('ZREM', due, conv)
  if value then
    local _, last_t, opened_at, deadline, _, _, _, seen_len, reason = struct.unpack(HDR, value)
    if all and deadline + grace_ms > now then
      -- Closed by `lull flush --all` before it was due: the batch says so.
      reason = FLUSH
    end
    local records_at = HDR_LEN + seen_len + 1
    ctx.seen_key = seen_prefix .. conv
    local messages, seq, paused = emit_window(conv, string.sub(value, records_at), opened_at,
      last_t, reason, now, ctx)
    if seen_len > 0 then
      redis.call('SET', key, struct.pack(HDR, 0, 0, 0, 0, 0, 0, 0, seen_len, GAP) ..
        string.sub(value, HDR_LEN + 1, records_at - 1), 'EX', ctx.ttl_s)
    else
      redis.call('DEL', key)
    end
    closed[#closed + 1] =
      {conv, string.format('%d', deadline), messages, REASONS[reason], seq, paused}
  end
end

local next_deadline = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
return {now, next_deadline[2] or -1, redis.call('ZCARD', due), unpack(closed)}
