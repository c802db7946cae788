-- After the table recorded a batch of completions: let the jobs expire, tell
-- every listener with one broadcast (the ids, space-separated) and forget the
-- events.
-- KEYS: events stream, then the job keys.  ARGV: ttl, channel, group, the ids
-- as one message, then the event ids.
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[4]) end
for i = 5, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[3], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return #KEYS - 1
