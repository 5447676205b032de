-- delivery_failed: record one failed delivery once, however often Meta reports it.
--
-- KEYS[1]  seen marker       {ns}:{s}:failseen:<message id>   (expires)
-- KEYS[2]  recent failures   {ns}:{s}:failed                  (capped list, newest first)
-- KEYS[3]  history list      {ns}:{s}:h:<conversation>        (only when the message is
--                                                              matched to a conversation)
-- ARGV[1]  seen marker ttl s        ARGV[2]  recent failures to keep
-- ARGV[3]  failure JSON, for the recent list
-- ARGV[4]  history item JSON (with KEYS[3])
--
-- Returns 1 when the failure was recorded now, 0 when it was recorded before (Meta
-- redelivered the status, or a claimed entry is applied again): callers count and log only 1.
--
-- The history item goes only into a history that exists (RPUSHX): the sender creates a
-- conversation's history when it finishes a batch with LULL_HISTORY_MESSAGES > 0 and owns
-- its length and expiry (its next finish trims it again), so a failure never creates a
-- history nobody reads.

if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
if #KEYS > 2 then
  redis.call('RPUSHX', KEYS[3], ARGV[4])
end
return 1
