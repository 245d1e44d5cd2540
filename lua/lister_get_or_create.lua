-- Finds the lister (name, instance_name), or creates it: the original's get_or_create_lister
-- (insert on conflict do nothing, then select). Lister records are few and global.
-- KEYS[1] <prefix>:{global}:lister_ids          hash "<name>\n<instance_name>" -> id
-- KEYS[2] <prefix>:{global}:listers             list of ids, in creation order
-- KEYS[3] <prefix>:{global}:lister:<ARGV[3]>    the new lister's hash, if it is created
-- KEYS[4] <prefix>:{global}:lister_idx          hash index -> id, and seq: the last index
--         (listings name their lister by this small index)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] name
-- ARGV[2] instance_name ('' for none)
-- ARGV[3] the id to give a new lister (a UUID the caller made)
-- Returns the lister's id (an existing one's hash is read by the caller). Raises
-- SWH_TOO_MANY_LISTERS, writing nothing, past 65535 listers (listings hold the index in two
-- bytes, see includes/origin.lua).
local key = ARGV[1] .. '\n' .. ARGV[2]
local id = redis.call('HGET', KEYS[1], key)
if id then return id end
if tonumber(redis.call('HGET', KEYS[4], 'seq') or '0') >= 65535 then
  return redis.error_reply('SWH_TOO_MANY_LISTERS 65535')
end
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
redis.call('HSET', KEYS[1], key, ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[3])
local idx = redis.call('HINCRBY', KEYS[4], 'seq', 1)
redis.call('HSET', KEYS[4], idx, ARGV[3])
redis.call('HSET', KEYS[3], 'name', ARGV[1], 'instance_name', ARGV[2], 'created', now,
  'updated', now, 'current_state', '{}', 'idx', idx)
return ARGV[3]
