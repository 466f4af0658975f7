-- Open a session, unless its account is suspended.
-- KEYS[1] = the session hash; KEYS[2] = the account's standing (generation, suspended).
-- ARGV[1] = user id, ARGV[2] = role, ARGV[3] = sha256 of the refresh secret,
-- ARGV[4] = the session's TTL in seconds.
-- Returns 1 when opened, 0 when the account is suspended, -1 when it was deleted. The session keeps the account's
-- generation of the moment: a suspension moves the generation on, which revokes every
-- session opened before it, this one too if the suspension comes between a login's check of
-- the database and this script.
if redis.call('HEXISTS', KEYS[2], 'deleted') == 1 then
  return -1
end
if redis.call('HEXISTS', KEYS[2], 'suspended') == 1 then
  return 0
end
local generation = redis.call('HGET', KEYS[2], 'generation') or '0'
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'role', ARGV[2], 'refresh', ARGV[3],
           'generation', generation)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
