-- Claiming is one atomic step: only a queued job can be started, so two workers
-- can never both start the same attempt. The same step records the start event
-- and hands back the job, saving the worker a round trip.
--
-- claim_next pops and claims in one step, from the first of the queues (in
-- priority order) that holds a claimable call, so a popped call is never left
-- unclaimed. A script must declare every key it touches (Redis Cluster needs
-- it), and a job's key is known only from its id: so the worker names the ids
-- it last saw at the head of each queue (its hints, with their job keys), and
-- the script pops a queue's head only when it is one of them. Any other head is
-- answered {'missed', queue, the queue's first HINTS ids}, nothing changed, and
-- the worker asks again with those. A claimed call's answer carries the new
-- first ids of its queue when the worker named fewer than HINTS_LOW (its hints
-- run out); otherwise an empty list, and the worker goes on with the ids after
-- the one it got.
--
-- Its KEYS from index k on are, per queue: the queue, its started registry,
-- then the job key of each hint; its ARGV from index a on are worker,
-- timestamp, registry score, start body, the number of queues, then per queue
-- the number of hints and the hints' ids (in the order of their job keys).
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
local HINTS, HINTS_LOW = 16, 4
local function claim_next(stream, k, a)
  local key, arg = k, a + 5
  for _ = 1, tonumber(ARGV[a + 4]) do
    local queue, started, count = KEYS[key], KEYS[key + 1], tonumber(ARGV[arg])
    local jobs = {}
    for h = 1, count do jobs[ARGV[arg + h]] = KEYS[key + 1 + h] end
    local id = redis.call('LINDEX', queue, 0)
    while id do
      if not jobs[id] then return {'missed', queue, redis.call('LRANGE', queue, 0, HINTS - 1)} end
      redis.call('LPOP', queue)
      local answer = claim(jobs[id], started, stream, id, ARGV[a], ARGV[a + 1], ARGV[a + 2],
                           ARGV[a + 3])
      if answer then
        local hints = count < HINTS_LOW and redis.call('LRANGE', queue, 0, HINTS - 1) or {}
        return {queue, id, hints, unpack(answer)}
      end
      id = redis.call('LINDEX', queue, 0)
    end
    key, arg = key + 2 + count, arg + 1 + count
  end
  return false
end
