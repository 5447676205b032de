-- window_apply: apply message events to their conversations' windows, atomically.
--
-- One call applies every event of one shard from one read, in order (an event sees the
-- effect of the ones before it, also of the same conversation). common/store/windows.py bounds
-- the events and bytes of a call, so that a call blocks Redis a few ms at most.
--
-- KEYS[1]    due zset           {ns}:{s}:due        (conversation -> deadline ms)
-- KEYS[2]    outbound stream    {ns}:{s}:out
-- KEYS[3]    0.1 seq hash         {ns}:{s}:seq        (read and emptied by the upgrade only,
-- KEYS[4]    0.1 delivered hash   {ns}:{s}:delivered   see conversation_life.lua)
-- KEYS[5]    0.1 dead-seq hash    {ns}:{s}:deadseq
-- KEYS[4+2i] window key         {ns}:{s}:c:<conv>     of event i
-- KEYS[5+2i] seen set           {ns}:{s}:seen:<conv>  of event i
-- ARGV[1]  max lateness ms             ARGV[2]  max skew ms         ARGV[3]  dedupe ttl s
-- ARGV[4]  conversation state prefix {ns}:{s}:cs:   ARGV[5]  history prefix {ns}:{s}:h:
-- ARGV[6]  conversation ttl s          ARGV[7]  pause key prefix {ns}:{s}:pause:
-- then 11 values per event i, from ARGV[8 + 11 * (i - 1)]: its account's window settings
--   (each account may have its own: the accounts file) as window_layout.lua stores them with
--   a window; then the event: conversation, mid (JSON), target mid (JSON) or "" (edit/unsend),
--   kind, kind (JSON), event time ms, received_at ms, text (JSON), attachments (JSON), raw
--   (JSON)
--
-- Returns {now_ms, {status_1, deadline_1, status_2, deadline_2, ...}, {closed...}}: status 0
-- duplicate, 1 added, 2 opened a window, 3 edited, 4 removed (unsend), 5 unsend of a message
-- no longer in an open window; closed as in window_close.lua, one per full window this call
-- emitted.
--
-- Dedupe: a message id is looked up in the conversation's seen set (the ids of its closed
-- windows: O(log n), whatever the history), then in the open window's records (bounded by
-- the caps; an id joins the set when its window closes, so an open window costs no key more)
-- and in the ids 0.3 has not moved yet out of the window key (see window_layout.lua). Each call
-- moves up to MOVE_BUDGET of those into the seen set, in the same atomic step as the lookup,
-- so a message seen before the upgrade stays a duplicate.
--
-- Caps: a window never holds more than max messages or max bytes. The message that would
-- pass either closes the full window here, in this step (emitted by window_emit.lua, as the
-- closer would: deleted in the same step as its batch is appended, the next seq), and opens
-- the next window. A window that reaches a cap exactly is due at once, for the closer.
--
-- Settings: a window keeps the settings it was opened with (stored in it, window_layout.lua),
-- so that a reload of the accounts file changes the windows opened after it, never the
-- deadline or caps of one already open. A window written before windows stored their
-- settings has none: it follows each event's settings, as it did then.

local due = KEYS[1]
local max_lateness_ms, max_skew_ms, ttl_s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ctx = {
  out = KEYS[2], ttl_s = ttl_s, state_prefix = ARGV[4], history_prefix = ARGV[5],
  life_s = ARGV[6], pause_prefix = ARGV[7],
  legacy_seq = KEYS[3], legacy_delivered = KEYS[4], legacy_dead_seq = KEYS[5],
}
local FIELDS, FIRST, KEYS_BEFORE = 11, 8, 5
-- Old seen ids moved per call: about 1 µs each, so the move of a long history is spread over
-- calls of a ms or two.
local MOVE_BUDGET = 1000

local now = clock_ms()
local now_s = math.floor(now / 1000)
local cutoff_s = now_s - ttl_s
local budget = MOVE_BUDGET
local closed = {}

