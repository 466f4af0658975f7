-- The hot-path stock gate: admit an order only if every line fits the known availability,
-- and hold what it admitted. An admission filter, never the truth: the stock agent decides.
-- KEYS[1] = the order's hold hash; KEYS[2..n+1] = availability counters, one per line.
-- ARGV[1] = hold TTL in seconds; ARGV[2..n+1] = quantities; ARGV[n+2..2n+1] = menu ids.
-- A missing counter means "unknown" (never projected, or unlimited): the line is admitted
-- and not held. Returns {1} when admitted, or {0, menu id, available} for the first line
-- that does not fit.
local n = #KEYS - 1
for i = 1, n do
  local available = redis.call('GET', KEYS[i + 1])
  if available and tonumber(available) < tonumber(ARGV[i + 1]) then
    return {0, ARGV[n + 1 + i], tonumber(available)}
  end
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('DECRBY', KEYS[i + 1], ARGV[i + 1])
    redis.call('HSET', KEYS[1], KEYS[i + 1], ARGV[i + 1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return {1}
