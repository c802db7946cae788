-- A waiting caller takes one of its still-queued calls to run itself (newest
-- first: idle workers pop from the other end). If none is left in a queue, it
-- notes what it now waits on, for the API to show.
-- KEYS: what the waiter waits on ('' for none), then the queues of the candidates.
-- ARGV: what it waits on (JSON), its ttl, then the candidates' ids.
for i = 2, #KEYS do
  if redis.call('LREM', KEYS[i], 1, ARGV[i + 1]) == 1 then return ARGV[i + 1] end
end
if KEYS[1] ~= '' and ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return false
