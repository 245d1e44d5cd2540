-- Origins of one visit type: their records, their places in the policy indexes and their
-- share of the metric counters. Every key of a visit type starts with the base
-- "<prefix>:{vt:<visit_type>}" and so lives in one Cluster hash slot:
--   <base>:meta          hash: seq (the last origin id)
--   <base>:ids           hash url -> origin id
--   <base>:o:<id / 64>   hash (id % 64) -> origin record, ORIGIN_BUCKET to a hash (listpack)
--   <base>:lister:<lidx> zset, scores 0, members the urls the lister listed (lexical order)
--   <base>:m             hash "<lidx>:k|e|n|p" -> the four metric counters of a lister
--   <base>:p:osf0 <base>:p:osf <base>:p:nv <base>:p:lag   the policy indexes (see placement)
--   <base>:parked        zset id -> last_scheduled: scheduled and no result since
-- A record is the origin's url and stats, then its listings, one per lister:
--   url US has_stats US le US lu US lf US lnf US ls US snapshot(hex) US unparked
--   (RS lidx US enabled US last_update US first_seen US last_seen US extra_loader_arguments)*
-- with US = \31 and RS = \30 (neither can occur in a URL, which the caller checks, nor in JSON
-- text) and times in microseconds, '' for none.
local ORIGIN_BUCKET = 64
local US, RS = '\31', '\30'

local function split(s, sep)
  local out, i = {}, 1
  while true do
    local j = string.find(s, sep, i, true)
    if not j then
      out[#out + 1] = string.sub(s, i)
      return out
    end
    out[#out + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end

local function num(v)
  if v == nil or v == '' then return nil end
  return tonumber(v)
end

local function tstr(v)
  if v == nil then return '' end
  return string.format('%d', v)
end

local function bucket_key(base, id)
  return base .. ':o:' .. string.format('%d', math.floor(id / ORIGIN_BUCKET))
end

local function bucket_field(id)
  return string.format('%d', id % ORIGIN_BUCKET)
end

local function decode_origin(raw)
  local parts = split(raw, RS)
  local h = split(parts[1], US)
  local o = {
    url = h[1], has_stats = h[2] == '1', le = num(h[3]), lu = num(h[4]), lf = num(h[5]),
    lnf = num(h[6]), ls = num(h[7]), snapshot = h[8] ~= '' and h[8] or nil,
    unparked = h[9] == '1', listings = {},
  }
  for i = 2, #parts do
    local f = split(parts[i], US)
    o.listings[#o.listings + 1] = {
      lidx = f[1], enabled = f[2] == '1', last_update = num(f[3]), first_seen = num(f[4]),
      last_seen = num(f[5]), extra = f[6],
    }
  end
  return o
end

local function encode_origin(o)
  local out = {
    table.concat({o.url, o.has_stats and '1' or '0', tstr(o.le), tstr(o.lu), tstr(o.lf),
      tstr(o.lnf), tstr(o.ls), o.snapshot or '', o.unparked and '1' or '0'}, US)
  }
  for _, l in ipairs(o.listings) do
    out[#out + 1] = table.concat({l.lidx, l.enabled and '1' or '0', tstr(l.last_update),
      tstr(l.first_seen), tstr(l.last_seen), l.extra}, US)
  end
  return table.concat(out, RS)
end

local function load_origin(base, id)
  local raw = redis.call('HGET', bucket_key(base, id), bucket_field(id))
  if not raw then return nil end
  return decode_origin(raw)
end

local function save_origin(base, id, o)
  redis.call('HSET', bucket_key(base, id), bucket_field(id), encode_origin(o))
end

local function max_of(...)
  local m
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    if v ~= nil and (m == nil or v > m) then m = v end
  end
  return m
end

-- The latest visit result of any kind (the original's GREATEST(le, lu, lf, lnf)).
local function last_result(o)
  return max_of(o.le, o.lu, o.lf, o.lnf)
end

-- The latest successful visit (GREATEST(le, lu)).
local function last_success(o)
  return max_of(o.le, o.lu)
end

-- The latest last_update among the enabled listings, and whether any listing is enabled.
local function enabled_update(o)
  local any, lu = false, nil
  for _, l in ipairs(o.listings) do
    if l.enabled then
      any = true
      lu = max_of(lu, l.last_update)
    end
  end
  return any, lu
end

-- Where an origin stands in the indexes: index name -> score. Only enabled origins are
-- indexed. One scheduled with no result since (and not released by the scheduled cooldown,
-- `unparked`) is parked; the others are in the policy indexes they qualify for:
--   p:osf0 never scheduled, by id (insertion order); p:osf scheduled, by last_scheduled;
--   p:nv no snapshot and a known last_update, by last_update;
--   p:lag a snapshot and changed since the last success, by minus the lag.
local function placement(id, o)
  local p = {}
  local enabled, lu = enabled_update(o)
  if not enabled then return p end
  local r = last_result(o)
  if o.ls ~= nil and (r == nil or o.ls >= r) and not o.unparked then
    p.parked = o.ls
    return p
  end
  if o.ls == nil then p['p:osf0'] = id else p['p:osf'] = o.ls end
  if lu ~= nil then
    if o.snapshot == nil then
      p['p:nv'] = lu
    else
      local s = last_success(o)
      if s ~= nil and lu > s then p['p:lag'] = s - lu end
    end
  end
  return p
end

local INDEXES = {'p:osf0', 'p:osf', 'p:nv', 'p:lag', 'parked'}

-- Moves an origin from its old places (`old`, or nil for a new origin) to its new ones.
local function replace(base, id, old, new)
  local member = string.format('%d', id)
  for _, name in ipairs(INDEXES) do
    local a, b = old and old[name], new[name]
    if a ~= nil and b == nil then
      redis.call('ZREM', base .. ':' .. name, member)
    elseif b ~= nil and a ~= b then
      redis.call('ZADD', base .. ':' .. name, b, member)
    end
  end
end

-- What an origin adds to the metric counters, per lister: "<lidx>:k|e|n|p" -> 1. As
-- update_metrics in the original: known, enabled, enabled and no snapshot, enabled and
-- last_update after the last successful visit.
local function contribution(o, into, sign)
  local s = last_success(o)
  for _, l in ipairs(o.listings) do
    local function add(c) into[l.lidx .. ':' .. c] = (into[l.lidx .. ':' .. c] or 0) + sign end
    add('k')
    if l.enabled then
      add('e')
      if o.snapshot == nil then add('n') end
      if l.last_update ~= nil and s ~= nil and l.last_update > s then add('p') end
    end
  end
  return into
end

local function apply_counts(base, deltas)
  for field, d in pairs(deltas) do
    if d ~= 0 then redis.call('HINCRBY', base .. ':m', field, d) end
  end
end

-- Writes an origin and keeps its indexes and counters in step with it.
local function store_origin(base, id, old, new)
  save_origin(base, id, new)
  replace(base, id, old and placement(id, old), placement(id, new))
  local deltas = contribution(new, {}, 1)
  if old then contribution(old, deltas, -1) end
  apply_counts(base, deltas)
end

-- A listing as returned to the caller: lidx, url, enabled, last_update, first_seen,
-- last_seen, extra_loader_arguments.
local function listing_reply(out, o, l)
  out[#out + 1] = l.lidx
  out[#out + 1] = o.url
  out[#out + 1] = l.enabled and '1' or '0'
  out[#out + 1] = tstr(l.last_update)
  out[#out + 1] = tstr(l.first_seen)
  out[#out + 1] = tstr(l.last_seen)
  out[#out + 1] = l.extra
end
