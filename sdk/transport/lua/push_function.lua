-- Putting a call on its queue in order of priority: higher first, equal ones in
-- the order they came. A queue that only ever held priority 0 is a plain list
-- (RPUSH). Once another priority comes, the queue's tails hash keeps the last
-- call of each priority in the list, and a call goes in after the last of its
-- own priority or the nearest higher one (LINSERT), or at the head when the
-- list holds none of those; a call taken out of the middle (unlist) hands its
-- place as its priority's last to the call before it.
local function push(queue, tails, id, priority)
  priority = tonumber(priority) or 0
  if redis.call('EXISTS', tails) == 0 then
    if priority == 0 then return redis.call('RPUSH', queue, id) end
    local last = redis.call('LINDEX', queue, -1)
    if last then redis.call('HSET', tails, '0', last) end
  elseif redis.call('LLEN', queue) == 0 then
    redis.call('DEL', tails)
    if priority == 0 then return redis.call('RPUSH', queue, id) end
  end
  local flat, levels, tail_of, lowest = redis.call('HGETALL', tails), {}, {}, priority
  for i = 1, #flat, 2 do
    local level = tonumber(flat[i])
    if level >= priority then
      levels[#levels + 1] = level
      tail_of[level] = flat[i + 1]
    end
    if level < lowest then lowest = level end
  end
  redis.call('HSET', tails, tostring(priority), id)
  if lowest == priority then return redis.call('RPUSH', queue, id) end  -- none lower: the end
  table.sort(levels)
  for _, level in ipairs(levels) do
    if redis.call('LINSERT', queue, 'AFTER', tail_of[level], id) > 0 then return end
    if level ~= priority then redis.call('HDEL', tails, tostring(level)) end  -- its calls all left
  end
  redis.call('LPUSH', queue, id)
end
-- Take a call off its queue wherever it is (a waiting caller takes it, or it is
-- cancelled), keeping the tails right: the call before it is its priority's
-- last now, unless that one is another priority's last (then none is left).
-- Returns how many times it was on the queue (1, or 0 when it was not).
local function unlist(queue, tails, id, priority)
  if redis.call('HGET', tails, priority) == id then
    local at = redis.call('LPOS', queue, id)
    local before = at and at > 0 and redis.call('LINDEX', queue, at - 1)
    local last_of_other = false
    if before then
      for _, tail in ipairs(redis.call('HVALS', tails)) do
        if tail == before then last_of_other = true end
      end
    end
    if before and not last_of_other then
      redis.call('HSET', tails, priority, before)
    else
      redis.call('HDEL', tails, priority)
    end
  end
  return redis.call('LREM', queue, 0, id)
end
-- A call of a limited stage waits for its gate (admit.lua) in the gate's held
-- calls, by priority then order of arrival, unless its parent is a call of the
-- same gate that has not finished: then it shares its parent's slot (its parent
-- runs, or will, and waits on it) and goes straight to its queue. A gate with
-- held calls is among the gates to look at (due now) until admit.lua says
-- otherwise. Returns true if the call is held.
local function hold(job, queue, tails, held, parent, gates, seq, id, queue_name, gate, priority, now)
  redis.call('HSET', job, 'cp_gate', gate, 'cp_priority', priority)
  if parent ~= '' then
    local mark = redis.call('HMGET', parent, 'cp_gate', 'status')
    if mark[1] == gate and (mark[2] == 'started' or mark[2] == 'queued'
                            or mark[2] == 'deferred' or mark[2] == 'scheduled') then
      redis.call('HSET', job, 'status', 'queued')
      push(queue, tails, id, priority)
      return false
    end
  end
  redis.call('HSET', job, 'status', 'deferred')
  local member = string.format('%015d', redis.call('INCR', seq)) .. ' ' .. queue_name .. ' ' .. id
  redis.call('ZADD', held, -tonumber(priority), member)
  redis.call('ZADD', gates, 'NX', now, gate)
  return true
end
