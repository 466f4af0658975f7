-- Give an order's remaining gate holds back to the counters (checkout failed, or the order
-- ended before its stock was reserved). KEYS[1] = the order's hold hash. Returns the number
-- of holds returned; holds already consumed by a reservation are gone from the hash.
local holds = redis.call('HGETALL', KEYS[1])
for i = 1, #holds, 2 do
  if redis.call('EXISTS', holds[i]) == 1 then
    redis.call('INCRBY', holds[i], holds[i + 1])
  end
end
redis.call('DEL', KEYS[1])
return #holds / 2
