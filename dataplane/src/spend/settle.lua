-- Release a generation's reservations and charge its actual cost, once.
-- KEYS: per counter, its hash then its reservations zset; last, the generation's settled marker.
-- ARGV: generation, marker_ttl_ms, then per counter: reserved, charge, ttl_ms (0 = never).
-- Amounts are decimal strings of picodollars (EXACT_LUA). Returns 1 when settled now, 0 when it
-- already was.
local marker = KEYS[#KEYS]
if not redis.call('SET', marker, '1', 'NX', 'PX', ARGV[2]) then
  return 0
end
local generation = ARGV[1]
local n = (#KEYS - 1) / 2
for i = 1, n do
  local counter, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 2 + 3 * (i - 1)
  local reserved, charge, ttl = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  -- Only a reservation still held is released; an expired one already was.
  if redis.call('ZREM', holds, generation .. ':' .. reserved) == 1 then
    exact_decr(counter, 'held', reserved)
  end
  exact_incr(counter, 'spent', charge)
  if ttl ~= '0' then redis.call('PEXPIRE', counter, ttl) end
end
return 1
