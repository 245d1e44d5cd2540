-- Origins of one visit type: their records, their places in the policy indexes and their
-- share of the metric counters. Every key of a visit type starts with the base
-- "<prefix>:{vt:<visit_type>}" and so lives in one Cluster hash slot:
--   <base>:meta          hash: seq (the last origin id), and the visit runner's counters:
--                        visits_sent, results_<status> (see send_visits.lua, visit_outcomes.lua)
--   <base>:ids           hash url -> origin id
--   <base>:o:<id / 64>   hash (id % 64) -> origin record, ORIGIN_BUCKET to a hash
--   <base>:lister:<lidx> zset, scores 0, members the urls the lister listed (lexical order)
--   <base>:m             hash "<lidx>:k|e|n|p" -> the four metric counters of a lister
--   <base>:p:osf0 <base>:p:osf <base>:p:nv <base>:p:lag   the policy indexes (see placement)
--   <base>:parked        zset id -> last_scheduled: scheduled and no result since
-- A record is a msgpack array: url, has_stats, last_eventful, last_uneventful, last_failed,
-- last_notfound, last_scheduled, last_snapshot (20 bytes), unparked, then the listings, one
-- array per lister: lister index, enabled, last_update, first_seen, last_seen,
-- extra_loader_arguments (JSON text), then, when not 0, the number of failed or not-found
-- visit results in a row (lua/visit_outcomes.lua). Times are microseconds; false stands for
-- none.
-- Scripts read the records they need with one HMGET per bucket, and write records, indexes
-- and counters through a batch (new_batch ... flush), one command per key: the cost of a
-- call is then in the records, not in commands.
local ORIGIN_BUCKET = 64

local function fmt_int(v)
  return string.format('%d', v)
end

local function tstr(v)
  if v == nil then return '' end
  return fmt_int(v)
end

local function num(v)
  if v == nil or v == '' then return nil end
  return tonumber(v)
end

-- Origin ids are below 2^46, so tostring writes them without an exponent; times (us) are
-- past 10^14 and need fmt_int.
local function bucket_key(base, id)
  return base .. ':o:' .. tostring(math.floor(id / ORIGIN_BUCKET))
end

local function bucket_field(id)
  return tostring(id % ORIGIN_BUCKET)
end

local function orf(v)
  if v == false then return nil end
  return v
end

local function decode_origin(raw)
  local a = cmsgpack.unpack(raw)
  local o = {
    url = a[1], has_stats = a[2], le = orf(a[3]), lu = orf(a[4]), lf = orf(a[5]),
    lnf = orf(a[6]), ls = orf(a[7]), snapshot = orf(a[8]), unparked = a[9], listings = {},
    fails = a[11] or 0,
  }
  for i, l in ipairs(a[10]) do
    o.listings[i] = {
      lidx = l[1], enabled = l[2], last_update = orf(l[3]), first_seen = orf(l[4]),
      last_seen = orf(l[5]), extra = l[6],
    }
  end
  return o
end

-- A copy to change, the original staying as it was.
local function copy_origin(o)
  local c = {}
  for k, v in pairs(o) do c[k] = v end
  c.listings = {}
  for i, l in ipairs(o.listings) do
    local m = {}
    for k, v in pairs(l) do m[k] = v end
    c.listings[i] = m
  end
  return c
end

local function f(v)
  if v == nil then return false end
  return v
end

local function encode_origin(o)
  local ls = {}
  for i, l in ipairs(o.listings) do
    ls[i] = {l.lidx, l.enabled, f(l.last_update), f(l.first_seen), f(l.last_seen), l.extra}
  end
  local a = {o.url, o.has_stats, f(o.le), f(o.lu), f(o.lf), f(o.lnf), f(o.ls), f(o.snapshot),
    o.unparked, ls}
  if o.fails and o.fails > 0 then a[11] = o.fails end
  return cmsgpack.pack(a)
end

