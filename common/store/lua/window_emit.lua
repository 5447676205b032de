-- window_emit: the emit of one window as one batch. Not a script of its own: it is put
-- before window_apply.lua and window_close.lua (after conversation_life.lua, whose
-- ensure_life it calls, and window_layout.lua), so that a window closed by the closer (its
-- deadline passed) and one closed by an apply (the next message would pass a cap) are
-- emitted by the same code.

-- Emit the records of a window as one batch on the outbound stream (nothing when unsends
-- emptied it), and remember their mids as seen now: the dedupe horizon counts from the close.
-- ctx: out, seen_key, state_prefix, history_prefix, life_s, pause_prefix, ttl_s, legacy_seq,
-- legacy_delivered, legacy_dead_seq. Returns messages, seq, paused (1 or 0).
local function emit_window(conv, records, opened_at, last_t, reason, now, ctx)
  local messages, seen = {}, {}
  local now_s = math.floor(now / 1000)
  for record in string.gmatch(records, '\30([^\30]+)') do
    local fields = split(record)
    fields[1], fields[2] = tonumber(fields[1]), tonumber(fields[2])
    fields[3] = string.sub(fields[3], 2)
    fields[5] = string.format('%d', fields[1] + tonumber(fields[5]))
    fields[6] = string.format('%d', fields[1] + tonumber(fields[6]))
    messages[#messages + 1] = fields
    seen[#seen + 1] = now_s
    seen[#seen + 1] = seen_member(fields[3])
  end
  zadd_seen(ctx.seen_key, seen, ctx.ttl_s)
  if #messages == 0 then return 0, 0, 0 end
  table.sort(messages, by_time_then_arrival)
  local state = ctx.state_prefix .. conv
  ensure_life(state, conv, now, ctx.legacy_seq, ctx.legacy_delivered, ctx.legacy_dead_seq)
  local seq = redis.call('HINCRBY', state, 'seq', 1)
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
  local stamp, paused = '', 0
  if ctx.pause_prefix ~= '' and redis.call('EXISTS', ctx.pause_prefix .. conv) == 1 then
    paused, stamp = 1, ',"paused":true'
  end
  local user_last_ms = math.min(math.floor(last_t), last_event, now)
  if user_last_ms > tonumber(redis.call('HGET', state, 'user_last_ms') or '0') then
    redis.call('HSET', state, 'user_last_ms', string.format('%d', user_last_ms))
  end
  redis.call('EXPIRE', state, ctx.life_s)
  redis.call('EXPIRE', ctx.history_prefix .. conv, ctx.life_s)
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
  redis.call('XADD', ctx.out, '*', 'batch', batch)
  return #messages, seq, paused
end
