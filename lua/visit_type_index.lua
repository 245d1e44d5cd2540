-- The small index of a visit type, given on first use: the visit runner's Celery task ids
-- carry it (see src/model/ids.rs), so that the listener finds the visit type of a result.
-- KEYS[1] <prefix>:{global}:visit_type_idx  hash "n:<name>" -> index, "i:<index>" -> name,
--         and seq: the last index given
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] the visit type
-- ARGV[2] the largest index there may be
-- Returns the index, or an error when every index is taken.
local idx = redis.call('HGET', KEYS[1], 'n:' .. ARGV[1])
if idx then return tonumber(idx) end
idx = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if idx > tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], 'seq', -1)
  return redis.error_reply('more than ' .. ARGV[2] .. ' visit types have been sent')
end
redis.call('HSET', KEYS[1], 'n:' .. ARGV[1], idx, 'i:' .. idx, ARGV[1])
return idx
