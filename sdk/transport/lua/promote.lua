-- Delayed calls whose time has come go to their queues: each one still among
-- the delayed calls leaves them (so two control planes moving the same call
-- move it once) and, if its job still waits as 'scheduled' (it was not
-- cancelled meanwhile), becomes 'queued' at its place in its queue, or, for a
-- call of a limited stage, waits for its gate (hold, in push_function.lua).
-- KEYS: the delayed calls, the queues set, the gates to look at, the gates'
-- sequence, then (job, queue, scheduled registry, queue's tails, gate's held
-- calls or '', parent's job or '') per call.  ARGV: timestamp, now in epoch seconds, then the id of
-- each call.
local moved = 0
for i = 5, #KEYS, 6 do
  local id = ARGV[(i - 5) / 6 + 3]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZREM', KEYS[i + 2], id)
    local job = redis.call('HMGET', KEYS[i], 'status', 'origin', 'cp_gate', 'cp_priority')
    if job[1] == 'scheduled' then
      redis.call('HSET', KEYS[i], 'status', 'queued', 'enqueued_at', ARGV[1])
      local priority = job[4] or '0'
      if job[3] and KEYS[i + 4] ~= '' then
        hold(KEYS[i], KEYS[i + 1], KEYS[i + 3], KEYS[i + 4], KEYS[i + 5], KEYS[3], KEYS[4], id,
             job[2], job[3], priority, ARGV[2])
      else
        push(KEYS[i + 1], KEYS[i + 3], id, priority)
      end
      redis.call('SADD', KEYS[2], KEYS[i + 1])
      moved = moved + 1
    end
  end
end
return moved
