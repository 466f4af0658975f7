-- A token bucket: admit a request if the bucket holds a token, refilling at a steady rate.
-- KEYS[1] = the bucket (a hash: tokens, at); ARGV[1] = capacity, ARGV[2] = tokens per second.
-- Time comes from the Redis server, so every API replica shares one clock.
-- Returns {1, 0} when admitted, {0, ms until the next token} when refused.
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(bucket[1]), tonumber(bucket[2])
if not tokens then
  tokens, at = capacity, now
end
tokens = math.min(capacity, tokens + (now - at) * rate / 1000)
local admitted = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  admitted = 1
else
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {admitted, wait_ms}
