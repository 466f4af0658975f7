-- Rotate a session's refresh token, or revoke the session when an old one is replayed.
-- KEYS[1] = the session hash; ARGV[1] = sha256 of the presented secret,
-- ARGV[2] = sha256 of the new secret, ARGV[3] = the session's TTL in seconds.
-- Returns {1, user, role} when rotated, {0} for an unknown session, {-1} for a reused token
-- (the whole session, every token of its family, is revoked).
local current = redis.call('HGET', KEYS[1], 'refresh')
if not current then
  return {0}
end
if current ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {-1}
end
redis.call('HSET', KEYS[1], 'refresh', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, redis.call('HGET', KEYS[1], 'user'), redis.call('HGET', KEYS[1], 'role')}
