-- Pop and claim the first claimable job of the queues, among those the worker
-- expects at their heads (see claim_functions.lua).
-- KEYS: events stream, then per queue: queue, started registry, hints' job keys.
-- ARGV: worker, timestamp, score, start body, queue count, per queue: hint count, hints.
return claim_next(KEYS[1], 2, 1)
