-- Delayed calls whose time has come go to their queues: each one still among
-- the delayed calls leaves them (so two control planes moving the same call
-- move it once) and, if its job still waits as 'scheduled' (it was not
-- cancelled meanwhile), becomes 'queued' at the end of its queue.
-- KEYS: the delayed calls, the queues set, then (job, queue, scheduled
-- registry) per call.  ARGV: timestamp, then the id of each call.
local moved = 0
for i = 3, #KEYS, 3 do
  local id = ARGV[(i - 3) / 3 + 2]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZREM', KEYS[i + 2], id)
    if redis.call('HGET', KEYS[i], 'status') == 'scheduled' then
      redis.call('HSET', KEYS[i], 'status', 'queued', 'enqueued_at', ARGV[1])
      redis.call('RPUSH', KEYS[i + 1], id)
      redis.call('SADD', KEYS[2], KEYS[i + 1])
      moved = moved + 1
    end
  end
end
return moved
