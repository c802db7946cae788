-- Claim one queued job for a worker (see claim_functions.lua), answering with the
-- first ids of its queue too (the worker's hints for claim_next).
-- KEYS: job, started registry, events stream, queue.
-- ARGV: worker, timestamp, score, id, body.
local answer = claim(KEYS[1], KEYS[2], KEYS[3], ARGV[4], ARGV[1], ARGV[2], ARGV[3], ARGV[5])
if answer and answer[1] == 'claimed' then
  table.insert(answer, redis.call('LRANGE', KEYS[4], 0, HINTS - 1))
end
return answer
