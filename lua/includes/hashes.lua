-- Reading small hashes. A listpack-encoded hash finds each field of an HMGET by a scan of it,
-- so a call that wants half of such a hash or more reads it whole instead.

-- The fields of hash `key`, field -> value.
local function hash_fields(key)
  local all, got = redis.call('HGETALL', key), {}
  for i = 1, #all, 2 do got[all[i]] = all[i + 1] end
  return got
end
