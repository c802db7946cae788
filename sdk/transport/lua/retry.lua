-- A worker runs an attempt that raised again, in its own slot: its job (if it
-- has one: a call run in place has none) moves to the next attempt, so only that
-- attempt can finish it, and the recorder hears of the failed one. Returns 0 if
-- the attempt is no longer this worker's.
-- KEYS: job, events stream.  ARGV: worker, attempt, id, body.
local job = redis.call('HMGET', KEYS[1], 'status', 'worker_name', 'cp_attempt')
if job[1] then
  if job[1] ~= 'started' or job[2] ~= ARGV[1] or job[3] ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[1], 'cp_attempt', tonumber(ARGV[2]) + 1)
end
redis.call('XADD', KEYS[2], '*', 'kind', 'retry', 'id', ARGV[3], 'body', ARGV[4])
return 1
