-- Take cancelled calls off their queues (see unlist in push_function.lua).
-- KEYS: (queue, queue's tails, job) per call.  ARGV: the id of each call.
for i = 1, #KEYS, 3 do
  unlist(KEYS[i], KEYS[i + 1], ARGV[(i - 1) / 3 + 1], redis.call('HGET', KEYS[i + 2], 'cp_priority') or '0')
end
return 0
