-- Revoke every session of an account but one (a password change keeps the caller's session).
-- KEYS[1] = the account's standing (generation); KEYS[2] = the session to keep.
-- ARGV[1] = the account's user id.
-- The generation moves on, which revokes every session opened before; the kept session is
-- moved to the new generation in the same step, so no request sees it revoked. Returns 1, or 0
-- when the session to keep is not the account's or was revoked already (then it stays
-- revoked: a suspension that came first is not undone).
local before = redis.call('HGET', KEYS[1], 'generation') or '0'
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
local session = redis.call('HMGET', KEYS[2], 'user', 'generation')
if session[1] ~= ARGV[1] or (session[2] or '0') ~= before then
  return 0
end
redis.call('HSET', KEYS[2], 'generation', generation)
return 1
