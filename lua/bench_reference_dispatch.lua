-- Benchmark reference, not used by the scheduler: the least a dispatch can do. Takes due ids
-- from a zset and LPUSHes one message each (the id spliced into a fixed envelope), with no
-- runs, no task records and no queue-length check. `swh-scheduler benchmark` reports the
-- dispatch script's rate as a ratio to this one's, measured in the same run.
-- KEYS[1] zset of due ids, KEYS[2] the list to push to
-- ARGV[1] now (score bound), ARGV[2] most ids, ARGV[3] and ARGV[4] the envelope around the id
-- Returns the number of messages pushed.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #ids, 1000 do
  redis.call('ZREM', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
end
for _, id in ipairs(ids) do
  redis.call('LPUSH', KEYS[2], ARGV[3] .. id .. ARGV[4])
end
return #ids
