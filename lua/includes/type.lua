-- Reads the fields of a task type that scripts need; raises SWH_UNKNOWN_TYPE if the type does not
-- exist, or if `expected_index` (optional: the index the caller numbered its ids with) is not the
-- type's index any more (the data was replaced under a caller's cache: FLUSHDB, a restore, a
-- failover). Scripts call it before their first write: Redis does not roll a script back.
local function load_type(type_key, expected_index)
  local v = redis.call('HMGET', type_key, 'index', 'default_interval', 'min_interval',
    'max_interval', 'backoff_factor', 'num_retries', 'retry_delay', 'backend_name',
    'max_queue_length')
  if not v[1] then
    error(redis.error_reply('SWH_UNKNOWN_TYPE ' .. string.match(type_key, '{(.-)}')))
  end
  if expected_index and expected_index ~= '' and tonumber(v[1]) ~= tonumber(expected_index) then
    error(redis.error_reply('SWH_UNKNOWN_TYPE ' .. string.match(type_key, '{(.-)}')))
  end
  return {
    index = tonumber(v[1]),
    default_interval = tonumber(v[2]),
    min_interval = tonumber(v[3]),
    max_interval = tonumber(v[4]),
    backoff_factor = tonumber(v[5]),
    num_retries = tonumber(v[6]),
    retry_delay = tonumber(v[7]),
    backend_name = v[8],
    max_queue_length = tonumber(v[9]),
  }
end

local function run_id(tt, seq)
  return tt.index * 1099511627776 + seq -- 2^40, see src/model/ids.rs
end
