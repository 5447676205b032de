-- stream_trim: XTRIM MINID below the oldest entry some group of the stream still needs.
--
-- KEYS[1]  stream
-- (no ARGV)
--
-- Returns the number of entries removed. A group needs its oldest pending entry, or, with
-- nothing pending, everything after its last-delivered id. A stream without groups is never
-- trimmed (nobody has said what it consumed), and never by MAXLEN (a length cap would drop
-- entries no group has processed). One script, so a group created (from id 0) or moved back
-- with SETID between the look and the trim is seen by both.
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if groups.err or #groups == 0 then
  return 0
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local best_ms, best_seq = nil, nil
for _, row in ipairs(groups) do
  local fields = {}
  for i = 1, #row, 2 do
    fields[row[i]] = row[i + 1]
  end
  local ms, seq
  if fields['pending'] > 0 then
    local summary = redis.call('XPENDING', KEYS[1], fields['name'])
    ms, seq = parse(summary[2])
  else
    ms, seq = parse(fields['last-delivered-id'])
    -- The entry after last-delivered; past 2^53 Lua numbers lose precision, so keep it then.
    if seq < 2 ^ 53 then
      seq = seq + 1
    end
  end
  if best_ms == nil or ms < best_ms or (ms == best_ms and seq < best_seq) then
    best_ms, best_seq = ms, seq
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', best_ms, best_seq))
