-- A gate lets in as many of its held calls as its limits allow, in order
-- (priority, then arrival): each goes to its queue as 'queued' and holds a slot
-- until it has run. A slot is given back once its call is neither queued nor
-- running any more (finished, failed, cancelled, taken from a lost worker,
-- waiting again for its time or its gate): the holders are read here, so a
-- slot never leaks whoever ended the call. A rate spreads the calls it lets in
-- evenly (one each period/count seconds, a few at once when looked at late:
-- `pace` keeps when the next is due), never more than its count in any period
-- (the starts over the last period), and none while as many as it allows per
-- period still wait on their queue (a backlog behind busy workers does not
-- start all at once).
-- A held call cancelled meanwhile just leaves. Nothing is let in while Redis
-- lacks the epoch mark (it lost its data, and the running calls' slots are not
-- restored yet). The gate stays among the gates to look at while it holds
-- calls: due when its rate next allows a call in, else after `recheck` seconds
-- (a safety net: whoever ends a slot's call looks at its gate at once).
-- `late` is how late a look may come (the clock's tick): that many seconds of
-- calls may go in at once.
-- Time is Redis's own, the same for every host.
-- Returns {calls let in, calls still held, cancelled calls dropped}.
-- KEYS: slots, held calls, starts, gates to look at, queues set, epoch mark,
-- pace, then the job of each slot's holder, then (job, queue, queue's tails) per
-- candidate.  ARGV: gate, concurrency or '', rate count or '', rate period in
-- seconds or '', recheck seconds, timestamp, late seconds, number of holders,
-- the holders' ids, then the candidates (held members, in order).
local gate = ARGV[1]
local concurrency, rate, period = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local holders = tonumber(ARGV[8])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
if redis.call('EXISTS', KEYS[6]) == 0 then return {0, redis.call('ZCARD', KEYS[2]), 0} end
local queued = 0
for j = 1, holders do
  local status = redis.call('HGET', KEYS[7 + j], 'status')
  if status == 'queued' then
    queued = queued + 1
  elseif status ~= 'started' then
    redis.call('SREM', KEYS[1], ARGV[8 + j])
  end
end
local free = concurrency and concurrency - redis.call('SCARD', KEYS[1]) or math.huge
local allowed, due, interval, late = math.huge, now, 0, 0
if rate then
  interval, late = period / rate, math.min(tonumber(ARGV[7]), period)
  due = math.max(now, tonumber(redis.call('GET', KEYS[7]) or now))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - period)
  local paced = due - now <= late and math.floor((late - (due - now)) / interval) + 1 or 0
  allowed = math.min(rate - redis.call('ZCARD', KEYS[3]), rate - queued, paced)
end
local admitted, dropped = 0, 0
local first = 8 + holders
for i = first, #KEYS, 3 do
  if free <= 0 or allowed <= 0 then break end
  local member = ARGV[9 + holders + (i - first) / 3]
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head ~= member then break end  -- another let it in meanwhile: the caller looks again
  redis.call('ZREM', KEYS[2], member)
  local id = string.match(member, '(%S+)$')
  if redis.call('HGET', KEYS[i], 'status') == 'deferred' then
    redis.call('HSET', KEYS[i], 'status', 'queued', 'enqueued_at', ARGV[6])
    push(KEYS[i + 1], KEYS[i + 2], id, redis.call('HGET', KEYS[i], 'cp_priority') or '0')
    redis.call('SADD', KEYS[5], KEYS[i + 1])
    redis.call('SADD', KEYS[1], id)
    if rate then
      redis.call('ZADD', KEYS[3], now, id .. '@' .. now)
      due = due + interval
      redis.call('SET', KEYS[7], tostring(due), 'PX', math.ceil((due - now + period) * 1000))
    end
    free, allowed, admitted = free - 1, allowed - 1, admitted + 1
  else
    dropped = dropped + 1
  end
end
local left = redis.call('ZCARD', KEYS[2])
if left == 0 then
  redis.call('ZREM', KEYS[4], gate)
elseif rate and allowed <= 0 and rate - queued > 0 then
  -- held back by the rate: looked at when the pace and the period allow the next
  local at = due - late
  if redis.call('ZCARD', KEYS[3]) >= rate then
    at = math.max(at, tonumber(redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]) + period)
  end
  redis.call('ZADD', KEYS[4], math.max(at, now), gate)
else
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), gate)
end
return {admitted, left, dropped}
