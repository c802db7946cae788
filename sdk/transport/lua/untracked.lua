-- Which of these pending calls Redis has lost track of: no job, a job of an
-- earlier attempt, a job taken away from its worker ('stopped'), a job a worker
-- refused to run (see set_aside.lua), a job that says queued while its id is
-- on no queue (a worker died right after popping it, or someone emptied the
-- queue), or one that says scheduled while it is not among the delayed calls.
-- Each queue is read once.
-- KEYS: the delayed calls, then (job, queue) per call.  ARGV: (id, attempt) per call.
local listed, lost = {}, {}
for i = 2, #KEYS, 2 do
  local id, attempt = ARGV[i - 1], ARGV[i]
  local job = redis.call('HMGET', KEYS[i], 'status', 'cp_attempt', 'cp_refused')
  local gone = not job[1] or job[2] ~= attempt or job[1] == 'stopped' or job[3]
  if job[1] == 'queued' and not gone then
    local queue = KEYS[i + 1]
    if not listed[queue] then
      listed[queue] = {}
      for _, member in ipairs(redis.call('LRANGE', queue, 0, -1)) do listed[queue][member] = true end
    end
    gone = not listed[queue][id]
  elseif job[1] == 'scheduled' and not gone then
    gone = not redis.call('ZSCORE', KEYS[1], id)
  end
  if gone then table.insert(lost, id) end
end
return lost
