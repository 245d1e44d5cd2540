-- Applies the results of visits the visit runner sent (from the loaders' Celery tasks) to
-- the origins' visit stats, each origin atomically, with the rules of the original's journal
-- client (0.16 swh/scheduler/journal_client.py), in the order given:
--   not_found: last_notfound = max(date, last_notfound)
--   failed:    last_failed = max(date, last_failed)
--   eventful or uneventful with snapshot S:
--     no snapshot stored: last_eventful = date, last_snapshot = S
--     otherwise, L = max(last_eventful, last_uneventful):
--       S differs: ignored if date < L, else last_eventful = date, last_snapshot = S
--       S is the stored one: date < L: last_uneventful = L, last_eventful =
--         min(last_eventful, date); date = L: a duplicate, nothing changes; date > L:
--         last_uneventful = date
--   eventful or uneventful naming no snapshot: last_eventful (or last_uneventful) =
--     max(date, it); the stored snapshot stays (an origin counts as having a snapshot only
--     once a result names one, as for the original, whose visits without one are failures)
--   lost (the listener's sweep): the date is a bound; if the origin was last sent before it
--     and has no result since, it is a failed visit now: last_failed = max(now, last_failed)
-- A result moves the origin out of `parked` (it has a result since it was scheduled).
-- Later versions' rules, off unless asked: the origin's listings are disabled after N failed
-- or not-found results in a row (ARGV[2]; results that move no date do not count), or after a success (ARGV[3], for visit types whose
-- artifacts never change); a lister listing it again enables it again.
-- Outcomes for origins unknown here (deleted since) are skipped.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- ARGV[1] now in us (for outcomes with no date), or '' for the server clock
-- ARGV[2] disable after this many failed or not-found results in a row (0: never)
-- ARGV[3] '1' to disable after a success, else '0'
-- ARGV[4..] 4 values per outcome: origin id, status ('e', 'u', 'f', 'n' or 'l'), date in us or '',
--   snapshot (20 bytes) or ''
-- Returns the number of origins whose stats changed; counts the results of known origins by
-- status in the `results_<status>` fields of KEYS[1] (for /metrics).
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local now = num(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local ids, seen = {}, {}
local disable_after, stop_after_success = tonumber(ARGV[2]), ARGV[3] == '1'
for i = 4, #ARGV, 4 do
  local id = tonumber(ARGV[i])
  if id and not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
local stored = load_origins(base, ids)
local cur = {}
local counted = {e = 0, u = 0, f = 0, n = 0, l = 0}

local function later(a, b)
  if a == nil or b > a then return b end
  return a
end

for i = 4, #ARGV, 4 do
  local id = tonumber(ARGV[i])
  local old = id and stored[id]
  if old then
    local o = cur[id]
    if o == nil then
      o = copy_origin(old)
      cur[id] = o
    end
    local status, date, snap = ARGV[i + 1], num(ARGV[i + 2]) or now, ARGV[i + 3]
    local prev = {le = o.le, lu = o.lu, lf = o.lf, lnf = o.lnf}
    if status == 'l' then
      -- still no result since it was sent before the bound: it failed; else it is not lost
      local r = last_result(o)
      if o.ls ~= nil and o.ls < date and (r == nil or r <= o.ls) then
        status, date = 'f', now
        counted.l = counted.l + 1
      else
        status = nil
      end
    elseif counted[status] then
      counted[status] = counted[status] + 1
    end
    if status == nil then
      -- nothing to do
    elseif status == 'n' then
      o.lnf = later(o.lnf, date)
    elseif status == 'f' then
      o.lf = later(o.lf, date)
    elseif snap == '' then
      if status == 'e' then o.le = later(o.le, date) else o.lu = later(o.lu, date) end
    elseif o.snapshot == nil then
      o.le = date
      o.snapshot = snap
    else
      local L = last_success(o)
      if snap ~= o.snapshot then
        if L == nil or date >= L then
          o.le = date
          o.snapshot = snap
        end
      elseif L ~= nil and date < L then
        o.lu = L
        if o.le == nil or date < o.le then o.le = date end
      elseif L == nil or date > L then
        o.lu = date
      end
    end
    if status then o.has_stats = true end
    -- only a result that moved a date counts (a repeated one changes nothing)
    local success = status == 'e' or status == 'u'
    if success and (o.le ~= prev.le or o.lu ~= prev.lu) then
      o.fails = 0
    elseif not success and (o.lf ~= prev.lf or o.lnf ~= prev.lnf) then
      o.fails = o.fails + 1
    end
    if (disable_after > 0 and o.fails >= disable_after) or (stop_after_success and success) then
      for _, l in ipairs(o.listings) do l.enabled = false end
    end
  end
end

local b, changed = new_batch(), 0
for _, id in ipairs(ids) do
  local o, old = cur[id], stored[id]
  if o and encode_origin(o) ~= encode_origin(old) then
    changed = changed + 1
    put_origin(b, base, id, old, o)
  end
end
flush(b, base)
local names = {e = 'eventful', u = 'uneventful', f = 'failed', n = 'not_found', l = 'lost'}
for code, n in pairs(counted) do
  if n > 0 then redis.call('HINCRBY', KEYS[1], 'results_' .. names[code], n) end
end
return changed
