-- A busy worker's loop in one round trip: finish a call, claim the next.
-- KEYS and ARGV: finish's, then claim_next's pairs and arguments.
return {finish(), claim_next(KEYS[4], 5, 10)}
