-- pause: start, extend or end one conversation's pause, in one atomic step on the Redis clock.
--
-- KEYS[1]  pause hash   {ns}:{s}:pause:<conversation>
-- ARGV[1]  action       human | hold | operator | handoff | release | resume
-- ARGV[2]  quiet ms     LULL_HUMAN_PAUSE_MS: a pause lasts this long after the human's last turn
-- ARGV[3]  cap ms       LULL_HUMAN_PAUSE_MAX_MS: and never longer than this after it began
-- ARGV[4]  reason       why (human_echo, smb_echo, thread_taken, standby, operator, handoff, ...)
-- ARGV[5]  by           who: an app id, an operator's name, '' when unknown
-- ARGV[6]  for ms       operator only: pause this long from now (0: like a human turn)
--
-- Returns {since_ms, until_ms, human_last_ms, reason, by, hold, now_ms}; after release or
-- resume {0, 0, 0, '', '', 0, now_ms}.
--
-- The pause is the key itself: it exists exactly while the conversation is paused, because
-- PEXPIREAT is set to the pause's end on the Redis clock. So "is it paused?" is one EXISTS,
-- in any script of the conversation's shard (the window close stamps batches with it), and
-- an ended pause leaves nothing behind.
--
-- Actions:
--   human     a human wrote (an echo not sent by lull, an smb_message_echoes item): the end
--             moves to quiet ms after now, at most cap ms after the pause began.
--   handoff   the bot asked for a human: the same clock as a human turn, started now.
--   hold      another app owns the thread (thread taken or passed away, a standby message):
--             paused until it is passed back, at most cap ms after the pause began.
--   operator  `lull pause` / the admin API: like a human turn, or for ms from now when given
--             (an operator's explicit duration is not capped: they asked for it).
--   release   the thread was passed back to lull's app: the pause ends now.
--   resume    an operator resumed: the pause ends now.
-- A pause is only ever lengthened by a turn, never shortened: a human's short reply does
-- not end an operator's two-hour pause. Only release and resume end one early.

local key, action = KEYS[1], ARGV[1]
local quiet_ms, cap_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local reason, by, for_ms = ARGV[4], ARGV[5], tonumber(ARGV[6])

local now = clock_ms()

if action == 'release' or action == 'resume' then
  redis.call('DEL', key)
  return {0, 0, 0, '', '', 0, now}
end

local state = redis.call('HMGET', key, 'since_ms', 'until_ms', 'human_last_ms', 'hold')
local since = tonumber(state[1]) or now
local current = tonumber(state[2]) or 0
local human_last = tonumber(state[3]) or 0
local hold = tonumber(state[4]) or 0

local wanted
if action == 'hold' then
  hold = 1
  wanted = since + cap_ms
elseif action == 'operator' and for_ms > 0 then
  wanted = now + for_ms
else
  if action == 'human' then human_last = now end
  if hold == 1 then
    wanted = since + cap_ms
  else
    wanted = math.min(now + quiet_ms, since + cap_ms)
  end
end
local until_ms = math.max(current, wanted)
if until_ms <= now then
  -- Only when the cap has passed and a turn comes in before the key expired (the same
  -- millisecond): the pause is over, and the turn must not revive it.
  redis.call('DEL', key)
  return {0, 0, 0, '', '', 0, now}
end

redis.call('HSET', key, 'since_ms', since, 'until_ms', until_ms, 'human_last_ms', human_last,
  'reason', reason, 'by', by, 'hold', hold)
redis.call('PEXPIREAT', key, until_ms)
return {since, until_ms, human_last, reason, by, hold, now}
