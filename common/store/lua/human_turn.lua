-- human_turn: record a human's message in the conversation's history, once.
--
-- KEYS[1]  history list     {ns}:{s}:h:<conversation>
-- KEYS[2]  seen marker      {ns}:{s}:hseen:<message id>
-- ARGV[1]  history length to keep (0: keep none)
-- ARGV[2]  history ttl s (also how long the marker lives)
-- ARGV[3]  the history item (JSON, role "human")
--
-- Returns 1 when recorded now, 0 when the message was recorded before (Meta redelivered the
-- webhook, or the entry was handled again after a crash or a retry).
--
-- The pause itself is applied before this step (common/store/lua/pause.lua), so a crash between
-- the two leaves a pause without the history item, never the other way round; the entry is
-- then handled again and the item added.

if redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[2]) == false then
  return 0
end
local keep = tonumber(ARGV[1])
if keep > 0 then
  redis.call('RPUSH', KEYS[1], ARGV[3])
  redis.call('LTRIM', KEYS[1], -keep, -1)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
