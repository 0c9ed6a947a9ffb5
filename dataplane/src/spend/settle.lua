-- Release a generation's reservations and charge its actual cost, once.
-- KEYS: per counter, its hash then its reservations zset; last, the generation's settled marker.
-- ARGV: generation, marker_ttl_ms, then per counter: reserved, charge, expire_at_ms (0 = never).
-- Returns 1 when settled now, 0 when it already was.
local marker = KEYS[#KEYS]
if not redis.call('SET', marker, '1', 'NX', 'PX', ARGV[2]) then
  return 0
end
local generation = ARGV[1]
local n = (#KEYS - 1) / 2
for i = 1, n do
  local counter, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 2 + 3 * (i - 1)
  local reserved, charge, expire_at = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  -- Only a reservation still held is released; an expired one already was.
  if redis.call('ZREM', holds, generation .. ':' .. reserved) == 1 then
    redis.call('HINCRBY', counter, 'held', '-' .. reserved)
  end
  if charge ~= '0' then redis.call('HINCRBY', counter, 'spent', charge) end
  if expire_at ~= '0' then redis.call('PEXPIREAT', counter, expire_at) end
end
return 1
