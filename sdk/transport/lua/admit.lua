-- A gate lets in as many of its held calls as its limits allow, in order
-- (priority, then arrival): each goes to its queue as 'queued' and takes a
-- slot (concurrency) and a start (rate). A slot is given back once its call is
-- neither queued nor running any more (finished, failed, cancelled, taken from
-- a lost worker, waiting again for its time or its gate): the holders are read
-- here, so a slot never leaks whoever ended the call. A held call cancelled
-- meanwhile just leaves. The gate stays among the gates to look at while it
-- holds calls: due when the rate next allows a start, else after `recheck`
-- seconds (a safety net: whoever ends a slot's call looks at its gate at once).
-- Returns {calls let in, calls still held}.
-- KEYS: slots, held calls, starts, gates to look at, queues set, then the job of
-- each slot's holder, then (job, queue, queue's tails) per candidate.
-- ARGV: gate, now (epoch seconds), concurrency or '', rate count or '', rate
-- period in seconds or '', recheck seconds, timestamp, number of holders, the
-- holders' ids, then the candidates (held members, in order).
local gate, now = ARGV[1], tonumber(ARGV[2])
local concurrency, rate, period = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local holders = tonumber(ARGV[8])
for j = 1, holders do
  local status = redis.call('HGET', KEYS[5 + j], 'status')
  if status ~= 'queued' and status ~= 'started' then redis.call('SREM', KEYS[1], ARGV[8 + j]) end
end
local free = concurrency and concurrency - redis.call('SCARD', KEYS[1]) or math.huge
local allowed = math.huge
if rate then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - period)
  allowed = rate - redis.call('ZCARD', KEYS[3])
end
local admitted = 0
local first = 6 + holders
for i = first, #KEYS, 3 do
  if free <= 0 or allowed <= 0 then break end
  local member = ARGV[9 + holders + (i - first) / 3]
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head ~= member then break end  -- another let it in meanwhile: the caller looks again
  redis.call('ZREM', KEYS[2], member)
  local id = string.match(member, '(%S+)$')
  if redis.call('HGET', KEYS[i], 'status') == 'deferred' then
    redis.call('HSET', KEYS[i], 'status', 'queued', 'enqueued_at', ARGV[7])
    push(KEYS[i + 1], KEYS[i + 2], id, redis.call('HGET', KEYS[i], 'cp_priority') or '0')
    redis.call('SADD', KEYS[5], KEYS[i + 1])
    if concurrency then redis.call('SADD', KEYS[1], id) end
    if rate then redis.call('ZADD', KEYS[3], now, id .. '@' .. ARGV[2]) end
    free, allowed, admitted = free - 1, allowed - 1, admitted + 1
  end
end
local left = redis.call('ZCARD', KEYS[2])
if left == 0 then
  redis.call('ZREM', KEYS[4], gate)
elseif rate and allowed <= 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[4], tonumber(oldest[2]) + period, gate)
else
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), gate)
end
return {admitted, left}
