-- consumer_expire: remove a group's consumers that are idle and hold nothing, in one step.
--
-- KEYS[1]  stream
-- ARGV[1]  group
-- ARGV[2]  idle ms: consumers idle at least this long are removed
-- ARGV[3]  consumer name to keep (the caller itself)
--
-- Returns the names removed. One script, so no consumer can read between the look and the
-- removal: XGROUP DELCONSUMER drops the consumer's pending entries from the PEL, and nobody
-- could claim them any more (a replica frozen for an hour that wakes and reads is the case).
local rows = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if rows.err then
  return {} -- no such stream or group: nothing to expire
end
local idle_ms = tonumber(ARGV[2])
local removed = {}
for _, row in ipairs(rows) do
  local fields = {}
  for i = 1, #row, 2 do
    fields[row[i]] = row[i + 1]
  end
  if fields['name'] ~= ARGV[3] and fields['pending'] == 0 and fields['idle'] >= idle_ms then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    removed[#removed + 1] = fields['name']
  end
end
return removed
