-- Claim one queued job for a worker (see claim_functions.lua).
-- KEYS: job, started registry, events stream.  ARGV: worker, timestamp, score, id, body.
return claim(KEYS[1], KEYS[2], KEYS[3], ARGV[4], ARGV[1], ARGV[2], ARGV[3], ARGV[5])
