-- Reading small hashes. A listpack-encoded hash finds each field of an HMGET by a scan of it,
-- so a call that wants half of such a hash or more reads it whole instead.

-- The fields of hash `key`, field -> value.
local function hash_fields(key)
  local all, got = redis.call('HGETALL', key), {}
  for i = 1, #all, 2 do got[all[i]] = all[i + 1] end
  return got
end

-- Adds `member` to the group of `key` in `groups` (key -> {fields, members}), keys in order.
local function group_add(groups, keys, key, field, member)
  local g = groups[key]
  if not g then
    g = { fields = {}, members = {} }
    groups[key] = g
    keys[#keys + 1] = key
  end
  g.fields[#g.fields + 1] = field
  g.members[#g.members + 1] = member
end

-- Reads the grouped fields, one HMGET per key, or the whole hash where `whole` fields or more
-- are wanted (hash_fields above); calls found(member, raw) for those present.
local function read_groups(groups, keys, found, whole)
  for _, key in ipairs(keys) do
    local g = groups[key]
    if #g.fields >= whole then
      local got = hash_fields(key)
      for j, m in ipairs(g.members) do
        local raw = got[g.fields[j]]
        if raw then found(m, raw) end
      end
    else
      local v = redis.call('HMGET', key, unpack(g.fields))
      for j, m in ipairs(g.members) do
        if v[j] then found(m, v[j]) end
      end
    end
  end
end
