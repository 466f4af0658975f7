-- Keep one availability counter in step with one stock line (the counters are a projection
-- of stock-events). A versioned line is applied only if its version is newer than the one
-- the counter last applied (kept beside it); a line of an event written before items had
-- versions is applied once per event id (a dedup key with a TTL, as before).
-- KEYS[1] = the counter, KEYS[2] = the line's order's hold hash (or a dummy key),
-- KEYS[3] = the item's applied version (versioned line) or the event's dedup key (not).
-- ARGV[1] = change (reserved, committed, released, returned, expired, adjusted),
-- ARGV[2] = quantity (signed for adjusted), ARGV[3] = the ledger's available after the line
-- (on_hand - reserved), ARGV[4] = 1 if the item is unlimited, ARGV[5] = dedup TTL in seconds,
-- ARGV[6] = the item's version after the line, or '' for an unversioned line.
-- Returns 1 if applied, 0 for a duplicate (or an older version).
local version = tonumber(ARGV[6])
if version then
  if version <= tonumber(redis.call('GET', KEYS[3]) or '0') then
    return 0
  end
  redis.call('SET', KEYS[3], ARGV[6])
elseif not redis.call('SET', KEYS[3], 1, 'NX', 'EX', tonumber(ARGV[5])) then
  return 0
end
local change, qty = ARGV[1], tonumber(ARGV[2])
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[1])  -- unlimited: nothing to gate (the version stays)
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- First sight of this item: start from the ledger (holds in flight are not known yet).
  redis.call('SET', KEYS[1], ARGV[3])
  if change == 'reserved' then redis.call('HDEL', KEYS[2], KEYS[1]) end
  return 1
end
if change == 'reserved' then
  -- Held by the gate at checkout: already subtracted. Otherwise subtract now.
  if redis.call('HDEL', KEYS[2], KEYS[1]) == 0 then redis.call('DECRBY', KEYS[1], qty) end
elseif change == 'released' or change == 'expired' or change == 'returned' then
  redis.call('INCRBY', KEYS[1], qty)
elseif change == 'adjusted' then
  redis.call('INCRBY', KEYS[1], qty)
end
return 1
