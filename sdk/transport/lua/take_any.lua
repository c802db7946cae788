-- A waiting caller takes one of its still-queued calls to run itself (newest
-- first: idle workers pop from the other end), keeping its queue's order of
-- priority (unlist, in push_function.lua). If none is left in a queue, it notes
-- what it now waits on, for the API to show.
-- KEYS: what the waiter waits on ('' for none), then (queue, queue's tails, job)
-- per candidate.  ARGV: what it waits on (JSON), its ttl, then the candidates' ids.
for i = 2, #KEYS, 3 do
  local id = ARGV[(i - 2) / 3 + 3]
  local priority = redis.call('HGET', KEYS[i + 2], 'cp_priority') or '0'
  if unlist(KEYS[i], KEYS[i + 1], id, priority) > 0 then return id end
end
if KEYS[1] ~= '' and ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return false
