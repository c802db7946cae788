-- Claiming is one atomic step: only a queued job can be started, so two workers
-- can never both start the same attempt. The same step records the start event
-- and hands back the job, saving the worker a round trip.
--
-- claim_next pops and claims in one step, from the first of the queues (in
-- priority order) that holds a claimable call, so a popped call is never left
-- unclaimed. Its KEYS from index k on are (queue, started registry) pairs; its
-- ARGV from index a on are worker, timestamp, registry score, start body and the
-- job key prefix (a job's key is known only once its id is popped).
local function claim(job, started, stream, id, worker, at, score, body)
  if redis.call('HGET', job, 'status') ~= 'queued' then return false end
  redis.call('HSET', job, 'status', 'started', 'started_at', at,
             'worker_name', worker, 'last_heartbeat', at)
  redis.call('ZADD', started, score, id)
  redis.call('XADD', stream, '*', 'kind', 'start', 'id', id, 'body', body,
             'attempt', redis.call('HGET', job, 'cp_attempt'))
  return redis.call('HGET', job, 'data')
end
local function claim_next(stream, k, a)
  for i = k, #KEYS, 2 do
    local id = redis.call('LPOP', KEYS[i])
    while id do
      local data = claim(ARGV[a + 4] .. id, KEYS[i + 1], stream, id,
                         ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
      if data then return {KEYS[i], id, data} end
      id = redis.call('LPOP', KEYS[i])
    end
  end
  return false
end