-- Move up to budget old seen entries from the front of body's seen section (seen_len bytes)
-- to the seen set. Returns the new body and seen_len.
local function move_old_seen(body, seen_len, seen_key)
  local moved_pairs, pos, moved = {}, 1, 0
  while pos <= seen_len and moved < budget do
    local next_at = string.find(body, '\29', pos + 1, true)
    if not next_at or next_at > seen_len then next_at = seen_len + 1 end
    local at_s, m = string.match(string.sub(body, pos, next_at - 1), '^\29(%d+)\31M(.*)\31$')
    if at_s and tonumber(at_s) >= cutoff_s then
      moved_pairs[#moved_pairs + 1] = at_s
      moved_pairs[#moved_pairs + 1] = seen_member(m)
    end
    moved = moved + 1
    pos = next_at
  end
  budget = budget - moved
  zadd_seen(seen_key, moved_pairs, ttl_s)
  return string.sub(body, pos), seen_len - (pos - 1)
end

-- An edit's or an unsend's own id: remembered at once (a message's id joins the set when
-- its window closes, and is found in the open window until then).
local function remember(seen_key, mid)
  zadd_seen(seen_key, {now_s, seen_member(mid)}, ttl_s)
end

local function apply(key, seen_key, a)
  local own_settings = ARGV[a]
  a = a + 1
  local conv, mid, target = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local kind, kind_json = ARGV[a + 3], ARGV[a + 4]
  local event_time, received_at = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local text_json, attachments, raw = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local size = #mid + #kind_json + #text_json + #attachments + #raw

  local value = redis.call('GET', key)
  local first_t, last_t, opened_at, deadline = 0, 0, 0, 0
  local count, bytes, arrivals, seen_len, reason = 0, 0, 0, 0, GAP
  local body = ''
  if value then
    first_t, last_t, opened_at, deadline, count, bytes, arrivals, seen_len, reason =
      struct.unpack(HDR, value)
    body = string.sub(value, HDR_LEN + 1)
  end
  local open = deadline > 0

  local function header()
    return struct.pack(HDR, first_t, last_t, opened_at, deadline, count, bytes, arrivals,
      seen_len, reason)
  end

  if seen_len > 0 and budget > 0 then
    body, seen_len = move_old_seen(body, seen_len, seen_key)
    if open or seen_len > 0 then
      redis.call('SET', key, header() .. body, 'KEEPTTL')
    else
      redis.call('DEL', key)
    end
  end

  -- The open window's own settings, when it stored them; the event's otherwise.
  local w = settings_of(open and stored_settings(body, seen_len) or own_settings)

  -- A member past the horizon not trimmed yet is forgotten already.
  local seen_at_s = redis.call('ZSCORE', seen_key, seen_member(mid))
  if (seen_at_s and tonumber(seen_at_s) >= cutoff_s) or
      (body ~= '' and string.find(body, '\31M' .. mid .. '\31', 1, true)) then
    return 0, 0
  end

  -- Edit or unsend: change the target record if it is still in the open window.
  if target ~= '' then
    local at = open and string.find(body, '\31M' .. target .. '\31', seen_len + 1, true)
    if at then
      local rec_start = at
      while string.byte(body, rec_start) ~= 30 do rec_start = rec_start - 1 end
      local rec_end = string.find(body, '\30', at, true)
      rec_end = rec_end and rec_end - 1 or #body
      local fields = split(string.sub(body, rec_start + 1, rec_end))
      local old_size = record_size(fields)
      local replacement, status, new_size = '', 4, 0
      if kind ~= 'unsend' then
        new_size = old_size - #fields[7] + #text_json
        fields[7] = text_json
        replacement = '\30' .. table.concat(fields, '\31')
        status = 3
      end
      -- An edit that would pass max bytes goes into the next window as a message of its own.
      if bytes - old_size + new_size <= w.max_bytes then
        if kind == 'unsend' then count = count - 1 end
        bytes = bytes - old_size + new_size
        body = string.sub(body, 1, rec_start - 1) .. replacement .. string.sub(body, rec_end + 1)
        redis.call('SET', key, header() .. body)
        remember(seen_key, mid)
        return status, deadline
      end
    elseif kind == 'unsend' then
      -- Nothing open to remove it from: remember the unsend so a retry stays a no-op.
      remember(seen_key, mid)
      return 5, deadline
    end
    -- An edit of a message already sent is news for the bot: it goes in as a message of its own.
  end

  -- The message that would pass a cap closes the full window, here, and opens the next one.
  if open and (count + 1 > w.max_messages or bytes + size > w.max_bytes) then
    local cap = count + 1 > w.max_messages and MAX_MESSAGES or MAX_BYTES
    ctx.seen_key = seen_key
    local messages, seq, paused = emit_window(conv, string.sub(body, seen_len + 1), opened_at,
      last_t, cap, now, ctx)
    closed[#closed + 1] =
      {conv, string.format('%d', deadline), messages, REASONS[cap], seq, paused}
    body = string.sub(body, 1, seen_len)
    open = false
  end
  if not open then
    -- A new window: the event's settings, stored with it (before its first record).
    w = settings_of(own_settings)
    body = body .. own_settings
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
  bytes = bytes + size

  if open and reason >= MAX_MESSAGES then
    -- Already due at once (a cap or a flush kind): later messages join, the deadline stays.
    status = 1
  elseif w.mode == 'fixed' then
    deadline, reason = first_t + w.window_ms, GAP
  else
    deadline, reason = last_t + w.window_ms, GAP
  end
  if first_t + w.max_wait_ms < deadline then
    deadline, reason = first_t + w.max_wait_ms, MAX_WAIT
  end
  if reason < MAX_MESSAGES then
    if string.find(w.flush_on, ',' .. kind .. ',', 1, true) then
      deadline, reason = now, FLUSH
    elseif count >= w.max_messages then
      deadline, reason = now, MAX_MESSAGES
    elseif bytes >= w.max_bytes then
      deadline, reason = now, MAX_BYTES
    end
  end

  -- One exact-size SET, not SETRANGE + APPEND: APPEND preallocates up to twice the string,
  -- which costs more memory per open window than the records themselves. The window is
  -- bounded by the caps, so reading and writing it whole costs a bounded time; a plain SET
  -- also drops a TTL: an open window must not expire.
  redis.call('SET', key, header() .. body .. record)
  redis.call('ZADD', due, deadline, conv)
  return status, deadline
end

local results = {}
for i = 1, (#KEYS - KEYS_BEFORE) / 2 do
  local status, deadline = apply(KEYS[KEYS_BEFORE + 2 * i - 1], KEYS[KEYS_BEFORE + 2 * i],
    FIRST + FIELDS * (i - 1))
  results[#results + 1] = status
  results[#results + 1] = deadline
end
return {now, results, closed}
