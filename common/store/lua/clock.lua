-- clock: the Redis clock in ms, the one clock every replica shares. Not a script of its own:
-- put before the scripts that read the time (LuaScript.read(..., preludes=...)).

local function clock_ms()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
