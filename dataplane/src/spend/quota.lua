-- Takes one request and ARGV[1] tokens from a provider account's counter for this minute
-- (KEYS[1], a hash with fields r and t), all or nothing. ARGV[2], ARGV[3]: the requests and
-- tokens per minute allowed (0: no limit of that kind); ARGV[4]: the counter's time to live, ms,
-- from the caller's clock. Returns 1 when taken, 0 when the quota would be exceeded.
local tokens = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
if (rpm > 0 and r + 1 > rpm) or (tpm > 0 and t + tokens > tpm) then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HINCRBY', KEYS[1], 't', tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
