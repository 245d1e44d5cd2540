-- An ordered set of strings (in byte order, as Redis orders zset members of equal score) kept
-- as small zsets, the leaves, of at most LEAF_MAX members each, so that Redis keeps every
-- leaf listpack-encoded: about 36 bytes for a 31-byte url, where one big zset takes about 143.
-- A zset of the leaves' first members, the root, finds the leaf of a string:
--   <root>        zset, scores 0, members "<first member>\0<n>" (the first leaf's is "\0<n>",
--                 before any string)
--   <root>:<n>    leaf n: zset, scores 0
-- The lexical index of a lister's urls (origin.lua) stores "<url>\0<origin id>": urls cannot
-- hold a "\0" (control characters are refused), so these sort as their urls do. Every
-- comparison is made by Redis (ZRANGE BYLEX), none in Lua, whose string order follows the
-- server's locale. Nothing is ever removed (listings are never deleted).
local LEAF_MAX = 120
local LEAF_FILL = 90

local function leaf_key(root, entry)
  return root .. ':' .. string.match(entry, '%z(%d+)$')
end

-- The root entry of the leaf where `s` belongs, or nil if there is no leaf yet.
local function leaf_entry(root, s)
  return redis.call('ZRANGE', root, '[' .. s .. '\1', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
end

-- Rebuilds the leaf `key` from the sorted zset `src` (the leaf itself, grown past LEAF_MAX,
-- or a scratch zset holding it and more): leaves of LEAF_FILL, the first under `key`. Each
-- is written anew, as a zset that shrank from a big one would stay in the big encoding.
local function leaf_rebuild(root, meta, key, src, size)
  local from = 0
  while from < size do
    local part = redis.call('ZRANGE', src, from, from + LEAF_FILL - 1)
    -- last first: a small zset finds an insertion place by a scan from its head, so that
    -- each member goes in at the head instead of past all the others
    local args, n = {}, #part
    for i, m in ipairs(part) do
      args[2 * (n - i) + 1] = '0'
      args[2 * (n - i) + 2] = m
    end
    local dest = key
    if from > 0 then
      local n = redis.call('HINCRBY', meta, 'leaf_seq', 1)
      dest = root .. ':' .. n
      redis.call('ZADD', root, 0, part[1] .. '\0' .. n)
    else
      redis.call('DEL', key)
    end
    call_many('ZADD', dest, args)
    from = from + LEAF_FILL
  end
  if src ~= key then redis.call('DEL', src) end
end

local LEAF_KEYS = {}

local function cached_leaf_key(root, entry)
  local k = LEAF_KEYS[entry]
  if not k then
    k = leaf_key(root, entry)
    LEAF_KEYS[entry] = k
  end
  return k
end

local function leaf_grow(root, meta, key)
  local size = redis.call('ZCARD', key)
  if size > LEAF_MAX then
    local tmp = root .. ':sort'
    redis.call('ZUNIONSTORE', tmp, 1, key)
    leaf_rebuild(root, meta, key, tmp, size)
  end
end

-- Adds strings (new or not). A batch that falls into one leaf (new urls often come after
-- the others, and a lister's pages are often in order) takes a few commands in all: Redis
-- sorts it in a scratch zset, and when its first and last strings have the same leaf, all
-- of it does. Otherwise each string finds its leaf.
local function leaves_add(root, meta, list)
  if #list == 0 then return end
  if not redis.call('ZRANGE', root, 0, 0)[1] then
    redis.call('ZADD', root, 0, '\0' .. redis.call('HINCRBY', meta, 'leaf_seq', 1))
  end
  if #list > 8 then
    local tmp = root .. ':sort'
    local args = {}
    for i, s in ipairs(list) do
      args[2 * i - 1] = '0'
      args[2 * i] = s
    end
    call_many('ZADD', tmp, args)
    local first = redis.call('ZRANGE', tmp, 0, 0)[1]
    local last = redis.call('ZRANGE', tmp, -1, -1)[1]
    local e = leaf_entry(root, first)
    if e == leaf_entry(root, last) then
      local key = leaf_key(root, e)
      local size = redis.call('ZUNIONSTORE', tmp, 2, tmp, key)
      if size > LEAF_MAX then
        leaf_rebuild(root, meta, key, tmp, size)
      else
        redis.call('ZUNIONSTORE', key, 1, tmp)
        redis.call('DEL', tmp)
      end
      return
    end
    redis.call('DEL', tmp)
  end
  local pending, order = {}, {}
  for _, s in ipairs(list) do
    local key = cached_leaf_key(root, leaf_entry(root, s))
    local p = pending[key]
    if not p then
      p = {}
      pending[key] = p
      order[#order + 1] = key
    end
    p[#p + 1] = '0'
    p[#p + 1] = s
  end
  for _, key in ipairs(order) do
    call_many('ZADD', key, pending[key])
    leaf_grow(root, meta, key)
  end
end

-- The member that starts with `head` .. "\0", or nil.
local function leaves_find(root, head)
  local e = leaf_entry(root, head)
  if not e then return nil end
  return redis.call('ZRANGE', leaf_key(root, e), '[' .. head .. '\0', '(' .. head .. '\1',
    'BYLEX', 'LIMIT', 0, 1)[1]
end

-- Up to `limit` members after those that start with `after` .. "\0" ('' for from the
-- first), in order.
local function leaves_range(root, after, limit)
  local out = {}
  local e
  if after == '' then
    e = redis.call('ZRANGE', root, 0, 0)[1]
  else
    e = leaf_entry(root, after)
  end
  local from = after == '' and '-' or ('(' .. after .. '\1')
  while e and #out < limit do
    local got = redis.call('ZRANGE', leaf_key(root, e), from, '+', 'BYLEX', 'LIMIT', 0,
      limit - #out)
    for _, s in ipairs(got) do out[#out + 1] = s end
    e = redis.call('ZRANGE', root, '(' .. e, '+', 'BYLEX', 'LIMIT', 0, 1)[1]
    from = '-'
  end
  return out
end
