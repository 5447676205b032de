-- conversation_life: functions shared by the scripts that write a conversation's state hash
-- ({ns}:{s}:cs:<conversation>, fields in common/store/keys.py). Not a script of its own: it is put
-- before window_close.lua and deliver_mark.lua (LuaScript.read(..., prelude=...)).
--
-- A conversation's state lives while it is used: every write refreshes its expiry (and the
-- history's), so it goes away LULL_CONVERSATION_TTL_S after the conversation's last batch
-- was emitted or finished. The TTL is validated to outlast every retry horizon and the
-- message-id dedupe horizon, so no batch of a live conversation outlives its state.
--
-- Lives and seq. When the hash is missing, the conversation starts a new life, in the same
-- atomic step as the write that needs it. A new life does not restart seq at 1: a batch of
-- the previous life may still sit in a stream (a dead letter replayed late, an entry stuck
-- past the TTL), and with seq 1 again it would look new (answered twice) or a new batch
-- would look delivered (never answered). Instead seq and delivered both start at a base
-- read from the Redis clock (ms): the life's first batch is base + 1 = delivered + 1, so it
-- is in order at once, and every batch of an earlier life has a seq below the base, so the
-- sender finds it finished and skips it as a duplicate. An earlier life's seq started at
-- the clock when it began, grew by one per batch, and its last write was at least one TTL
-- (8 days by default, 691,200,000 ms) before the new base: to reach the base it would need
-- more batches than milliseconds in its whole life plus a TTL, a batch per millisecond for
-- days. A 0.1 life's seq started at 1.
-- (The Redis clock could step back by the TTL; that is outside what lull protects from.)

-- Make sure the state hash has a life (seq and delivered, always written together): moved
-- from 0.1's shard-wide hashes (legacy.lua), or a new life based on now_ms. Returns 'kept',
-- 'moved' or 'new'. A life is known by its delivered field, not by the hash: a field some
-- other step wrote alone does not make one.
local function ensure_life(state, conv, now_ms, legacy_seq, legacy_delivered, legacy_dead_seq)
  if redis.call('HEXISTS', state, 'delivered') == 1 then
    return 'kept'
  end
  if legacy_move(state, conv, legacy_seq, legacy_delivered, legacy_dead_seq) then
    return 'moved'
  end
  local base = string.format('%d', now_ms)
  redis.call('HSET', state, 'seq', base, 'delivered', base)
  return 'new'
end
