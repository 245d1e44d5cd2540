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
-- ARGV[4..] 5 values per outcome: origin id, status ('e', 'u', 'f', 'n' or 'l'), date in us
--   or '', snapshot (20 bytes) or '', the sending's time in ms from the task id or ''
-- Returns the number of origins whose stats changed; counts the outcomes that changed
-- something, by status, in the `results_<status>` fields of KEYS[1] (for /metrics), so that
-- a retried call counts nothing twice.
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local now = num(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local disable_after, stop_after_success = tonumber(ARGV[2]), ARGV[3] == '1'
local ids, seen = {}, {}
for i = 4, #ARGV, 5 do
  local id = tonumber(ARGV[i])
  if id and not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
local stored = load_origins(base, ids)
local cur, dirty = {}, {}
local counted = {e = 0, u = 0, f = 0, n = 0, l = 0}

local function later(a, b)
  if a == nil or b > a then return b end
  return a
end

-- Applies one result to the record `o`; returns whether it moved a date.
local function apply(o, status, date, snap)
  local le, lu, lf, lnf, snapshot = o.le, o.lu, o.lf, o.lnf, o.snapshot
  if status == 'n' then
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
  return o.le ~= le or o.lu ~= lu or o.lf ~= lf or o.lnf ~= lnf or o.snapshot ~= snapshot
end

for i = 4, #ARGV, 5 do
  local id = tonumber(ARGV[i])
  local old = id and stored[id]
  if old then
    local o = cur[id]
    if o == nil then
      o = copy_origin(old)
      cur[id] = o
    end
    local status, date, snap = ARGV[i + 1], num(ARGV[i + 2]) or now, ARGV[i + 3]
    local sent_ms = num(ARGV[i + 4])
    if status == 'l' then
      -- lost: only if no result came since a sending before the bound
      local r = last_result(o)
      if o.ls ~= nil and o.ls < date and (r == nil or r < o.ls) then
        status, date = 'f', o.ls
      else
        status = nil
      end
    elseif sent_ms and o.ls and math.floor(o.ls / 1000) == sent_ms and date <= o.ls then
      date = o.ls + 1
    end
    if status then
      local moved = apply(o, status, date, snap)
      if not o.has_stats then
        o.has_stats = true
        dirty[id] = true
      end
      if moved then
        dirty[id] = true
        local code = ARGV[i + 1]
        counted[code] = (counted[code] or 0) + 1
        local success = status == 'e' or status == 'u'
        if success then o.fails = 0 else o.fails = o.fails + 1 end
        if (success and stop_after_success)
            or (not success and disable_after > 0 and o.fails >= disable_after) then
          for _, l in ipairs(o.listings) do l.enabled = false end
        end
      end
    end
  end
end

local b, changed = new_batch(), 0
for _, id in ipairs(ids) do
  -- (only what moved a date, or gave stats to an origin that had none, changes a record)
  local o, old = cur[id], stored[id]
  if dirty[id] then
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
