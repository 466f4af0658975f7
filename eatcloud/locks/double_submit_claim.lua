-- Claim a checkout's fingerprint for the caller, or say who holds it.
-- KEYS[1] = the fingerprint's key; ARGV[1] = the caller's claim ("pending:<token>"),
-- ARGV[2] = how long an unfinished claim holds, in ms. Returns nil when the caller has it,
-- else the value held: "pending:<token>" (a checkout still running) or "order:<id>".
local held = redis.call('GET', KEYS[1])
if held then
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
