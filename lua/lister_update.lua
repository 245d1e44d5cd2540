-- Saves a lister's name, instance name and state if the caller's copy is the stored one (its
-- `updated` matches): the original's update_lister, a compare-and-set. `updated` strictly
-- increases, even when the server clock does not.
-- KEYS[1] <prefix>:{global}:lister_ids          hash "<name>\n<instance_name>" -> id
-- KEYS[2] <prefix>:{global}:lister:<ARGV[1]>    the lister's hash
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] the lister's id
-- ARGV[2] the caller's `updated`, in us
-- ARGV[3] name
-- ARGV[4] instance_name
-- ARGV[5] current_state (JSON object text)
-- Returns the new `updated` in us. Raises SWH_STALE_DATA if the lister does not exist or was
-- updated since, SWH_LISTER_EXISTS if renamed to another lister's name; nothing is written then.
local cur = redis.call('HMGET', KEYS[2], 'updated', 'name', 'instance_name')
if not cur[1] or cur[1] ~= ARGV[2] then
  return redis.error_reply('SWH_STALE_DATA Lister state not updated')
end
local old_key = cur[2] .. '\n' .. cur[3]
local new_key = ARGV[3] .. '\n' .. ARGV[4]
if new_key ~= old_key then
  if redis.call('HEXISTS', KEYS[1], new_key) == 1 then
    return redis.error_reply('SWH_LISTER_EXISTS ' .. ARGV[3] .. ' ' .. ARGV[4])
  end
  redis.call('HDEL', KEYS[1], old_key)
  redis.call('HSET', KEYS[1], new_key, ARGV[1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local updated = math.max(now, tonumber(cur[1]) + 1)
redis.call('HSET', KEYS[2], 'name', ARGV[3], 'instance_name', ARGV[4],
  'current_state', ARGV[5], 'updated', string.format('%d', updated))
return updated
