-- Applies the results of visits the visit runner sent (from the loaders' Celery tasks) to
-- the origins' visit stats, each origin atomically, in the order given, with the rules of the
-- original's journal client (0.16 swh/scheduler/journal_client.py):
--   not_found: last_notfound = max(date, last_notfound)
--   failed:    last_failed = max(date, last_failed)
--   eventful or uneventful with snapshot S:
--     no snapshot stored: last_eventful = date, last_snapshot = S
--     otherwise, L = max(last_eventful, last_uneventful):
--       S differs: ignored if date < L, else last_eventful = date, last_snapshot = S
--       S is the stored one: date < L: last_uneventful = L, last_eventful =
--         min(last_eventful, date); date = L: a duplicate, nothing changes; date > L:
--         last_uneventful = date
-- and two of this scheduler's own:
--   eventful or uneventful naming no snapshot: last_eventful (or last_uneventful) =
--     max(date, it), and the stored snapshot stays: an origin counts as having a snapshot
--     only once a result names one. (The original's journal client counts a full visit
--     without a snapshot as failed; a loader saying "eventful" is believed here.)
--   lost (the listener's sweep; the date is a bound): if the origin was last sent before the
--     bound and has no result since, that visit failed: last_failed = its sending time. The
--     origin then stays waiting until the scheduled cooldown, as for a visit still queued.
-- A result of the latest sending (its task id names the sending's millisecond) is dated no
-- earlier than the sending, so that it ends the origin's wait whatever the worker's clock.
-- Later versions' rules, off unless asked: an origin's listings are disabled when a failed or
-- not-found result makes N in a row (ARGV[2]), or when a success is recorded (ARGV[3], for
-- visit types whose artifacts never change); a lister listing it again enables it again.
-- Only results that move a date count: a repeated one changes nothing.
-- Outcomes for origins unknown here (deleted since) are skipped.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us (for outcomes with no date), or '' for the server clock
-- ARGV[2] disable after this many failed or not-found results in a row (0: never)
-- ARGV[3] '1' to disable after a success, else '0'
-- ARGV[4..] 5 values per outcome: origin id (decimal text), status ('e', 'u', 'f', 'n' or
--   'l'), date in us or '', snapshot (20 bytes) or '', the sending's time in ms from the task
--   id or ''
-- Returns the number of origins whose stats changed; counts the outcomes that changed
-- something, by status, in the `results_<status>` fields of KEYS[1] (for /metrics), so that
-- a retried call counts nothing twice.
--@include origin
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
local now = num(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local disable_after, stop_after_success = tonumber(ARGV[2]), ARGV[3] == '1'
-- the origins, in order of first outcome, where each one's outcomes are, and their ids as
-- given (decimal text), which name them in the commands: a Lua number handed to redis.call
-- is formatted with "%.17g", some 2,200 instructions
local ids, at, id_text = {}, {}, {}
for i = 4, #ARGV, 5 do
  local id = tonumber(ARGV[i])
  if id then
    local a = at[id]
    if not a then
      a = {}
      at[id] = a
      ids[#ids + 1] = id
      id_text[#ids] = ARGV[i]
    end
    a[#a + 1] = i
  end
end
local L, R = read_listings_results(base, ids)
local K = {}
for i = 1, #ids, 1000 do
  local args = {}
  local last = math.min(i + 999, #ids)
  for j = i, last do
    local m = 3 * (j - i)
    args[m + 1], args[m + 2], args[m + 3] = 'GET', 'u32', '#' .. id_text[j]
  end
  local v = redis.call('BITFIELD', base .. ':sc', unpack(args))
  for j = i, last do K[j] = v[j - i + 1] end
end
local T, REL = sending_times(base, K)
local counted = {e = 0, u = 0, f = 0, n = 0, l = 0}
local latest = nil

local function later(a, b)
  if a == nil or b > a then return b end
  return a
end

-- Applies one result to the results `s`; returns whether it moved a date.
local function apply(s, status, date, snap)
  local ev, un, fa, nf, snapshot = s.ev, s.un, s.fa, s.nf, s.snap
  if status == 'n' then
    s.nf = later(s.nf, date)
  elseif status == 'f' then
    s.fa = later(s.fa, date)
  elseif snap == '' then
    if status == 'e' then s.ev = later(s.ev, date) else s.un = later(s.un, date) end
  elseif s.snap == nil then
    s.ev = date
    s.snap = snap
  else
    local last = last_success(s)
    if snap ~= s.snap then
      if last == nil or date >= last then
        s.ev = date
        s.snap = snap
      end
    elseif last ~= nil and date < last then
      s.un = last
      if s.ev == nil or date < s.ev then s.ev = date end
    elseif last == nil or date > last then
      s.un = date
    end
  end
  return s.ev ~= ev or s.un ~= un or s.fa ~= fa or s.nf ~= nf or s.snap ~= snapshot
end

-- Applies an origin's outcomes (ARGV positions `list`) to its results `s` (with sending k at
-- sc); returns whether anything changed and whether its listings are to be disabled.
local function apply_all(s, list, k, sc, created)
  local dirty, disable = created, false
  for _, i in ipairs(list) do
    local status, date, snap = ARGV[i + 1], num(ARGV[i + 2]) or now, ARGV[i + 3]
    local sent_ms = num(ARGV[i + 4])
    if status == 'l' then
      -- lost: only if no result came since a sending before the bound
      local r = last_result(s)
      if k ~= 0 and sc < date and (r == nil or r < sc) then
        status, date = 'f', sc
      else
        status = nil
      end
    elseif sent_ms and k ~= 0 and math.floor(sc / 1000) == sent_ms and date <= sc then
      date = sc + 1
    end
    if status then
      if latest == nil or date > latest then latest = date end
      if apply(s, status, date, snap) then
        dirty = true
        local code = ARGV[i + 1]
        counted[code] = (counted[code] or 0) + 1
        local success = status == 'e' or status == 'u'
        if success then s.fails = 0 else s.fails = (s.fails or 0) + 1 end
        if (success and stop_after_success)
            or (not success and disable_after > 0 and s.fails >= disable_after) then
          disable = true
        end
      end
    elseif created then
      dirty = false
    end
  end
  return dirty, disable
end

local function copy(s)
  if s == nil then return nil end
  return {ev = s.ev, un = s.un, fa = s.fa, nf = s.nf, snap = s.snap, fails = s.fails}
end

local b, changed = new_batch(), 0
local zadd, zrem = b.zadd, b.zrem
for j, id in ipairs(ids) do
  local lraw = L[j]
  if lraw or R[j] then
    local k = K[j]
    local sc, rel = T[k], REL[k] or false
    local old = decode_results(R[j])
    local s = copy(old) or {fails = 0}
    local any_status = false
    for _, i in ipairs(at[id]) do
      if ARGV[i + 1] ~= 'l' or k ~= 0 then any_status = true end
    end
    local dirty, disable = apply_all(s, at[id], k, sc, old == nil and any_status)
    if dirty then
      changed = changed + 1
      local single = false
      local lidx, fl, upd, n
      if lraw and #lraw >= LISTING_HEAD then
        lidx, fl, upd = struct.unpack('>HBi7', lraw)
        n = struct.unpack('>H', lraw, LISTING_HEAD - 1)
        single = #lraw == LISTING_HEAD + n
      end
      if single and not disable then
        -- one listing, kept as it is: placed and counted without the general path
        local enabled = fl % 2 == 1
        if fl < 2 then upd = nil end
        put_field(b, base, id, 2, encode_results(s))
        local l0, nv0, lag0 = place(enabled, upd, old, k, sc, rel)
        local l1, nv1, lag1 = place(enabled, upd, s, k, sc, rel)
        local t = id_text[j]
        if l0 ~= l1 then
          if l0 == 'new' or l1 == 'new' then set_bit(b, id, l1 == 'new' and 1 or 0) end
          if l0 == 'pk' or l0 == 'osf' then chunk_op(b.crem[l0], k, sc, t) end
          if l1 == 'pk' or l1 == 'osf' then chunk_op(b.cadd[l1], k, sc, t) end
        end
        if nv0 ~= nv1 then
          if nv1 == nil then zrem.nv[#zrem.nv + 1] = t else
            zadd.nv[#zadd.nv + 1] = fmt_int(nv1)
            zadd.nv[#zadd.nv + 1] = t
          end
        end
        if lag0 ~= lag1 then
          if lag1 == nil then zrem.lag[#zrem.lag + 1] = t else
            zadd.lag[#zadd.lag + 1] = fmt_int(lag1)
            zadd.lag[#zadd.lag + 1] = t
          end
        end
        if enabled then
          local c = counter_fields(lidx)
          local n0 = (old == nil or old.snap == nil) and 1 or 0
          local n1 = s.snap == nil and 1 or 0
          if n0 ~= n1 then count(b.counts, c.n, n1 - n0) end
          local ok0, ok1 = old and last_success(old), last_success(s)
          local p0 = (upd ~= nil and ok0 ~= nil and upd > ok0) and 1 or 0
          local p1 = (upd ~= nil and ok1 ~= nil and upd > ok1) and 1 or 0
          if p0 ~= p1 then count(b.counts, c.p, p1 - p0) end
        end
      else
        local o = origin_from(id, nil, lraw, R[j], k, T, REL)
        local c = copy_origin(o)
        c.st = s
        if disable then
          for _, l in ipairs(c.listings) do l.enabled = false end
        end
        put_origin(b, base, o, c, disable, true)
      end
    end
  end
end
flush(b, base, meta)
saw_result(meta, latest)
local names = {e = 'eventful', u = 'uneventful', f = 'failed', n = 'not_found', l = 'lost'}
for code, n in pairs(counted) do
  if n > 0 then
    redis.call('HINCRBY', meta, 'results_' .. names[code], n)
    count_minute(base, now, 'v' .. code, n)
  end
end
return changed
