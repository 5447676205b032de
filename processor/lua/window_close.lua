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
--
-- Returns {now_ms, next_deadline_ms or -1, open windows left, closed...} where each closed window is
-- {conversation, deadline_ms, messages, reason, seq, paused}; messages 0 means emptied by unsends
-- (nothing emitted, no seq used); paused 1 when the batch was stamped paused.
--
-- A batch closed while its conversation's pause key exists (common/lua/pause.lua: the key
-- exists exactly while a human has the conversation) carries "paused": true. The stamp is in
-- the batch itself, so the bot never answers it: not after the pause ends, a crash, a retry
-- or a `lull dead replay`.
--
-- The window is read, emitted and reset in this one script: a window is emitted exactly
-- once however many closers run. See window_apply.lua for the value layout.
--
-- Emitting a batch writes the conversation's state hash (conversation_life.lua, prepended):
-- seq, and user_last_ms, the user's last message in this batch on the Redis clock, for the
-- 24-hour reply window. It is the earlier of the message's own timestamp (last_event_time)
-- and its clamped time t (window_apply.lua), never later than now: a late delivery makes
-- Meta's window start earlier than lull saw the message, never later, so a check against
-- it cannot send after Meta's window closed. It only moves forward. The state's and the
-- history's expiry are refreshed with it.

local HDR = '<ddddI4I4I4I4B'
local HDR_LEN = 8 * 4 + 4 * 4 + 1
local REASONS = {'gap', 'max_wait', 'max_messages', 'max_bytes', 'flush'}
local FLUSH = 5

local due, out = KEYS[1], KEYS[2]
local legacy_seq, legacy_delivered, legacy_dead_seq = KEYS[3], KEYS[4], KEYS[5]
local prefix, grace_ms, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl_s, all = tonumber(ARGV[4]), ARGV[5] == '1'
local state_prefix, history_prefix, life_s = ARGV[6], ARGV[7], ARGV[8]
local pause_prefix = ARGV[9] or ''

local now = clock_ms()
local until_ms = all and '+inf' or (now - grace_ms)
local ready = redis.call('ZRANGE', due, '-inf', until_ms, 'BYSCORE', 'LIMIT', 0, limit)

local function split(record)
  -- fields: 1 t, 2 arrival, 3 "M"..mid, 4 kind, 5 received_at - t, 6 event_time - t, 7 text,
  -- 8 attachments, 9 raw (the rest: raw JSON holds no separator)
  local fields, pos = {}, 1
  for _ = 1, 8 do
    local stop = string.find(record, '\31', pos, true)
    fields[#fields + 1] = string.sub(record, pos, stop - 1)
    pos = stop + 1
  end
  fields[9] = string.sub(record, pos)
  fields[1], fields[2] = tonumber(fields[1]), tonumber(fields[2])
  fields[3] = string.sub(fields[3], 2)
  fields[5] = string.format('%d', fields[1] + tonumber(fields[5]))
  fields[6] = string.format('%d', fields[1] + tonumber(fields[6]))
  return fields
end

local function by_time_then_arrival(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end

local closed = {}
local cutoff_s = math.floor(now / 1000) - ttl_s
for _, conv in ipairs(ready) do
  local key = prefix .. conv
  local value = redis.call('GET', key)
  redis.call('ZREM', due, conv)
  if value then
    local first_t, last_t, opened_at, deadline, count, bytes, arrivals, seen_len, reason =
      struct.unpack(HDR, value)
    if all and deadline + grace_ms > now then
      -- Closed by `lull flush --all` before it was due: the batch says so.
      reason = FLUSH
    end
    local records_at = HDR_LEN + seen_len + 1
    -- Seen mids older than the dedupe TTL are dropped; this window's mids join the rest.
    local seen = {}
    for entry in string.gmatch(string.sub(value, HDR_LEN + 1, records_at - 1), '\29[^\29]+') do
      local at_s = tonumber(string.match(entry, '^\29(%d+)'))
      if at_s and at_s >= cutoff_s then seen[#seen + 1] = entry end
    end
    local messages = {}
    for record in string.gmatch(string.sub(value, records_at), '\30([^\30]+)') do
      local fields = split(record)
      messages[#messages + 1] = fields
      seen[#seen + 1] = '\29' .. math.floor(now / 1000) .. '\31M' .. fields[3] .. '\31'
    end
    local seq, paused = 0, 0
    if #messages > 0 then
      table.sort(messages, by_time_then_arrival)
      local state = state_prefix .. conv
      ensure_life(state, conv, now, legacy_seq, legacy_delivered, legacy_dead_seq)
      seq = redis.call('HINCRBY', state, 'seq', 1)
      local parts, texts = {}, {}
      local first_event, last_event = nil, nil
      for i, m in ipairs(messages) do
        local event_time = tonumber(m[6])
        if first_event == nil or event_time < first_event then first_event = event_time end
        if last_event == nil or event_time > last_event then last_event = event_time end
        parts[i] = '{"mid":' .. m[3] .. ',"event_time":' .. m[6] .. ',"received_at":' .. m[5] ..
          ',"kind":' .. m[4] .. ',"text":' .. m[7] .. ',"attachments":' .. m[8] ..
          ',"raw":' .. m[9] .. '}'
        if m[7] ~= '""' then texts[#texts + 1] = string.sub(m[7], 2, -2) end
      end
      local platform, account, user = string.match(conv, '^([^:]*):([^:]*):(.*)$')
      local stamp = ''
      if pause_prefix ~= '' and redis.call('EXISTS', pause_prefix .. conv) == 1 then
        paused, stamp = 1, ',"paused":true'
      end
      local user_last_ms = math.min(math.floor(last_t), last_event, now)
      if user_last_ms > tonumber(redis.call('HGET', state, 'user_last_ms') or '0') then
        redis.call('HSET', state, 'user_last_ms', string.format('%d', user_last_ms))
      end
      redis.call('EXPIRE', state, life_s)
      redis.call('EXPIRE', history_prefix .. conv, life_s)
      local seq_text = string.format('%d', seq)
      -- "version" is the bot contract's (lull.common.contract.VERSION, batch.schema.json).
      local batch = '{"batch_id":' .. cjson.encode(conv .. ':' .. seq_text) ..
        ',"seq":' .. seq_text ..
        ',"platform":' .. cjson.encode(platform) .. ',"account_id":' .. cjson.encode(account) ..
        ',"user_id":' .. cjson.encode(user) .. ',"conversation":' .. cjson.encode(conv) ..
        ',"messages":[' .. table.concat(parts, ',') .. '],"text":"' ..
        table.concat(texts, '\\n') .. '","first_event_time":' .. string.format('%d', first_event) ..
        ',"last_event_time":' .. string.format('%d', last_event) ..
        ',"opened_at":' .. string.format('%d', opened_at) ..
        ',"closed_at":' .. now .. ',"close_reason":"' .. REASONS[reason] .. '","version":1' ..
        stamp .. '}'
      redis.call('XADD', out, '*', 'batch', batch)
    end
    local seen_text = table.concat(seen)
    redis.call('SET', key,
      struct.pack(HDR, 0, 0, 0, 0, 0, 0, 0, #seen_text, 1) .. seen_text, 'EX', ttl_s)
    closed[#closed + 1] =
      {conv, string.format('%d', deadline), #messages, REASONS[reason], seq, paused}
  end
end

local next_deadline = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
return {now, next_deadline[2] or -1, redis.call('ZCARD', due), unpack(closed)}