-- Calls a command with a fixed head and a long list of arguments, a few thousand at a time
-- (Lua's unpack has a limit).
local function call_many(cmd, key, args, step)
  step = step or 4000
  for i = 1, #args, step do
    local last = math.min(i + step - 1, #args)
    redis.call(cmd, key, unpack(args, i, last))
  end
end

-- The records of these origin ids: id -> decoded record (absent ids are left out).
local function load_origins(base, ids)
  local by_bucket, order = {}, {}
  for _, id in ipairs(ids) do
    local k = bucket_key(base, id)
    if not by_bucket[k] then
      by_bucket[k] = {}
      order[#order + 1] = k
    end
    local b = by_bucket[k]
    b[#b + 1] = id
  end
  local out = {}
  for _, k in ipairs(order) do
    local want = by_bucket[k]
    local fields = {}
    for i, id in ipairs(want) do fields[i] = bucket_field(id) end
    local raws = redis.call('HMGET', k, unpack(fields))
    for i, id in ipairs(want) do
      if raws[i] then out[id] = decode_origin(raws[i]) end
    end
  end
  return out
end

local function max_of(a, b, c, d)
  local m = a
  if b ~= nil and (m == nil or b > m) then m = b end
  if c ~= nil and (m == nil or c > m) then m = c end
  if d ~= nil and (m == nil or d > m) then m = d end
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
      if l.last_update ~= nil and (lu == nil or l.last_update > lu) then lu = l.last_update end
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
  if o == nil then return p end
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

-- What an origin adds to the metric counters, per lister: "<lidx>:k|e|n|p" -> +-1. As
-- update_metrics in the original: known, enabled, enabled and no snapshot, enabled and
-- last_update after the last successful visit.
local COUNTER_FIELDS = {}

-- The counter fields of a lister: "<lidx>:k" ... (made once per script run).
local function counter_fields(lidx)
  local c = COUNTER_FIELDS[lidx]
  if not c then
    c = {k = lidx .. ':k', e = lidx .. ':e', n = lidx .. ':n', p = lidx .. ':p'}
    COUNTER_FIELDS[lidx] = c
  end
  return c
end

local function contribution(o, into, sign)
  if o == nil then return into end
  local s = last_success(o)
  for _, l in ipairs(o.listings) do
    local c = counter_fields(l.lidx)
    into[c.k] = (into[c.k] or 0) + sign
    if l.enabled then
      into[c.e] = (into[c.e] or 0) + sign
      if o.snapshot == nil then into[c.n] = (into[c.n] or 0) + sign end
      if l.last_update ~= nil and s ~= nil and l.last_update > s then
        into[c.p] = (into[c.p] or 0) + sign
      end
    end
  end
  return into
end

-- Writes gathered for one flush: records by bucket, index additions and removals, counter
-- deltas.
local function new_batch()
  local b = {records = {}, buckets = {}, zadd = {}, zrem = {}, counts = {}}
  for _, name in ipairs(INDEXES) do
    b.zadd[name] = {}
    b.zrem[name] = {}
  end
  return b
end

-- Stores only an origin's record through the batch: for a change that moves it in no index
-- and no counter.
local function put_record(b, base, id, o)
  local k = bucket_key(base, id)
  if not b.records[k] then
    b.records[k] = {}
    b.buckets[#b.buckets + 1] = k
  end
  local rec = b.records[k]
  rec[#rec + 1] = bucket_field(id)
  rec[#rec + 1] = encode_origin(o)
end

-- Stores an origin (`old` is how it was, nil if new) through the batch: its record, its
-- moves between indexes, and the change of its counters (unless `same_counts`).
local function put_origin(b, base, id, old, new, same_counts)
  put_record(b, base, id, new)
  local before, after = placement(id, old), placement(id, new)
  local member = tostring(id)
  for _, name in ipairs(INDEXES) do
    local x, y = before[name], after[name]
    if x ~= nil and y == nil then
      local z = b.zrem[name]
      z[#z + 1] = member
    elseif y ~= nil and x ~= y then
      local z = b.zadd[name]
      z[#z + 1] = y
      z[#z + 1] = member
    end
  end
  if not same_counts then
    contribution(new, b.counts, 1)
    contribution(old, b.counts, -1)
  end
end

local function flush(b, base)
  for _, k in ipairs(b.buckets) do call_many('HSET', k, b.records[k]) end
  for _, name in ipairs(INDEXES) do
    if #b.zrem[name] > 0 then call_many('ZREM', base .. ':' .. name, b.zrem[name]) end
    if #b.zadd[name] > 0 then call_many('ZADD', base .. ':' .. name, b.zadd[name]) end
  end
  for field, d in pairs(b.counts) do
    if d ~= 0 then redis.call('HINCRBY', base .. ':m', field, d) end
  end
end

-- A listing as returned to the caller: lidx, url, enabled, last_update, first_seen,
-- last_seen, extra_loader_arguments; times as integers (false, a nil reply, for none).
local function listing_reply(out, o, l)
  local n = #out
  out[n + 1] = l.lidx
  out[n + 2] = o.url
  out[n + 3] = l.enabled and '1' or '0'
  out[n + 4] = f(l.last_update)
  out[n + 5] = f(l.first_seen)
  out[n + 6] = f(l.last_seen)
  out[n + 7] = l.extra
end

-- Origin ids of these urls, allocating ids (in one HINCRBY) for those not known yet when
-- `create`; returns url -> id and the list of new urls.
local function origin_ids(base, meta, urls, create)
  if #urls == 0 then return {}, {} end
  local found = redis.call('HMGET', base .. ':ids', unpack(urls))
  local ids, fresh = {}, {}
  for i, url in ipairs(urls) do
    if found[i] then ids[url] = tonumber(found[i]) else fresh[#fresh + 1] = url end
  end
  if create and #fresh > 0 then
    local last = redis.call('HINCRBY', meta, 'seq', #fresh)
    local args = {}
    for i, url in ipairs(fresh) do
      local id = last - #fresh + i
      ids[url] = id
      args[#args + 1] = url
      args[#args + 1] = tostring(id)
    end
    call_many('HSET', base .. ':ids', args)
  end
  return ids, fresh
end
