-- Origins of one visit type: their records, their places in the policy indexes and their
-- share of the metric counters. Every key of a visit type starts with the base
-- "<prefix>:{vt:<visit_type>}" and so lives in one Cluster hash slot:
--   <base>:meta          hash: seq (the last origin id given), h_level and h_split (the size
--                        of the url index), new_from, n_new, n_osf, n_pk (see below),
--                        sending_seq, leaf_seq, max_ts, max_release, max_result (grab.lua),
--                        and the visit runner's counters visits_sent, results_<status>
--   <base>:o:<id / 32>   hash, three fields per origin, f = (id % 32) * 3: f its url, f + 1
--                        its listings, f + 2 its visit results (absent: none yet). 96 short
--                        fields, so Redis keeps the hash listpack-encoded.
--   <base>:h:<n>         the url index, by linear hashing: hash n holds the 8-byte hashes of
--                        urls (the caller computes them) -> origin id; <base>:hc holds url ->
--                        id for the rare urls whose hash another url has already
--   <base>:lx:<lidx>     "<url>\0<id>" for the urls lister <lidx> listed, in url order
--                        (includes/leaves.lua)
--   <base>:new           bitmap, bit <id> set: enabled and never scheduled (in id order, the
--                        first of oldest_scheduled_first); n_new counts them, and no bit
--                        before byte new_from is set
-- Scheduling. Origins chosen together (by one grab, or given one last_scheduled by one stats
-- upsert) form a sending k, numbered from sending_seq:
--   <base>:sc            string of u32, at #id: the sending of the origin's last scheduling
--                        (0: never), written for a whole grab in one BITFIELD
--   <base>:sd            hash: k -> its time (us), followed by " r" once released (see
--                        grab.lua); "<k>:n" -> how many origins it is the last sending of
--                        (it goes when none is left)
--   <base>:pk, <base>:osf  zsets of sendings, score their time: those whose origins are
--                        parked (scheduled, no result since, not released) and those whose
--                        origins oldest_scheduled_first may choose again; the sets
--                        <base>:pk:<k> and <base>:osf:<k> hold those origins' ids (at most
--                        CHUNK, so Redis keeps them as intsets); n_pk and n_osf count them
--   <base>:nv            zset id -> last_update: enabled, no snapshot, a last_update
--   <base>:lag           zset id -> last success - last_update, when that is negative
--   <base>:m             hash "<lidx>:k|e|n|p" -> the four metric counters of a lister
--   <base>:rate:<hour>   hash "<minute of the hour>:<what>" -> visits sent and results by
--                        status in that minute (count_minute), kept 25 hours
-- Listings: one entry per lister that listed the origin, each
--   struct '>HBi7i7i7H' lister index, flags (1 enabled, 2 has a last_update), last_update,
--   first_seen, last_seen, n; then n bytes of extra_loader_arguments (JSON object text, ''
--   for {}).
-- Results: struct '>BB' flags, fails; then, as 7-byte integers, those of last_eventful,
--   last_uneventful, last_failed and last_notfound that flags 1, 2, 4, 8 say are there; then
--   the last snapshot, if flag 32. fails: failed or not-found results in a row
--   (visit_outcomes.lua).
-- An origin has stats (a row of the original's origin_visit_stats) once it has results or a
-- sending. Times are microseconds (exact in doubles: src/model/mod.rs check_time).
--@include hashes
local ORIGIN_BUCKET = 32
local CHUNK = 500
local URL_LOAD = 40
local LISTING_FMT = '>HBi7i7i7H'
local LISTING_HEAD = 26
-- The struct format of a results record, by its date flags (flags % 16).
local RESULTS_FMT = {}
for m = 0, 15 do
  local f = '>BB'
  for i = 0, 3 do
    if math.floor(m / 2 ^ i) % 2 == 1 then f = f .. 'i7' end
  end
  RESULTS_FMT[m] = f
end

local function fmt_int(v)
  return string.format('%d', v)
end

local function num(v)
  if v == nil or v == '' then return nil end
  return tonumber(v)
end

-- Key and field names are made once per script run, and only those used: building strings
-- is much of what a script spends per origin (all 96 field names cost a listener's call of
-- some 70 visit results about 2% of its time).
local REC_KEYS, SLOT_KEYS = {}, {}
local FIELDS = setmetatable({}, {__index = function(t, i)
  local s = fmt_int(i)
  t[i] = s
  return s
end})

local function rec_key(base, id)
  local n = math.floor(id / ORIGIN_BUCKET)
  local k = REC_KEYS[n]
  if not k then
    k = base .. ':o:' .. n
    REC_KEYS[n] = k
  end
  return k
end

local function rec_field(id)
  return (id % ORIGIN_BUCKET) * 3
end

-- Calls a command with a fixed head and a long list of arguments, a few thousand at a time
-- (Lua's unpack has a limit).
local function call_many(cmd, key, args, step)
  step = step or 4000
  local out = 0
  for i = 1, #args, step do
    local r = redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
    if type(r) == 'number' then out = out + r end
  end
  return out
end

-- The records of these origin ids, one read per hash: url, listings and results by id (false
-- when absent). The ids are read in order, so that those of one hash come together; a hash
-- of which half or more is wanted is read whole.
local function read_records(base, ids)
  local sorted = {}
  for i, id in ipairs(ids) do sorted[i] = id end
  table.sort(sorted)
  local U, L, R = {}, {}, {}
  local i, n = 1, #sorted
  while i <= n do
    local bucket = math.floor(sorted[i] / ORIGIN_BUCKET)
    local j = i
    while j < n and math.floor(sorted[j + 1] / ORIGIN_BUCKET) == bucket do j = j + 1 end
    local k = rec_key(base, sorted[i])
    if i == j then
      local id = sorted[i]
      local f = rec_field(id)
      local v = redis.call('HMGET', k, FIELDS[f], FIELDS[f + 1], FIELDS[f + 2])
      U[id], L[id], R[id] = v[1], v[2], v[3]
    elseif 2 * (j - i + 1) >= ORIGIN_BUCKET then
      local got = hash_fields(k)
      for m = i, j do
        local id = sorted[m]
        local f = rec_field(id)
        U[id], L[id], R[id] = got[FIELDS[f]] or false, got[FIELDS[f + 1]] or false,
          got[FIELDS[f + 2]] or false
      end
    else
      local fields = {}
      for m = i, j do
        local f, q = rec_field(sorted[m]), 3 * (m - i)
        fields[q + 1], fields[q + 2], fields[q + 3] = FIELDS[f], FIELDS[f + 1], FIELDS[f + 2]
      end
      local v = redis.call('HMGET', k, unpack(fields))
      for m = i, j do
        local id, q = sorted[m], 3 * (m - i)
        U[id], L[id], R[id] = v[q + 1], v[q + 2], v[q + 3]
      end
    end
    i = j + 1
  end
  return U, L, R
end

-- Results --------------------------------------------------------------------------------

local function decode_results(raw)
  if not raw then return nil end
  local fl = string.byte(raw, 1)
  local m = fl % 16
  -- the present dates come in order, then the position after them
  local _, fails, a, b, c, d, e = struct.unpack(RESULTS_FMT[m], raw)
  local v = {a, b, c, d, e}
  local ev, un, fa, nf, snap, at = nil, nil, nil, nil, nil, 1
  if m % 2 == 1 then ev, at = v[at], at + 1 end
  if m % 4 >= 2 then un, at = v[at], at + 1 end
  if m % 8 >= 4 then fa, at = v[at], at + 1 end
  if m >= 8 then nf, at = v[at], at + 1 end
  if fl >= 32 then snap = string.sub(raw, v[at]) end
  -- one constructor: the table is sized for its fields at once (see decode_run in run.lua)
  return {fails = fails, ev = ev, un = un, fa = fa, nf = nf, snap = snap}
end

local function encode_results(s)
  local ev, un, fa, nf = s.ev, s.un, s.fa, s.nf
  local fl = (ev and 1 or 0) + (un and 2 or 0) + (fa and 4 or 0) + (nf and 8 or 0)
  -- the present dates, in order (struct.pack takes what its format names)
  local a, b, c, d = ev, un, fa, nf
  if a == nil then a, b, c, d = b, c, d, nil end
  if a == nil then a, b, c = b, c, nil end
  if a == nil then a, b = b, nil end
  if b == nil then b, c, d = c, d, nil end
  if b == nil then b, c = c, nil end
  if c == nil then c, d = d, nil end
  if s.snap then fl = fl + 32 end
  return struct.pack(RESULTS_FMT[fl % 16], fl, math.min(s.fails or 0, 255), a, b, c, d)
    .. (s.snap or '')
end

local function max_of(a, b, c, d)
  local m = a
  if b ~= nil and (m == nil or b > m) then m = b end
  if c ~= nil and (m == nil or c > m) then m = c end
  if d ~= nil and (m == nil or d > m) then m = d end
  return m
end

-- The latest visit result of any kind (the original's GREATEST(le, lu, lf, lnf)).
local function last_result(s)
  return max_of(s.ev, s.un, s.fa, s.nf)
end

-- The latest successful visit (GREATEST(le, lu)).
local function last_success(s)
  return max_of(s.ev, s.un)
end

-- Listings -------------------------------------------------------------------------------

local function decode_listings(raw)
  local out, pos = {}, 1
  if not raw then return out end
  while pos <= #raw do
    local lidx, fl, upd, fs, seen, n, nxt = struct.unpack(LISTING_FMT, raw, pos)
    out[#out + 1] = {lidx = lidx, enabled = fl % 2 == 1, fs = fs, seen = seen,
      extra = string.sub(raw, nxt, nxt + n - 1), upd = fl >= 2 and upd or nil}
    pos = nxt + n
  end
  return out
end

local function encode_listings(ls)
  local parts = {}
  for i, l in ipairs(ls) do
    parts[i] = struct.pack(LISTING_FMT, l.lidx, (l.enabled and 1 or 0) + (l.upd and 2 or 0),
      l.upd or 0, l.fs, l.seen, #l.extra) .. l.extra
  end
  return table.concat(parts)
end

-- The latest last_update among the enabled listings, and whether any listing is enabled.
local function enabled_update(listings)
  local any, upd = false, nil
  for _, l in ipairs(listings) do
    if l.enabled then
      any = true
      if l.upd ~= nil and (upd == nil or l.upd > upd) then upd = l.upd end
    end
  end
  return any, upd
end

-- Sendings -------------------------------------------------------------------------------

-- The sending of each id (0: never scheduled), one BITFIELD per thousand: id -> k.
local function sendings_of(base, ids)
  local K = {}
  for i = 1, #ids, 1000 do
    local args = {}
    local last = math.min(i + 999, #ids)
    for j = i, last do
      local m = 3 * (j - i)
      args[m + 1], args[m + 2], args[m + 3] = 'GET', 'u32', ids[j] * 32
    end
    local v = redis.call('BITFIELD', base .. ':sc', unpack(args))
    for j = i, last do K[ids[j]] = v[j - i + 1] end
  end
  return K
end

-- The time and released flag of these sendings: k -> time, k -> true.
local function sending_times(base, ks)
  local list, seen = {}, {}
  for _, k in pairs(ks) do
    if k ~= 0 and not seen[k] then
      seen[k] = true
      list[#list + 1] = k
    end
  end
  local T, REL = {}, {}
  if #list == 0 then return T, REL end
  local v = redis.call('HMGET', base .. ':sd', unpack(list))
  for i, k in ipairs(list) do
    local t = v[i] or '0'
    T[k] = tonumber(string.match(t, '^%S+'))
    REL[k] = string.find(t, ' r', 1, true) ~= nil
  end
  return T, REL
end

-- A new sending at `sc` (us), not released yet.
local function new_sending(base, meta, sc)
  local k = redis.call('HINCRBY', meta, 'sending_seq', 1)
  redis.call('HSET', base .. ':sd', k, fmt_int(sc))
  return k
end

-- Origins --------------------------------------------------------------------------------

-- An origin as the general paths see it: id, url, listings, st (results, or nil), k (its
-- sending, 0 for none), sc (the sending's time), released (the sending's flag).
local function origin_from(id, url, lraw, rraw, k, T, REL)
  return {id = id, url = url, listings = decode_listings(lraw), st = decode_results(rraw),
    k = k, sc = T[k], released = REL[k] or false}
end

-- The origins of these ids that exist: id -> origin.
local function load_origins(base, ids)
  local U, L, R = read_records(base, ids)
  local K = sendings_of(base, ids)
  local T, REL = sending_times(base, K)
  local out = {}
  for _, id in ipairs(ids) do
    if U[id] then out[id] = origin_from(id, U[id], L[id], R[id], K[id] or 0, T, REL) end
  end
  return out
end

local function copy_origin(o)
  local c = {id = o.id, url = o.url, listings = {}, k = o.k, sc = o.sc, released = o.released}
  for i, l in ipairs(o.listings) do
    local m = {}
    for f, v in pairs(l) do m[f] = v end
    c.listings[i] = m
  end
  if o.st then
    c.st = {}
    for f, v in pairs(o.st) do c.st[f] = v end
  end
  return c
end

-- Two fields of the records of `ids` (columns c1 and c2: 0 url, 1 listings, 2 results), in
-- arrays aligned with it, one HMGET per run of ids in the same hash (ids taken from an index
-- in order, or results of visits sent together, often come in runs).
local function read_pair(base, ids, c1, c2)
  local A, B = {}, {}
  local i, n = 1, #ids
  while i <= n do
    local bucket = math.floor(ids[i] / ORIGIN_BUCKET)
    local j = i
    while j <= n and math.floor(ids[j] / ORIGIN_BUCKET) == bucket do j = j + 1 end
    if 2 * (j - i) >= ORIGIN_BUCKET then
      local got = hash_fields(rec_key(base, ids[i]))
      for m = i, j - 1 do
        local f = (ids[m] % ORIGIN_BUCKET) * 3
        A[m], B[m] = got[FIELDS[f + c1]] or false, got[FIELDS[f + c2]] or false
      end
    else
      local fields = {}
      for m = i, j - 1 do
        local f = (ids[m] % ORIGIN_BUCKET) * 3
        fields[2 * (m - i) + 1], fields[2 * (m - i) + 2] = FIELDS[f + c1], FIELDS[f + c2]
      end
      local v = redis.call('HMGET', rec_key(base, ids[i]), unpack(fields))
      for m = i, j - 1 do
        A[m], B[m] = v[2 * (m - i) + 1], v[2 * (m - i) + 2]
      end
    end
    i = j
  end
  return A, B
end

-- The listings and results of `ids`, aligned with it.
local function read_listings_results(base, ids)
  return read_pair(base, ids, 1, 2)
end

-- The url and listings of `ids`, aligned with it.
local function read_runs(base, ids)
  return read_pair(base, ids, 0, 1)
end

-- Where an origin stands in the indexes, from its enabled listings (any, and their latest
-- last_update), its results `s` (or nil) and its sending k (0: none) with the sending's time
-- and released flag. Only enabled origins are indexed. One scheduled with no result since
-- (and whose sending is not released by the scheduled cooldown) is parked (pk); the others
-- are in the policy indexes they qualify for: new (never scheduled) or osf (scheduled
-- before); nv (no snapshot and a last_update, by last_update); lag (a snapshot and a
-- last_update after the last success, by minus the lag). Returns the place ('new', 'pk',
-- 'osf' or false) and the nv and lag scores (or nil).
local function place(enabled, upd, s, k, sc, released)
  if not enabled then return false end
  local loc = 'new'
  if k ~= 0 then
    local r = s and last_result(s)
    if (r == nil or sc >= r) and not released then return 'pk' end
    loc = 'osf'
  end
  if upd == nil then return loc end
  if not (s and s.snap) then return loc, upd end
  local ok = last_success(s)
  if ok ~= nil and upd > ok then return loc, nil, ok - upd end
  return loc
end

-- The same for an origin of the general paths, as a table: new = true, or pk or osf = its
-- sending (and sc its time), and nv, lag.
local function placement(o)
  local enabled, upd = enabled_update(o.listings)
  local loc, nv, lag = place(enabled, upd, o.st, o.k, o.sc, o.released)
  local p = {nv = nv, lag = lag}
  if loc == 'new' then
    p.new = true
  elseif loc then
    p[loc], p.sc = o.k, o.sc
  end
  return p
end

local COUNTER_FIELDS = {}

-- The counter fields of a lister: {k = "<lidx>:k", ...} (made once per script run).
local function counter_fields(lidx)
  local c = COUNTER_FIELDS[lidx]
  if not c then
    local p = lidx .. ':'
    c = {k = p .. 'k', e = p .. 'e', n = p .. 'n', p = p .. 'p'}
    COUNTER_FIELDS[lidx] = c
  end
  return c
end

local function count(into, field, d)
  into[field] = (into[field] or 0) + d
end

-- What an origin adds to the metric counters, per lister: "<lidx>:k|e|n|p" -> +-1. As
-- update_metrics in the original: known, enabled, enabled and no snapshot, enabled and
-- last_update after the last successful visit.
local function contribution(o, into, sign)
  if o == nil then return into end
  local s = o.st or {}
  local ok = last_success(s)
  for _, l in ipairs(o.listings) do
    local c = counter_fields(l.lidx)
    count(into, c.k, sign)
    if l.enabled then
      count(into, c.e, sign)
      if s.snap == nil then count(into, c.n, sign) end
      if l.upd ~= nil and ok ~= nil and l.upd > ok then count(into, c.p, sign) end
    end
  end
  return into
end

-- Writes ---------------------------------------------------------------------------------

-- The writes of one script, gathered and then flushed one command per key: record fields by
-- hash, bits of <base>:new, sendings of origins, nv and lag scores, sending set moves,
-- sending reference counts, counter deltas.
local function new_batch()
  return {rec = {}, rec_order = {}, bit_ids = {}, bit_vals = {}, sc_ids = {}, sc_ks = {},
    zadd = {nv = {}, lag = {}}, zrem = {nv = {}, lag = {}}, cadd = {osf = {}, pk = {}},
    crem = {osf = {}, pk = {}}, refs = {}, counts = {}}
end

local function put_field(b, base, id, col, value)
  local k = rec_key(base, id)
  local r = b.rec[k]
  if not r then
    r = {}
    b.rec[k] = r
    b.rec_order[#b.rec_order + 1] = k
  end
  local n = #r
  r[n + 1] = FIELDS[rec_field(id) + col]
  r[n + 2] = value
end

local function set_bit(b, id, v)
  local n = #b.bit_ids + 1
  b.bit_ids[n], b.bit_vals[n] = id, v
end

-- Adds `id` to the moves into (or out of) sending set k.
local function chunk_op(t, k, sc, id)
  local c = t[k]
  if not c then
    c = {sc = sc}
    t[k] = c
  end
  c[#c + 1] = id
end

-- Moves origin `id` in the zset `name` (nv or lag) from score u to score v (nil: not in it).
-- Scores and ids go to the commands as decimal text: a Lua number handed to redis.call is
-- formatted with "%.17g", several times the cost of string.format('%d').
local function rescore(b, name, id, u, v)
  if u == v then return end
  if type(id) == 'number' then id = fmt_int(id) end
  if v == nil then
    local z = b.zrem[name]
    z[#z + 1] = id
  else
    local z = b.zadd[name]
    z[#z + 1] = fmt_int(v)
    z[#z + 1] = id
  end
end

-- Moves origin `id` from the places `x` to the places `y` (placement results).
local SETS = {'osf', 'pk'}
local function move(b, id, x, y)
  if x.new ~= y.new then set_bit(b, id, y.new and 1 or 0) end
  local t = id -- as text once a command needs it (see rescore)
  for _, name in ipairs(SETS) do
    if x[name] ~= y[name] then
      if t == id then t = fmt_int(id) end
      if x[name] then chunk_op(b.crem[name], x[name], x.sc, t) end
      if y[name] then chunk_op(b.cadd[name], y[name], y.sc, t) end
    end
  end
  rescore(b, 'nv', t, x.nv, y.nv)
  rescore(b, 'lag', t, x.lag, y.lag)
end

-- Gives origin `id` the sending k (it had `was`).
local function set_sending(b, id, was, k)
  if was == k then return end
  local n = #b.sc_ids + 1
  b.sc_ids[n], b.sc_ks[n] = id, k
  if was ~= 0 then b.refs[was] = (b.refs[was] or 0) - 1 end
  if k ~= 0 then b.refs[k] = (b.refs[k] or 0) + 1 end
end

-- Stores an origin (`old` as it was, nil if new) through the batch: its listings and results
-- (when they changed: `lchanged`, `rchanged`), its sending, its moves between indexes and its
-- counters.
local function put_origin(b, base, old, new, lchanged, rchanged)
  if lchanged then put_field(b, base, new.id, 1, encode_listings(new.listings)) end
  if rchanged and new.st then put_field(b, base, new.id, 2, encode_results(new.st)) end
  set_sending(b, new.id, old and old.k or 0, new.k)
  move(b, new.id, old and placement(old) or {}, placement(new))
  contribution(new, b.counts, 1)
  contribution(old, b.counts, -1)
end

local function flush_sets(base, meta, root, adds, rems)
  local delta = 0
  for k, c in pairs(rems) do
    local key = base .. ':' .. root .. ':' .. k
    delta = delta - call_many('SREM', key, c)
    if not adds[k] and redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', base .. ':' .. root, k)
    end
  end
  for k, c in pairs(adds) do
    delta = delta + call_many('SADD', base .. ':' .. root .. ':' .. k, c)
    redis.call('ZADD', base .. ':' .. root, 'NX', c.sc, k)
  end
  if delta ~= 0 then redis.call('HINCRBY', meta, 'n_' .. root, delta) end
end

-- Runs of at least this many consecutive ids are written as byte ranges (one GETRANGE and one
-- SETRANGE) instead of one BITFIELD operation each: new origins get consecutive ids, and a
-- grab of never-scheduled origins takes them in id order. Four arguments an origin handed
-- to Redis cost more than the Lua that packs the bytes.
local RANGE_MIN = 32

-- BITFIELD SETs of ids[from..to], a thousand a call; the old values into olds.
-- Offsets and values go as decimal text: a number handed to redis.call is formatted with
-- "%.17g" by the C library's floating-point printf (Redis 7.0), dearer than '%d'.
local BIT_TEXT = {[0] = '0', [1] = '1'}
local function bitfield_ops(key, width, ids, vals, from, to, olds)
  local typ = 'u' .. width
  for i = from, to, 1000 do
    local args = {}
    local last = math.min(i + 999, to)
    for j = i, last do
      local m = 4 * (j - i)
      local v = vals[j]
      args[m + 1], args[m + 2], args[m + 3] = 'SET', typ, string.format('%d', ids[j] * width)
      args[m + 4] = width == 1 and BIT_TEXT[v] or string.format('%d', v)
    end
    local v = redis.call('BITFIELD', key, unpack(args))
    for j = i, last do olds[j] = v[j - i + 1] end
  end
end

-- The u32 values of the consecutive ids[from..to], as bytes (big-endian, as BITFIELD u32).
local function range_set32(key, ids, vals, from, to, olds)
  local a, len = ids[from] * 4, (to - from + 1) * 4
  local s = redis.call('GETRANGE', key, a, a + len - 1)
  local parts = {}
  for j = from, to do
    local o = (j - from) * 4
    local b1, b2, b3, b4 = string.byte(s, o + 1, o + 4)
    olds[j] = (((b1 or 0) * 256 + (b2 or 0)) * 256 + (b3 or 0)) * 256 + (b4 or 0)
    local v = vals[j]
    parts[j - from + 1] = string.char(math.floor(v / 16777216) % 256,
      math.floor(v / 65536) % 256, math.floor(v / 256) % 256, v % 256)
  end
  redis.call('SETRANGE', key, a, table.concat(parts))
end

-- The bits of the consecutive ids[from..to], all set to the same value, whole bytes (ids[from]
-- a multiple of 8, a multiple of 8 of them).
local function range_set1(key, ids, vals, from, to, olds)
  local a, nb = ids[from] / 8, (to - from + 1) / 8
  local s = redis.call('GETRANGE', key, a, a + nb - 1)
  for x = 0, nb - 1 do
    local byte = string.byte(s, x + 1) or 0
    local j0 = from + 8 * x
    for k = 0, 7 do
      olds[j0 + k] = bit.band(byte, bit.rshift(128, k)) ~= 0 and 1 or 0
    end
  end
  redis.call('SETRANGE', key, a, string.rep(vals[from] == 1 and '\255' or '\0', nb))
end

-- Sets values of `width` bits (1 or 32, unsigned) at slots `ids`, in order, as BITFIELD SET
-- would; returns the old values.
local function bitfield_set(key, width, ids, vals)
  local olds = {}
  local n = #ids
  local pending = 1 -- the first not written yet
  local i = 1
  while i <= n do
    local j = i
    while j < n and ids[j + 1] == ids[j] + 1 and (width == 32 or vals[j + 1] == vals[i]) do
      j = j + 1
    end
    -- the part of the run i..j written as bytes: for bits, whole bytes
    local s, e = i, j
    if width == 1 then
      while s <= e and ids[s] % 8 ~= 0 do s = s + 1 end
      e = s + math.floor((e - s + 1) / 8) * 8 - 1
    end
    if (width == 32 or width == 1) and e - s + 1 >= RANGE_MIN then
      if s > pending then bitfield_ops(key, width, ids, vals, pending, s - 1, olds) end
      if width == 32 then
        range_set32(key, ids, vals, s, e, olds)
      else
        range_set1(key, ids, vals, s, e, olds)
      end
      pending = e + 1
    end
    i = j + 1
  end
  if pending <= n then bitfield_ops(key, width, ids, vals, pending, n, olds) end
  return olds
end

local function flush(b, base, meta)
  for _, k in ipairs(b.rec_order) do call_many('HSET', k, b.rec[k]) end
  if #b.bit_ids > 0 then
    local olds = bitfield_set(base .. ':new', 1, b.bit_ids, b.bit_vals)
    local delta, lowest = 0, nil
    for j, id in ipairs(b.bit_ids) do
      local v = b.bit_vals[j]
      delta = delta + v - olds[j]
      if v == 1 and (lowest == nil or id < lowest) then lowest = id end
    end
    if delta ~= 0 then redis.call('HINCRBY', meta, 'n_new', delta) end
    if lowest ~= nil then
      local from = tonumber(redis.call('HGET', meta, 'new_from') or '0')
      if math.floor(lowest / 8) < from then
        redis.call('HSET', meta, 'new_from', math.floor(lowest / 8))
      end
    end
  end
  if #b.sc_ids > 0 then bitfield_set(base .. ':sc', 32, b.sc_ids, b.sc_ks) end
  for _, name in ipairs({'nv', 'lag'}) do
    if #b.zrem[name] > 0 then call_many('ZREM', base .. ':' .. name, b.zrem[name]) end
    if #b.zadd[name] > 0 then call_many('ZADD', base .. ':' .. name, b.zadd[name]) end
  end
  flush_sets(base, meta, 'osf', b.cadd.osf, b.crem.osf)
  flush_sets(base, meta, 'pk', b.cadd.pk, b.crem.pk)
  -- sendings no origin names any more go
  local sd = base .. ':sd'
  for k, d in pairs(b.refs) do
    if d ~= 0 and redis.call('HINCRBY', sd, k .. ':n', d) <= 0 then
      redis.call('HDEL', sd, k, k .. ':n')
    end
  end
  for field, d in pairs(b.counts) do
    if d ~= 0 then redis.call('HINCRBY', base .. ':m', field, d) end
  end
end

-- Adds n to what (a short name) in the minute of `now_us`, in <base>:rate:<hour> (the
-- dashboard's charts: visits sent 'vs', results 've', 'vu', 'vf', 'vn', 'vl'), kept 25 hours.
local function count_minute(base, now_us, what, n)
  if n == 0 then return end
  local minute = math.floor(now_us / 60000000)
  local key = base .. ':rate:' .. math.floor(minute / 60)
  redis.call('HINCRBY', key, (minute % 60) .. ':' .. what, n)
  redis.call('EXPIRE', key, 90000)
end

-- Results recorded up to this time: a grab at or after it needs no look at any (grab.lua).
local function saw_result(meta, t)
  if t == nil then return end
  local m = tonumber(redis.call('HGET', meta, 'max_result') or '-inf')
  if t > m then redis.call('HSET', meta, 'max_result', fmt_int(t)) end
end

-- The url index ----------------------------------------------------------------------------

-- Its size: 2^level hashes, the first `split` of them split already into two.
local function url_index(meta)
  local v = redis.call('HMGET', meta, 'h_level', 'h_split', 'seq')
  local ix = {level = tonumber(v[1]) or 0, split = tonumber(v[2]) or 0, seq = tonumber(v[3]) or 0}
  ix.size = 2 ^ ix.level
  return ix
end

local function url_slot(ix, h)
  local h32 = struct.unpack('>I4', h)
  local a = h32 % ix.size
  if a < ix.split then a = h32 % (2 * ix.size) end
  return a
end

local function slot_key(base, a)
  local k = SLOT_KEYS[a]
  if not k then
    k = base .. ':h:' .. a
    SLOT_KEYS[a] = k
  end
  return k
end

-- Splits hashes while they hold more than URL_LOAD urls on average (linear hashing: each
-- split moves half of one hash into a new one).
local function url_grow(base, meta, ix)
  local changed = false
  while ix.seq > URL_LOAD * (ix.size + ix.split) do
    local size = ix.size
    local key = slot_key(base, ix.split)
    local all = redis.call('HGETALL', key)
    local moved, gone = {}, {}
    for i = 1, #all, 2 do
      local h = all[i]
      if struct.unpack('>I4', h) % (2 * size) ~= ix.split then
        moved[#moved + 1] = h
        moved[#moved + 1] = all[i + 1]
        gone[#gone + 1] = h
      end
    end
    if #gone > 0 then
      call_many('HSET', slot_key(base, ix.split + size), moved)
      call_many('HDEL', key, gone)
    end
    ix.split = ix.split + 1
    if ix.split == size then
      ix.level, ix.split, ix.size = ix.level + 1, 0, size * 2
    end
    changed = true
  end
  if changed then redis.call('HSET', meta, 'h_level', ix.level, 'h_split', ix.split) end
end

-- The known origins among these urls (hs[i] the 8-byte hash of urls[i]): url -> id, and
-- their records (U, L, R by id, as read_records). `taken` tells, for the unknown ones,
-- whether their hash belongs to another url already (url -> true). Urls of one index hash
-- that come together are looked up in one HMGET (src/store/origins.rs sends them so), the
-- others one HGET each.
local function find_origins(base, ix, urls, hs)
  local cand, cand_ids = {}, {}
  -- the index gave v (an id as text, or false) for urls[m]
  local function found(m, v)
    if v then
      local id = tonumber(v)
      cand[urls[m]] = id
      cand_ids[#cand_ids + 1] = id
    end
  end
  local n, i = #urls, 1
  local a = n > 0 and url_slot(ix, hs[1])
  while i <= n do
    local j, next_a = i, nil
    while j < n do
      next_a = url_slot(ix, hs[j + 1])
      if next_a ~= a then break end
      j = j + 1
    end
    local key = slot_key(base, a)
    if i == j then
      found(i, redis.call('HGET', key, hs[i]))
    else
      local v = redis.call('HMGET', key, unpack(hs, i, j))
      for m = i, j do found(m, v[m - i + 1]) end
    end
    i, a = j + 1, next_a
  end
  local U, L, R = read_records(base, cand_ids)
  local ids, taken, other = {}, {}, {}
  for _, url in ipairs(urls) do
    local id = cand[url]
    if id ~= nil then
      if U[id] == url then ids[url] = id else other[#other + 1] = url end
    end
  end
  if #other > 0 then
    local v = redis.call('HMGET', base .. ':hc', unpack(other))
    local more = {}
    for j, url in ipairs(other) do
      if v[j] then
        ids[url] = tonumber(v[j])
        more[#more + 1] = ids[url]
      else
        taken[url] = true
      end
    end
    local U2, L2, R2 = read_records(base, more)
    for id, u in pairs(U2) do U[id], L[id], R[id] = u, L2[id], R2[id] end
  end
  return ids, U, L, R, taken
end

-- Gives ids to new urls (`fresh`, with their hashes in hs_of) and indexes them; stores their
-- url field through the batch. Returns url -> id.
local function add_origins(b, base, meta, ix, fresh, hs_of, taken)
  local ids = {}
  if #fresh == 0 then return ids end
  local last = redis.call('HINCRBY', meta, 'seq', #fresh)
  ix.seq = last
  local by, order, coll, seen = {}, {}, {}, {}
  for i, url in ipairs(fresh) do
    local id = last - #fresh + i
    ids[url] = id
    put_field(b, base, id, 0, url)
    local h = hs_of[url]
    if taken[url] or seen[h] then
      coll[#coll + 1] = url
      coll[#coll + 1] = id
    else
      seen[h] = true
      local a = url_slot(ix, h)
      local g = by[a]
      if not g then
        g = {}
        by[a] = g
        order[#order + 1] = a
      end
      g[#g + 1] = h
      g[#g + 1] = fmt_int(id)
    end
  end
  for _, a in ipairs(order) do call_many('HSET', slot_key(base, a), by[a]) end
  if #coll > 0 then call_many('HSET', base .. ':hc', coll) end
  url_grow(base, meta, ix)
  return ids
end
