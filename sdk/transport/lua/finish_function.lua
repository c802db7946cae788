-- Only the worker that started this attempt of a job can finish it; the result
-- lands in the job hash (for waiters and rq-dashboard) and in the event stream
-- (for the recorder). Returns 1 (also for a repeated report), or 0 if the
-- attempt is no longer the worker's, or -1 if the job is gone (Redis lost it):
-- the worker then reports another way.
-- KEYS: job, started registry, finished or failed registry, events stream.
-- ARGV: worker, outcome, status, timestamp, registry score, id, exc_info, the
-- channel that hears a child's completion ('' for a call without parent), attempt.
local function finish()
  local job = redis.call('HMGET', KEYS[1], 'status', 'worker_name', 'cp_attempt')
  if not job[1] then return -1 end
  if job[2] ~= ARGV[1] or job[3] ~= ARGV[9] then return 0 end
  if job[1] == 'finished' or job[1] == 'failed' then return 1 end  -- a repeated report
  if job[1] ~= 'started' then return 0 end
  redis.call('HSET', KEYS[1], 'status', ARGV[3], 'ended_at', ARGV[4], 'cp_outcome', ARGV[2])
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'exc_info', ARGV[7]) end
  redis.call('ZREM', KEYS[2], ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
  redis.call('XADD', KEYS[4], '*', 'kind', 'finish', 'id', ARGV[6], 'body', ARGV[2])
  if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[6]) end
  return 1
end
