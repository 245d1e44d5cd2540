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
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
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
local cur, old_of, dirty, ldirty = {}, {}, {}, {}
local counted = {e = 0, u = 0, f = 0, n = 0, l = 0}
local latest = nil

local function later(a, b)
  if a == nil or b > a then return b end
  return a
end

-- Applies one result to the stats `s`; returns whether it moved a date.
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

for i = 4, #ARGV, 5 do
  local id = tonumber(ARGV[i])
  if id and stored[id] then
    local o = cur[id]
    if o == nil then
      old_of[id] = stored[id]
      o = copy_origin(old_of[id])
      cur[id] = o
    end
    local s = o.st
    if s == nil then
      s = {fails = 0}
      o.st = s
    end
    local status, date, snap = ARGV[i + 1], num(ARGV[i + 2]) or now, ARGV[i + 3]
    local sent_ms = num(ARGV[i + 4])
    if status == 'l' then
      -- lost: only if no result came since a sending before the bound
      local r = last_result(s)
      if o.k ~= 0 and o.sc < date and (r == nil or r < o.sc) then
        status, date = 'f', o.sc
      else
        status = nil
      end
    elseif sent_ms and o.k ~= 0 and math.floor(o.sc / 1000) == sent_ms and date <= o.sc then
      date = o.sc + 1
    end
    if status then
      if latest == nil or date > latest then latest = date end
      local moved = apply(s, status, date, snap)
      if not old_of[id].st then dirty[id] = true end
      if moved then
        dirty[id] = true
        local code = ARGV[i + 1]
        counted[code] = (counted[code] or 0) + 1
        local success = status == 'e' or status == 'u'
        if success then s.fails = 0 else s.fails = (s.fails or 0) + 1 end
        if (success and stop_after_success)
            or (not success and disable_after > 0 and s.fails >= disable_after) then
          for _, l in ipairs(o.listings) do l.enabled = false end
          ldirty[id] = true
        end
      end
    end
  end
end

local b, changed = new_batch(), 0
for _, id in ipairs(ids) do
  -- (only what moved a date, or gave stats to an origin that had none, changes a record)
  if dirty[id] then
    changed = changed + 1
    put_origin(b, base, old_of[id], cur[id], ldirty[id], true)
  end
end
flush(b, base, meta)
saw_result(meta, latest)
local names = {e = 'eventful', u = 'uneventful', f = 'failed', n = 'not_found', l = 'lost'}
for code, n in pairs(counted) do
  if n > 0 then redis.call('HINCRBY', meta, 'results_' .. names[code], n) end
end
return changed
