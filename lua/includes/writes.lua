-- Writes a script gathers while it works and makes at its end, grouped by key: one HSET per
-- hash and one ZADD and one ZREM per sorted set (in chunks), instead of one command per
-- record. A Redis command called from Lua costs a few microseconds whatever it carries, so a
-- batch of events or tasks that touches the same few hashes and sets pays that once per key.
-- Callers gather final states: a member gets at most one ZADD or one ZREM of a set per
-- script, and a field its last value, so the order in which the groups go out does not matter.
local function writes_new()
  return { h = {}, hk = {}, za = {}, zak = {}, zr = {}, zrk = {} }
end

-- Appends a (and b, if given) to the group of `key` in `groups`, keys listed in `keys`.
local function w_push(groups, keys, key, a, b)
  local g = groups[key]
  if not g then
    g = {}
    groups[key] = g
    keys[#keys + 1] = key
  end
  g[#g + 1] = a
  if b ~= nil then g[#g + 1] = b end
end

local function w_hset(w, key, field, value) w_push(w.h, w.hk, key, field, value) end
local function w_zadd(w, key, score, member) w_push(w.za, w.zak, key, score, member) end
local function w_zrem(w, key, member) w_push(w.zr, w.zrk, key, member) end

-- Sends `cmd key args...` in chunks of at most 2000 arguments (unpack has a stack limit).
local function send_chunked(cmd, key, args)
  for i = 1, #args, 2000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 1999, #args)))
  end
end

local function w_flush(w)
  for _, k in ipairs(w.hk) do send_chunked('HSET', k, w.h[k]) end
  for _, k in ipairs(w.zrk) do send_chunked('ZREM', k, w.zr[k]) end
  for _, k in ipairs(w.zak) do send_chunked('ZADD', k, w.za[k]) end
  w.h, w.hk, w.za, w.zak, w.zr, w.zrk = {}, {}, {}, {}, {}, {}
end
