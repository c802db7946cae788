-- A job a worker will not run (callplane did not write it, or not as it is):
-- out of the started registry (if its claim put it there), into the failed
-- registry with the reason, and counted. Nothing is reported for it: it is no
-- call of callplane's. Marked refused: if its id names a real call (a job
-- queued before jobs were signed, or tampered with), that call is queued again
-- from the table, with a job of its own (see untracked.lua and enqueue.lua).
-- KEYS: job, started registry, failed registry, counter.  ARGV: id, reason,
-- timestamp, failed-registry score.
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'failed', 'exc_info', ARGV[2], 'ended_at', ARGV[3],
           'cp_refused', '1')
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return redis.call('INCR', KEYS[4])
