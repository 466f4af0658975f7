-- Turn the caller's claim into the order it placed, kept for the double-submit window.
-- KEYS[1] = the fingerprint's key; ARGV[1] = the caller's claim, ARGV[2] = "order:<id>",
-- ARGV[3] = the window in ms. Returns 1, or 0 when the claim is no longer the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
