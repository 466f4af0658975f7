-- Rotate a session's refresh token, or revoke the session when an old one is replayed.
-- KEYS[1] = the session hash; KEYS[2] = its account's standing (generation, suspended).
-- ARGV[1] = sha256 of the presented secret, ARGV[2] = sha256 of the new secret,
-- ARGV[3] = the session's TTL in seconds, ARGV[4] = how many retired secrets the session
-- remembers.
-- Returns {1, user, role} when rotated, {0} for an unknown session, {-1} for a reused token
-- (a secret this session had before: the whole session, every token of its family, is
-- revoked), {-2} for a secret the session never had (refused; the session goes on, so that
-- knowing a session id is not enough to log its owner out), {-3} when the account is
-- suspended and {-4} when the session was revoked by a suspension (an older generation of
-- the account); in those two cases nothing changes, so the same token gets the same answer.
local current = redis.call('HGET', KEYS[1], 'refresh')
if not current then
  return {0}
end
local retired = redis.call('HGET', KEYS[1], 'retired') or ''
if current ~= ARGV[1] then
  if string.find(retired, ARGV[1], 1, true) then
    redis.call('DEL', KEYS[1])
    return {-1}
  end
  return {-2}
end
if redis.call('HEXISTS', KEYS[2], 'suspended') == 1 then
  return {-3}
end
local generation = redis.call('HGET', KEYS[1], 'generation') or '0'
if generation ~= (redis.call('HGET', KEYS[2], 'generation') or '0') then
  return {-4}
end
-- Newest first; each digest is 64 hex characters and a comma.
retired = string.sub(ARGV[1] .. ',' .. retired, 1, 65 * tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'refresh', ARGV[2], 'retired', retired)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, redis.call('HGET', KEYS[1], 'user'), redis.call('HGET', KEYS[1], 'role')}
