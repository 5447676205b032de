-- legacy: the upgrade from 0.1, in one file with common/store/legacy.py, so that it can be
-- deleted in one commit when 0.1 is no longer supported. Not a script of its own: put
-- before the scripts that read or move 0.1's state (LuaScript.read(..., preludes=...)).
--
-- 0.1 kept seq and delivered in shard-wide hashes, keyed by conversation,
-- and a dead batch that ran ahead of its turn as "<conversation>|<seq>" in a shard-wide
-- dead-seq hash. A conversation without a state hash that has a field there is moved, not
-- restarted: its batches still in the streams keep their seq and are delivered once, in
-- order. The shard-wide hashes carry the same {s} hash tag as the state hash, so the move
-- is one slot and part of the same atomic step (Redis Cluster too). 0.1's dead-batch marks
-- (batch_id -> entry) are not moved: deliver_check.lua and deliver_mark.lua read and clear
-- them by batch id, as 0.1 did (legacy_dead_batch, legacy_take_dead_batch).

-- Move a conversation's seq, delivered and dead-seq marks from 0.1's shard-wide hashes into
-- its state hash; false when 0.1 knew nothing of it.
local function legacy_move(state, conv, seq_hash, delivered_hash, dead_seq_hash)
  local old_seq = redis.call('HGET', seq_hash, conv)
  local old_delivered = redis.call('HGET', delivered_hash, conv)
  if not (old_seq or old_delivered) then
    return false
  end
  local seq, delivered = tonumber(old_seq or '0'), tonumber(old_delivered or '0')
  if delivered > seq then seq = delivered end
  redis.call('HSET', state, 'seq', string.format('%d', seq),
    'delivered', string.format('%d', delivered))
  -- 0.1 marked a dead batch only while it ran ahead of delivered + 1, so its marks are
  -- among the seqs still outstanding.
  for k = delivered + 2, seq do
    local k_text = string.format('%d', k)
    if redis.call('HDEL', dead_seq_hash, conv .. '|' .. k_text) == 1 then
      redis.call('HSET', state, 'deadseq:' .. k_text, 1)
    end
  end
  redis.call('HDEL', seq_hash, conv)
  redis.call('HDEL', delivered_hash, conv)
  return true
end

-- The conversation's newest finished seq as 0.1 kept it: its delivered field, '0' when 0.1
-- had only its seq (nothing finished yet), nil when 0.1 knew nothing of it.
local function legacy_delivered(delivered_hash, seq_hash, conv)
  local delivered = redis.call('HGET', delivered_hash, conv)
  if delivered then return delivered end
  if redis.call('HEXISTS', seq_hash, conv) == 1 then return '0' end
  return nil
end

-- The entry in which a batch finished as dead, as 0.1 marked it (by batch id); nil if none.
local function legacy_dead_batch(dead_batch_hash, batch_id)
  return redis.call('HGET', dead_batch_hash, batch_id)
end

-- Clear 0.1's dead mark of a batch; whether there was one (it counts as this life's own).
local function legacy_take_dead_batch(dead_batch_hash, batch_id)
  return redis.call('HDEL', dead_batch_hash, batch_id) == 1
end
