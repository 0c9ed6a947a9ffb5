-- Reserve a request's worst-case cost on every counter, all or nothing.
-- KEYS: per counter, its hash (fields `spent`, `held`) then its reservations zset
--       (member "<generation>:<amount>", score = expiry ms); last, when the control plane
--       marks rebuilt counters, the organization's mark.
-- ARGV: generation, now_ms, hold_ms, then per counter: limit, amount, ttl_ms (0 = never).
-- Amounts are decimal strings of picodollars, handled by the exact_* helpers (EXACT_LUA).
-- TTLs are relative: the caller derives them from the same clock as `now_ms`.
-- Returns {1} when granted, {0, index, spent, held} for the first counter that refused, {-1}
-- when the mark is missing (the counters may have been lost: nothing is reserved).
local generation = ARGV[1]
local now = tonumber(ARGV[2])
local until_ms = now + tonumber(ARGV[3])
local n = math.floor(#KEYS / 2)
if #KEYS % 2 == 1 and redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return {-1}
end
for i = 1, n do
  local counter, holds = KEYS[2 * i - 1], KEYS[2 * i]
  release_stale_holds(counter, holds, now)
  local spent = redis.call('HGET', counter, 'spent') or '0'
  local held = redis.call('HGET', counter, 'held') or '0'
  local base = 3 + 3 * (i - 1)
  if exact_sum_exceeds(spent, held, ARGV[base + 2], ARGV[base + 1]) then
    return {0, i, spent, held}
  end
end
for i = 1, n do
  local counter, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 3 + 3 * (i - 1)
  local amount, ttl = ARGV[base + 2], ARGV[base + 3]
  exact_incr(counter, 'held', amount)
  redis.call('ZADD', holds, until_ms, generation .. ':' .. amount)
  if ttl ~= '0' then
    redis.call('PEXPIRE', counter, ttl)
    redis.call('PEXPIRE', holds, ttl)
  end
end
return {1}
