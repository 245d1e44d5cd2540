-- Writes a script gathers while it works and makes at its end, grouped by key: one HSET per
-- hash and one ZADD and one ZREM per sorted set (in chunks), instead of one command per
-- record. A Redis command called from Lua costs a few microseconds whatever it carries, so a
-- batch of events or tasks that touches the same few hashes and sets pays that once per key.
-- Callers gather final states: a member gets at most one ZADD or one ZREM of a set per
-- script, and a field its last value, so the order in which the groups go out does not matter.
local function writes_new()
  return { h = {}, hk = {}, za = {}, zak = {}, zr = {}, zrk = {} }
end

local function w_hset(w, key, field, value)
  local g = w.h[key]
  if not g then
    g = {}
    w.h[key] = g
    w.hk[#w.hk + 1] = key
  end
  g[#g + 1] = field
  g[#g + 1] = value
end

local function w_zadd(w, key, score, member)
  local g = w.za[key]
  if not g then
    g = {}
    w.za[key] = g
    w.zak[#w.zak + 1] = key
  end
  g[#g + 1] = score
  g[#g + 1] = member
end

local function w_zrem(w, key, member)
  local g = w.zr[key]
  if not g then
    g = {}
    w.zr[key] = g
    w.zrk[#w.zrk + 1] = key
  end
  g[#g + 1] = member
end

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
