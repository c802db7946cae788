-- A gate lets in as many of its held calls as its limits allow, in order
-- (priority, then arrival): each goes to its queue as 'queued' and holds a slot
-- until it has run. A slot is given back once its call is neither queued nor
-- running any more (finished, failed, cancelled, taken from a lost worker,
-- waiting again for its time or its gate): the holders are read here, so a
-- slot never leaks whoever ended the call. A rate counts the calls let in over
-- its period, and lets no more in while as many as it allows per period are
-- still queued (so a backlog behind busy workers does not start all at once).
-- A held call cancelled meanwhile just leaves. Nothing is let in while Redis
-- lacks the epoch mark (it lost its data, and the running calls' slots are not
-- restored yet). The gate stays among the gates to look at while it holds
-- calls: due when its rate next allows a call in, else after `recheck` seconds
-- (a safety net: whoever ends a slot's call looks at its gate at once).
-- Time is Redis's own, the same for every host.
-- Returns {calls let in, calls still held, cancelled calls dropped}.
-- KEYS: slots, held calls, starts, gates to look at, queues set, epoch mark, then
-- the job of each slot's holder, then (job, queue, queue's tails) per candidate.
-- ARGV: gate, concurrency or '', rate count or '', rate period in seconds or '',
-- recheck seconds, timestamp, number of holders, the holders' ids, then the
-- candidates (held members, in order).
local gate = ARGV[1]
local concurrency, rate, period = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local holders = tonumber(ARGV[7])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
if redis.call('EXISTS', KEYS[6]) == 0 then return {0, redis.call('ZCARD', KEYS[2]), 0} end
local queued = 0
for j = 1, holders do
  local status = redis.call('HGET', KEYS[6 + j], 'status')
  if status == 'queued' then
    queued = queued + 1
  elseif status ~= 'started' then
    redis.call('SREM', KEYS[1], ARGV[7 + j])
  end
end
local free = concurrency and concurrency - redis.call('SCARD', KEYS[1]) or math.huge
local allowed = math.huge
if rate then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - period)
  allowed = math.min(rate - redis.call('ZCARD', KEYS[3]), rate - queued)
end
local admitted, dropped = 0, 0
local first = 7 + holders
for i = first, #KEYS, 3 do
  if free <= 0 or allowed <= 0 then break end
  local member = ARGV[8 + holders + (i - first) / 3]
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head ~= member then break end  -- another let it in meanwhile: the caller looks again
  redis.call('ZREM', KEYS[2], member)
  local id = string.match(member, '(%S+)$')
  if redis.call('HGET', KEYS[i], 'status') == 'deferred' then
    redis.call('HSET', KEYS[i], 'status', 'queued', 'enqueued_at', ARGV[6])
    push(KEYS[i + 1], KEYS[i + 2], id, redis.call('HGET', KEYS[i], 'cp_priority') or '0')
    redis.call('SADD', KEYS[5], KEYS[i + 1])
    redis.call('SADD', KEYS[1], id)
    if rate then redis.call('ZADD', KEYS[3], now, id .. '@' .. now) end
    free, allowed, admitted = free - 1, allowed - 1, admitted + 1
  else
    dropped = dropped + 1
  end
end
local left = redis.call('ZCARD', KEYS[2])
if left == 0 then
  redis.call('ZREM', KEYS[4], gate)
elseif rate and allowed <= 0 and redis.call('ZCARD', KEYS[3]) >= rate then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[4], tonumber(oldest[2]) + period, gate)
else
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), gate)
end
return {admitted, left, dropped}
