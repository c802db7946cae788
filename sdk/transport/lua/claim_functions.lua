-- Claiming is one atomic step: only a queued job can be started, so two workers
-- can never both start the same attempt. The same step records the start event
-- and hands back the job, saving the worker a round trip.
--
-- claim_next pops and claims in one step, from the first of the queues (in
-- priority order) that holds a claimable call, so a popped call is never left
-- unclaimed. Its KEYS from index k on are (queue, started registry) pairs; its
-- ARGV from index a on are worker, timestamp, registry score, start body and the
-- job key prefix (a job's key is known only once its id is popped).
--
-- A job is checked before anything changes: one that is not callplane's layout
-- (data past ASCII, as pickle or text that is not UTF-8 is; no attempt) is
-- answered {'refused', why} and left for the worker to set aside. A claimed one
-- is answered {'claimed', data, attempt, signature}: the worker checks the
-- signature before it reads the data.
local function claim(job, started, stream, id, worker, at, score, body)
  local fields = redis.call('HMGET', job, 'status', 'data', 'cp_attempt', 'cp_signature')
  if fields[1] ~= 'queued' then return false end
  local data, attempt = fields[2], fields[3]
  if not data or string.find(data, '[\128-\255]') then
    return {'refused', 'its data is not callplane JSON (pickle, or text that is not UTF-8?)'}
  end
  if not attempt or not tonumber(attempt) then
    return {'refused', 'it has no cp_attempt'}
  end
  redis.call('HSET', job, 'status', 'started', 'started_at', at,
             'worker_name', worker, 'last_heartbeat', at)
  redis.call('ZADD', started, score, id)
  redis.call('XADD', stream, '*', 'kind', 'start', 'id', id, 'body', body, 'attempt', attempt)
  return {'claimed', data, attempt, fields[4] or ''}
end
local function claim_next(stream, k, a)
  for i = k, #KEYS, 2 do
    local id = redis.call('LPOP', KEYS[i])
    while id do
      local answer = claim(ARGV[a + 4] .. id, KEYS[i + 1], stream, id,
                           ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
      if answer then return {KEYS[i], id, unpack(answer)} end
      id = redis.call('LPOP', KEYS[i])
    end
  end
  return false
end
