-- Pop and claim the first claimable job of the queues (see claim_functions.lua).
-- KEYS: events stream, then (queue, started registry) pairs.
-- ARGV: worker, timestamp, score, start body, job key prefix.
return claim_next(KEYS[1], 2, 1)
