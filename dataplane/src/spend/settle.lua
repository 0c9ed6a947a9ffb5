-- Release generations' reservations and charge their actual costs, each once. One call settles
-- a batch of generations of one organization (so every key shares its hash tag and slot).
-- KEYS: per generation: per counter its hash then its reservations zset; then the generation's
--       settled marker.
-- ARGV: marker_ttl_ms, then per generation: generation, counter count n, then per counter:
--       reserved, charge, expire_at_ms (0 = never).
-- Returns per generation 1 when settled now, 0 when it already was.
local ttl = ARGV[1]
local a, k = 2, 1
local out = {}
while a <= #ARGV do
  local generation, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  if redis.call('SET', KEYS[k + 2 * n], '1', 'NX', 'PX', ttl) then
    for i = 0, n - 1 do
      local counter, holds = KEYS[k + 2 * i], KEYS[k + 2 * i + 1]
      local reserved, charge, expire_at = ARGV[a + 3 * i], ARGV[a + 3 * i + 1], ARGV[a + 3 * i + 2]
      -- Only a reservation still held is released; an expired one already was.
      if redis.call('ZREM', holds, generation .. ':' .. reserved) == 1 then
        redis.call('HINCRBY', counter, 'held', '-' .. reserved)
      end
      if charge ~= '0' then redis.call('HINCRBY', counter, 'spent', charge) end
      if expire_at ~= '0' then redis.call('PEXPIREAT', counter, expire_at) end
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  a = a + 3 * n
  k = k + 2 * n + 1
end
return out
