-- Release a lock only if the caller still owns it (its token is the value).
-- KEYS[1] = lock key; ARGV[1] = the owner's token. Returns 1 if released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
