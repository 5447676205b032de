-- window_layout: the byte layout of a conversation's window and of its seen set, written
-- once. Not a script of its own: put before every script that reads or writes a window
-- (window_apply.lua, window_close.lua, window_flush.lua, after clock.lua) and read by
-- common/store/windows.py (WINDOW_HEADER) and conversations.py the same way.
--
-- Window value (one string, so an open window costs one key):
--   header (struct HDR) .. old_seen .. settings .. records
--   settings: "\28" .. mode .. " " .. window_ms .. " " .. max_wait_ms .. " " .. max_messages ..
--             " " .. max_bytes .. " ," .. flush kinds, each followed by "," (WindowShape in
--             common/store/windows.py writes it): the settings the window was opened with,
--             which it keeps until it closes (a reload of the accounts file changes only the
--             windows opened after it). Absent from a window written before. No reader of
--             the records needs to skip it: they start at the first "\30".
--   records:  ("\30" .. t .. "\31" .. arrival .. "\31M" .. mid_json .. "\31" .. kind_json ..
--              "\31" .. received_at - t .. "\31" .. event_time - t .. "\31" .. text_json ..
--              "\31" .. attachments .. "\31" .. raw)*
--   old_seen: ("\29" .. seen_at_s .. "\31M" .. mid_json .. "\31")*, seen_len bytes: message ids
--             seen before 0.3, which kept them here. window_apply.lua moves them, a chunk per
--             call, into the conversation's seen set ({ns}:{s}:seen:<conv>, a sorted set of
--             mid_json scored by seen_at_s), where a lookup does not read the whole history.
-- Every variable field is JSON, which never holds raw control characters, so the separators
-- are unambiguous and a mid is found with one plain string.find.
-- deadline 0 in the header means no window is open (the key only holds old seen mids).
--
-- A message's size (the bytes LULL_MAX_BYTES counts) is that of its JSON fields: mid, kind,
-- text, attachments and raw; common/store/windows.py computes the same from the same bytes.

local HDR = '<ddddI4I4I4I4B'
local HDR_LEN = 8 * 4 + 4 * 4 + 1
-- close reasons: 1 gap, 2 max_wait, 3 max_messages, 4 max_bytes, 5 flush
local GAP, MAX_WAIT, MAX_MESSAGES, MAX_BYTES, FLUSH = 1, 2, 3, 4, 5
local REASONS = {'gap', 'max_wait', 'max_messages', 'max_bytes', 'flush'}
-- A message id's member in a seen set: 96 bits of its SHA-1, not the id. Short members keep
-- a conversation's set in Redis's compact encoding up to 128 of them and cost a third of
-- the id's bytes above; two ids of one conversation within the dedupe horizon that share
-- 96 bits are not a risk worth a byte (about 1e-21 for 20,000 ids).
local function seen_member(mid_json)
  return string.sub(redis.sha1hex(mid_json), 1, 24)
end

-- ZADD members per call: unpack() of more overflows Lua's C stack.
local ZADD_CHUNK = 500
-- Expired members removed at least per write of a seen set.
local TRIM_MIN = 8

-- Window settings parsed, by their bytes: one parse per account and call.
local parsed_settings = {}

-- The settings (the string above) as a table: mode, window_ms, max_wait_ms, max_messages,
-- max_bytes, flush_on (",kind,kind,").
local function settings_of(settings)
  local w = parsed_settings[settings]
  if not w then
    local mode, window_ms, max_wait_ms, max_messages, max_bytes, flush_on =
      string.match(settings, '^\28(%a+) (%d+) (%d+) (%d+) (%d+) (,.*)$')
    w = {mode = mode, window_ms = tonumber(window_ms), max_wait_ms = tonumber(max_wait_ms),
      max_messages = tonumber(max_messages), max_bytes = tonumber(max_bytes),
      flush_on = flush_on}
    parsed_settings[settings] = w
  end
  return w
end

-- The settings an open window stored (its body after the old seen ids), or nil.
local function stored_settings(body, seen_len)
  if string.byte(body, seen_len + 1) ~= 28 then return nil end
  local stop = string.find(body, '\30', seen_len + 1, true)
  return string.sub(body, seen_len + 1, (stop or #body + 1) - 1)
end

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
  return fields
end

-- The size LULL_MAX_BYTES counts of a record's split fields.
local function record_size(fields)
  return #fields[3] - 1 + #fields[4] + #fields[7] + #fields[8] + #fields[9]
end

local function by_time_then_arrival(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end

-- ZADD score/member pairs (a flat list, scores in s) to a seen set, in chunks; refresh its
-- expiry, and trim as many members past the dedupe TTL as were added (at least TRIM_MIN), so
-- a set in constant use stays within its horizon a bounded piece at a time.
local function zadd_seen(seen_key, pairs, ttl_s)
  if #pairs == 0 then return end
  for start = 1, #pairs, 2 * ZADD_CHUNK do
    local stop = math.min(start + 2 * ZADD_CHUNK - 1, #pairs)
    redis.call('ZADD', seen_key, unpack(pairs, start, stop))
  end
  redis.call('EXPIRE', seen_key, ttl_s)
  local cutoff_s = math.floor(clock_ms() / 1000) - ttl_s
  local expired = redis.call('ZRANGE', seen_key, '-inf', '(' .. cutoff_s, 'BYSCORE', 'LIMIT', 0,
    math.min(math.max(#pairs / 2, TRIM_MIN), ZADD_CHUNK))
  if #expired > 0 then redis.call('ZREM', seen_key, unpack(expired)) end
end
