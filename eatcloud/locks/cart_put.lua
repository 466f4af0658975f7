-- Set one menu's quantity in a customer's cart; a cart holds one store's menus only.
-- KEYS[1] = cart hash; ARGV[1] = store id, ARGV[2] = menu id, ARGV[3] = quantity (0 removes),
-- ARGV[4] = TTL in seconds. Returns 1, or -1 when the cart holds another store's menus.
local store = redis.call('HGET', KEYS[1], 'store')
if store and store ~= ARGV[1] and redis.call('HLEN', KEYS[1]) > 1 then
  return -1
end
local field = 'm:' .. ARGV[2]
if tonumber(ARGV[3]) == 0 then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], 'store', ARGV[1], field, ARGV[3])
end
if redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('DEL', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
return 1
