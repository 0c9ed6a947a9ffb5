-- Moves budget between counters and one dataplane's escrow (its lease), for every counter of one
-- organization at once. A lease is part of the counter's `held`, so `spent + held <= limit`
-- covers everything every dataplane may still charge.
-- KEYS: per counter, its hash (`spent`, `held`), its reservations zset and its leases hash
--       (owner -> "amount:expiry_ms:seq"); last, when the control plane marks rebuilt counters,
--       the organization's mark.
-- ARGV: n counters, now_ms, lease_ms (how long a lease holds unrenewed), seq (this flush's
--       number: a retried flush is applied once), share (a grant takes at most 1/share of the
--       free budget beyond what is needed), then per counter: the lease's field (one lease of
--       one dataplane process), limit, charge (moves from the lease to `spent`), release
--       (returns to the counter; `all`: the rest of the lease), need (must be granted, or
--       nothing is), want (the grant asked for, >= need), ttl_ms (0 = never).
-- Lease amounts stay below 2^53 (the caller caps them), so they are plain Lua numbers; limits,
-- `spent` and `held` may be larger and use the exact_* helpers (EXACT_LUA).
-- Returns {1, grant_1, free_1, ...} (free: what the counter has left after the grant), {0,
-- index, spent, held} when a need does not fit (charges and releases are still applied, nothing
-- is granted), {-1} when the mark is missing (nothing is changed).
local n = tonumber(ARGV[1])
if #KEYS > 3 * n and redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return {-1}
end
local now = tonumber(ARGV[2])
local until_ms, seq, share = now + tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fmt = function(x) return string.format('%.0f', x) end
local mine, applied_by, free = {}, {}, {}
local refused = nil
for i = 1, n do
  local counter, holds, leases = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local base = 5 + 7 * (i - 1)
  local owner = ARGV[base + 1]
  -- Release reservations and leases whose dataplane went away without settling them.
  release_stale_holds(counter, holds, now)
  local all = redis.call('HGETALL', leases)
  local amount, applied = 0, 0
  for j = 1, #all, 2 do
    local a, e, s = string.match(all[j + 1], '^(%d+):(%-?%d+):(%d+)$')
    if a and tonumber(e) <= now then
      exact_decr(counter, 'held', a)
      redis.call('HDEL', leases, all[j])
    elseif a and all[j] == owner then
      amount, applied = tonumber(a), tonumber(s)
    end
  end
  if seq > applied then
    local charge, release = tonumber(ARGV[base + 3]), ARGV[base + 4]
    -- Never more than the lease still holds (an expired lease was released whole); `all`
    -- ends the lease, whatever it holds.
    local out = amount
    if release ~= 'all' then out = math.min(amount, charge + tonumber(release)) end
    exact_decr(counter, 'held', fmt(out))
    exact_incr(counter, 'spent', fmt(charge))
    amount = amount - out
  end
  mine[i], applied_by[i] = amount, applied
  local spent = redis.call('HGET', counter, 'spent') or '0'
  local held = redis.call('HGET', counter, 'held') or '0'
  free[i] = exact_sub(ARGV[base + 2], exact_add(spent, held))
  if refused == nil and exact_gt(ARGV[base + 5], free[i]) then
    refused = {0, i, spent, held}
  end
end
local out = {1}
for i = 1, n do
  local counter, leases = KEYS[3 * i - 2], KEYS[3 * i]
  local base = 5 + 7 * (i - 1)
  local owner = ARGV[base + 1]
  local grant = 0
  if refused == nil then
    local need, want = tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
    local extra = want - need
    if #free[i] <= 15 then
      extra = math.min(extra, math.floor((tonumber(free[i]) - need) / share))
    end
    grant = need + math.max(extra, 0)
    exact_incr(counter, 'held', fmt(grant))
    free[i] = exact_sub(free[i], fmt(grant))
  end
  -- Kept at zero too, until it expires: its seq makes a retried flush apply once.
  local amount = mine[i] + grant
  redis.call('HSET', leases, owner, fmt(amount) .. ':' .. fmt(until_ms) .. ':' .. fmt(math.max(seq, applied_by[i])))
  local ttl = ARGV[base + 7]
  if ttl ~= '0' then
    redis.call('PEXPIRE', counter, ttl)
    redis.call('PEXPIRE', leases, ttl)
  end
  out[2 * i] = grant
  out[2 * i + 1] = free[i]
end
if refused ~= nil then return refused end
return out
