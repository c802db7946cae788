-- Take an attempt away from its worker, which will never report it (it died or
-- hangs): a job still started by that worker at that attempt becomes 'stopped',
-- so a late finish from it is refused. If that attempt has finished after all,
-- returns its outcome (its report is on its way to the recorder), else false.
-- KEYS: job, started registry.  ARGV: worker ('' for any), attempt, id.
local job = redis.call('HMGET', KEYS[1], 'status', 'worker_name', 'cp_attempt', 'cp_outcome')
if job[3] ~= ARGV[2] then return false end
if job[1] == 'finished' or job[1] == 'failed' then return job[4] end
if job[1] == 'started' and (ARGV[1] == '' or job[2] == ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'stopped')
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return false
