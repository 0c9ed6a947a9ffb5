-- Reserve a request's worst-case cost on every counter, all or nothing.
-- KEYS: per counter, its hash (fields `spent`, `held`) then its reservations zset
--       (member "<generation>:<amount>", score = expiry ms).
-- ARGV: generation, now_ms, hold_ms, then per counter: limit, amount, expire_at_ms (0 = never).
-- Returns {1} when granted, {0, index, spent, held} for the first counter that refused.
-- Amounts stay strings into HINCRBY: Lua numbers are doubles, exact only to 2^53.
local generation = ARGV[1]
local now = tonumber(ARGV[2])
local until_ms = now + tonumber(ARGV[3])
local n = #KEYS / 2
for i = 1, n do
  local counter, holds = KEYS[2 * i - 1], KEYS[2 * i]
  -- Release reservations whose dataplane never settled them.
  local stale = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  for _, member in ipairs(stale) do
    local amount = string.match(member, ':(%d+)$')
    if amount then redis.call('HINCRBY', counter, 'held', '-' .. amount) end
  end
  if #stale > 0 then redis.call('ZREMRANGEBYSCORE', holds, '-inf', now) end
  local spent = tonumber(redis.call('HGET', counter, 'spent') or '0')
  local held = tonumber(redis.call('HGET', counter, 'held') or '0')
  local base = 3 + 3 * (i - 1)
  if spent + held + tonumber(ARGV[base + 2]) > tonumber(ARGV[base + 1]) then
    return {0, i, tostring(spent), tostring(held)}
  end
end
for i = 1, n do
  local counter, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 3 + 3 * (i - 1)
  local amount, expire_at = ARGV[base + 2], ARGV[base + 3]
  redis.call('HINCRBY', counter, 'held', amount)
  redis.call('ZADD', holds, until_ms, generation .. ':' .. amount)
  if expire_at ~= '0' then
    redis.call('PEXPIREAT', counter, expire_at)
    redis.call('PEXPIREAT', holds, expire_at)
  end
end
return {1}
