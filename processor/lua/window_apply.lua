-- window_apply: apply message events to their conversations' windows, atomically.
--
-- One call applies every event of one shard from one read, in order (an event sees the
-- effect of the ones before it, also of the same conversation).
--
-- KEYS[1]    due zset          {ns}:{s}:due          (conversation -> deadline ms)
-- KEYS[1+i]  conversation key  {ns}:{s}:c:<conv>     of event i (window + seen mids)
-- ARGV[1]  mode (sliding|fixed)        ARGV[2]  window ms           ARGV[3]  max wait ms
-- ARGV[4]  max messages                ARGV[5]  max bytes
-- ARGV[6]  max lateness ms             ARGV[7]  max skew ms         ARGV[8]  dedupe ttl s
-- then 11 values per event i, from ARGV[9 + 11 * (i - 1)]:
--   conversation, mid (JSON), target mid (JSON) or "" (edit/unsend), kind, kind (JSON),
--   event time ms, received_at ms, text (JSON), attachments (JSON), raw (JSON),
--   1 when kind is in flush_on
--
-- Returns {status_1, deadline_1, status_2, deadline_2, ...}: status 0 duplicate, 1 added,
-- 2 opened a window, 3 edited, 4 removed (unsend), 5 unsend of a message no longer in an
-- open window.
--
-- Value layout (one string, so an open window costs one key):
--   header (struct HDR) .. seen .. records
--   seen:    ("\29" .. seen_at_s .. "\31M" .. mid_json .. "\31")*   mids of closed windows
--   records: ("\30" .. t .. "\31" .. arrival .. "\31M" .. mid_json .. "\31" .. kind_json ..
--             "\31" .. received_at - t .. "\31" .. event_time - t .. "\31" .. text_json .. "\31" ..
--             attachments .. "\31" .. raw)*
-- Every variable field is JSON, which never holds raw control characters, so the separators
-- are unambiguous and a mid is found with one plain string.find.
-- deadline 0 in the header means no window is open (the key only remembers seen mids).

local HDR = '<ddddI4I4I4I4B'
local HDR_LEN = 8 * 4 + 4 * 4 + 1
-- close reasons: 1 gap, 2 max_wait, 3 max_messages, 4 max_bytes, 5 flush
local GAP, MAX_WAIT, MAX_MESSAGES, MAX_BYTES, FLUSH = 1, 2, 3, 4, 5

