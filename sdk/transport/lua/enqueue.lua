-- New calls, or new attempts of calls: each job's hash (without an earlier
-- attempt's outcome), then its queue, atomically (a worker never pops an id
-- whose job is not written). A delayed call (its due time given) waits instead
-- among the delayed calls and in RQ's scheduled registry, as 'scheduled', until
-- the clock duty moves it to its queue (promote.lua). A call of a limited stage
-- waits for its gate instead of its queue (hold, in push_function.lua). A job
-- that a worker has taken at the same attempt (started, finished, failed or
-- cancelled) is left alone: queueing a call again (after Redis lost track of
-- it) must never hand one attempt to two workers. A new attempt of a failed or
-- cancelled call leaves RQ's failed and canceled registries, so rq info and
-- rq-dashboard count what the table holds.
-- One command for a whole batch: a pipeline of commands per call cost more to
-- build and parse than the work Redis does.
-- KEYS: the queues set, the delayed calls, the gates to look at, the gates'
-- sequence, then (job, queue, failed registry, canceled registry, scheduled
-- registry, queue's tails, gate's held calls or '', parent's job or '') per call.
-- ARGV: timestamp, result ttl, now in epoch seconds, then (id, data, attempt,
-- queue name, description, signature, due time in epoch seconds or '',
-- priority, gate or '') per call.
local queued = 0
for i = 5, #KEYS, 8 do
  local a = 4 + 9 * ((i - 5) / 8)
  local id, due, priority, gate = ARGV[a], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local job = redis.call('HMGET', KEYS[i], 'status', 'cp_attempt', 'cp_refused')
  local held = job[2] == ARGV[a + 2] and job[1] ~= 'queued' and job[1] ~= 'stopped'
               and job[1] ~= 'scheduled' and job[1] ~= 'deferred' and not job[3]
  if not held then
    redis.call('HSET', KEYS[i], 'data', ARGV[a + 1], 'origin', ARGV[a + 3],
               'description', ARGV[a + 4], 'created_at', ARGV[1], 'enqueued_at', ARGV[1],
               'status', due == '' and 'queued' or 'scheduled', 'timeout', -1,
               'result_ttl', ARGV[2], 'cp_attempt', ARGV[a + 2], 'cp_signature', ARGV[a + 5])
    redis.call('HDEL', KEYS[i], 'cp_outcome', 'exc_info', 'ended_at', 'worker_name', 'started_at',
               'cp_refused', 'cp_gate', 'cp_priority', 'cp_parent_job')
    redis.call('PERSIST', KEYS[i])
    if job[1] then
      redis.call('ZREM', KEYS[i + 2], id)
      redis.call('ZREM', KEYS[i + 3], id)
    end
    if KEYS[i + 7] ~= '' then redis.call('HSET', KEYS[i], 'cp_parent_job', KEYS[i + 7]) end
    if priority ~= '0' then redis.call('HSET', KEYS[i], 'cp_priority', priority) end
    if due ~= '' then
      if gate ~= '' then redis.call('HSET', KEYS[i], 'cp_gate', gate) end
      redis.call('ZADD', KEYS[2], due, id)
      redis.call('ZADD', KEYS[i + 4], due, id)
    else
      if gate == '' then
        push(KEYS[i + 1], KEYS[i + 5], id, priority)
      else
        hold(KEYS[i], KEYS[i + 1], KEYS[i + 5], KEYS[i + 6], KEYS[i + 7], KEYS[3], KEYS[4],
             id, ARGV[a + 3], gate, priority, ARGV[3])
      end
      redis.call('SADD', KEYS[1], KEYS[i + 1])
    end
    queued = queued + 1
  end
end
return queued
