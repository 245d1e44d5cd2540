-- Gives a task type its index, or returns the one it has. Indexes number ids (see
-- src/model/ids.rs) and never change.
-- KEYS[1] <prefix>:{global}:types        hash type name -> index
-- KEYS[2] <prefix>:{global}:type_names   hash index -> type name
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] type name
-- ARGV[2] largest index allowed
-- Returns the index; raises SWH_TOO_MANY_TYPES past ARGV[2].
local index = redis.call('HGET', KEYS[1], ARGV[1])
if index then return tonumber(index) end
index = redis.call('HLEN', KEYS[2]) + 1
if index > tonumber(ARGV[2]) then
  return redis.error_reply('SWH_TOO_MANY_TYPES ' .. ARGV[2])
end
redis.call('HSET', KEYS[1], ARGV[1], index)
redis.call('HSET', KEYS[2], index, ARGV[1])
return index
