-- A job a worker will not run (callplane did not write it, or not as it is):
-- out of the started registry (if its claim put it there), into the failed
-- registry with the reason, and counted. Nothing is reported for it: it is no
-- call of callplane's.
-- KEYS: job, started registry, failed registry, counter.  ARGV: id, reason,
-- timestamp, failed-registry score.
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'failed', 'exc_info', ARGV[2], 'ended_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return redis.call('INCR', KEYS[4])
