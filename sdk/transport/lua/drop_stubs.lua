-- Restored jobs (restore_slots.lua) of calls that ended while they were being
-- restored no longer hold their slots: each still 'started' as restored becomes
-- 'stopped' (a finish of the real attempt has replaced the status otherwise).
-- KEYS: the jobs.
for i = 1, #KEYS do
  local job = redis.call('HMGET', KEYS[i], 'cp_stub', 'status')
  if job[1] == '1' and job[2] == 'started' then redis.call('HSET', KEYS[i], 'status', 'stopped') end
end
return 0
