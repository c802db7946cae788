-- After Redis lost its data, running calls of limited stages hold their slots
-- again: a call whose job is gone gets one that says it runs on its worker at
-- its attempt (so the worker's finish is taken as usual), and its gate's slot.
-- Such a job is marked (cp_stub), so that one whose call ended meanwhile can be
-- let go (drop_stubs.lua). Returns how many were restored.
-- KEYS: (job, gate's slots) per call.  ARGV: (id, queue, worker, attempt, gate) per call.
local restored = 0
for i = 1, #KEYS, 2 do
  local a = 5 * (i - 1) / 2 + 1
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'status', 'started', 'origin', ARGV[a + 1],
               'worker_name', ARGV[a + 2], 'cp_attempt', ARGV[a + 3], 'cp_gate', ARGV[a + 4],
               'cp_stub', '1')
    redis.call('SADD', KEYS[i + 1], ARGV[a])
    restored = restored + 1
  end
end
return restored
