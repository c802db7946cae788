-- Take or keep a duty (moving delayed calls, ...): one holder at a time, for
-- a lease it renews while it works; another takes the duty once a holder that
-- stopped lets the lease run out. Returns 1 if `holder` holds it now.
-- KEYS: the duty.  ARGV: holder, lease in milliseconds.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