local due = KEYS[1]
local mode, window_ms, max_wait_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_messages, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_lateness_ms, max_skew_ms, ttl_s = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local FIELDS, FIRST = 11, 9

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function apply(key, a)
  local conv, mid, target = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local kind, kind_json = ARGV[a + 3], ARGV[a + 4]
  local event_time, received_at = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local text_json, attachments, raw = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local flush = ARGV[a + 10] == '1'

  local value = redis.call('GET', key)
  if value and string.find(value, '\31M' .. mid .. '\31', 1, true) then
    return 0, 0
  end

  local first_t, last_t, opened_at, deadline = 0, 0, 0, 0
  local count, bytes, arrivals, seen_len, reason = 0, 0, 0, 0, GAP
  if value then
    first_t, last_t, opened_at, deadline, count, bytes, arrivals, seen_len, reason =
      struct.unpack(HDR, value)
  else
    value = ''
  end
  local open = deadline > 0
  local records_at = HDR_LEN + seen_len + 1

  local function header()
    return struct.pack(HDR, first_t, last_t, opened_at, deadline, count, bytes, arrivals,
      seen_len, reason)
  end

  local function seen_entry(m)
    return '\29' .. math.floor(now / 1000) .. '\31M' .. m .. '\31'
  end

  -- Edit or unsend: change the target record if it is still in the open window.
  if target ~= '' then
    local at = open and string.find(value, '\31M' .. target .. '\31', records_at, true)
    if at then
      local rec_start = at
      while string.byte(value, rec_start) ~= 30 do rec_start = rec_start - 1 end
      local rec_end = string.find(value, '\30', at, true)
      rec_end = rec_end and rec_end - 1 or #value
      local record = string.sub(value, rec_start, rec_end)
      local replacement = ''
      local status = 4
      if kind == 'unsend' then
        count = count - 1
      else
        -- fields: 1 t, 2 arrival, 3 mid, 4 kind, 5 received_at, 6 event_time, 7 text, 8.. rest
        local fields, pos = {}, 2
        for _ = 1, 7 do
          local stop = string.find(record, '\31', pos, true)
          fields[#fields + 1] = string.sub(record, pos, stop - 1)
          pos = stop + 1
        end
        fields[7] = text_json
        replacement = '\30' .. table.concat(fields, '\31') .. '\31' .. string.sub(record, pos)
        status = 3
      end
      bytes = bytes - #record + #replacement
      local seen = seen_entry(mid)
      seen_len = seen_len + #seen
      value = string.sub(value, HDR_LEN + 1, records_at - 1) .. seen ..
        string.sub(value, records_at, rec_start - 1) .. replacement ..
        string.sub(value, rec_end + 1)
      redis.call('SET', key, header() .. value)
      return status, deadline
    end
    if kind == 'unsend' then
      -- Nothing open to remove it from: remember the unsend so a retry stays a no-op.
      local seen = seen_entry(mid)
      seen_len = seen_len + #seen
      if value == '' then
        redis.call('SET', key, header() .. seen, 'EX', ttl_s)
      else
        redis.call('SET', key, header() .. string.sub(value, HDR_LEN + 1, records_at - 1) .. seen ..
          string.sub(value, records_at), 'KEEPTTL')
      end
      return 5, deadline
    end
    -- An edit of a message already sent is news for the bot: it goes in as a message of its own.
  end

  -- Event time, clamped to the Redis clock: late deliveries count as they arrive, and a skewed
  -- sender can neither hold a window open nor close it early.
  local t = math.min(math.max(event_time, now - max_lateness_ms), now + max_skew_ms)
  local status = 1
  if not open then
    first_t, last_t, opened_at, count, bytes, reason = t, t, now, 0, 0, GAP
    status = 2
  end
  if t > last_t then last_t = t end
  arrivals = arrivals + 1
  -- received_at and event time as offsets from t: a few digits instead of thirteen each.
  local record = '\30' .. t .. '\31' .. arrivals .. '\31M' .. mid .. '\31' .. kind_json .. '\31' ..
    (received_at - t) .. '\31' .. (math.floor(event_time) - t) .. '\31' .. text_json .. '\31' ..
    attachments .. '\31' .. raw
  count = count + 1
  bytes = bytes + #record

  if open and reason >= MAX_MESSAGES then
    -- Already due at once (a cap or a flush kind): later messages join, the deadline stays.
    status = 1
  elseif mode == 'fixed' then
    deadline, reason = first_t + window_ms, GAP
  else
    deadline, reason = last_t + window_ms, GAP
  end
  if first_t + max_wait_ms < deadline then
    deadline, reason = first_t + max_wait_ms, MAX_WAIT
  end
  if reason >= MAX_MESSAGES then
    status = 1
  elseif flush then
    deadline, reason = now, FLUSH
  elseif count >= max_messages then
    deadline, reason = now, MAX_MESSAGES
  elseif bytes >= max_bytes then
    deadline, reason = now, MAX_BYTES
  end

  -- One exact-size SET, not SETRANGE + APPEND: APPEND preallocates up to twice the string,
  -- which costs more memory per open window than the records themselves. The value is in
  -- hand already (for the dedupe check), and a plain SET also drops the dedupe TTL: an open
  -- window must not expire (the close script sets the TTL again).
  redis.call('SET', key, header() .. string.sub(value, HDR_LEN + 1) .. record)
  redis.call('ZADD', due, deadline, conv)
  return status, deadline
end

local results = {}
for i = 1, #KEYS - 1 do
  local status, deadline = apply(KEYS[1 + i], FIRST + FIELDS * (i - 1))
  results[#results + 1] = status
  results[#results + 1] = deadline
end
return results
