-- Run records. Run <seq> of a type lives in field (seq % RUN_BUCKET) of the hash
-- "<base>:r:<floor(seq / RUN_BUCKET)>", as consecutive cmsgpack values:
--   task seq, status, scheduled (us or nil), started (us or nil), ended (us or nil),
--   metadata, backend_id (nil when derived from the run id, see backend_id below).
-- metadata is one or more JSON objects separated by "\n"; readers merge them, later keys
-- winning. Appending instead of merging keeps the values' text exact without a JSON parser.
-- '' is NULL: a run scheduled without metadata (mass_schedule_task_runs), until it starts or
-- ends (then, as the original's coalesce(metadata, '{}') || new, at least '{}').
-- <base>:inflight is a zset of the entries that may hold runs still scheduled or started, for
-- the lost-run sweep (sweep_lost.lua) and the reconciliation listing (inflight_runs.lua):
-- a run ("<seq>") or up to INFLIGHT_RANGE consecutive runs created by one call
-- ("<first>+<count>"), scored at or before the last change of each of its runs. Starting or
-- ending a run leaves it alone, so that the runner and the listener pay nothing a run here:
-- the sweep reads the records of its entries, drops those whose runs all ended, and adds
-- again one by one the runs still open, scored by their last change (scheduling or start).
-- The type hash's runs_open counts the runs scheduled or started (count_open below).
-- A task's state lists its kept runs as run_seq * 4 + RUN_ENDED_BIT + RUN_FOREIGN_BIT.
local RUN_ENDED_BIT, RUN_FOREIGN_BIT = 1, 2
local INFLIGHT_RANGE = 1000

-- Appends to `za` (ZADD arguments) the in-flight entries of runs first .. first + n - 1,
-- scored `score` (text).
local function inflight_entries(za, score, first, n)
  for s = first, first + n - 1, INFLIGHT_RANGE do
    local c = math.min(INFLIGHT_RANGE, first + n - s)
    za[#za + 1] = score
    za[#za + 1] = c == 1 and int_str(s) or int_str(s) .. '+' .. int_str(c)
  end
end

-- The runs of an in-flight entry: its first run seq and how many.
local function entry_runs(member)
  local first, n = string.match(member, '^(%d+)%+(%d+)$')
  if first then return tonumber(first), tonumber(n) end
  return tonumber(member), 1
end

-- Adds d to the runs open of the type (hash tk, base `base`). A store written before the
-- count had an in-flight entry exactly for each open run: the count starts from them, so a
-- script that adds entries calls this first.
local function count_open(tk, base, d)
  if d == 0 then return end
  if redis.call('HEXISTS', tk, 'runs_open') == 0 then
    redis.call('HSET', tk, 'runs_open', redis.call('ZCARD', base .. ':inflight'))
  end
  redis.call('HINCRBY', tk, 'runs_open', d)
end

-- The run's hash and field (as text, see num_text).
local RUN_KEYS = {}
local function run_loc(base, seq)
  local b = math.floor(seq / RUN_BUCKET)
  return bucket_key(RUN_KEYS, base, ':r:', b), num_text(seq - b * RUN_BUCKET)
end

-- The in-flight entries of `page` that fit, with the `used` runs a call has read already, in
-- its bound of `most` runs (its first entry always): the entries taken, their run seqs in
-- order, those grouped for read_groups (groups, keys), and whether an entry was left out.
local function take_entries(base, page, used, most)
  local taken, order, groups, keys = {}, {}, {}, {}
  for _, m in ipairs(page) do
    local first, n = entry_runs(m)
    if used + #order > 0 and used + #order + n > most then
      return taken, order, groups, keys, true
    end
    taken[#taken + 1] = m
    if first then
      for seq = first, first + n - 1 do
        order[#order + 1] = seq
        local key, field = run_loc(base, seq)
        group_add(groups, keys, key, field, seq)
      end
    end
  end
  return taken, order, groups, keys, false
end

-- Tables are built with a constructor: Lua 5.1 then sizes them for all their fields at once,
-- where fields set one by one grow the table (and rehash it) at the 1st, 2nd, 3rd and 5th.
local function decode_run(raw)
  local task, status, scheduled, started, ended, metadata, backend_id = cmsgpack.unpack(raw)
  return { task = task, status = status, scheduled = scheduled, started = started,
    ended = ended, metadata = metadata, backend_id = backend_id }
end

local function load_run(base, seq)
  local key, field = run_loc(base, seq)
  local raw = redis.call('HGET', key, field)
  if not raw then return nil end
  return decode_run(raw)
end

local function encode_run(r)
  return cmsgpack.pack(r.task, r.status, r.scheduled, r.started, r.ended, r.metadata,
    r.backend_id)
end

local function save_run(base, seq, r)
  local key, field = run_loc(base, seq)
  local raw = encode_run(r)
  redis.call('HSET', key, field, raw)
  return raw
end

-- (an in-flight entry of the run stays: the sweep drops it when it finds the record gone)
local function delete_run(base, seq)
  local key, field = run_loc(base, seq)
  redis.call('HDEL', key, field)
end

local function merge_metadata(old, new)
  if old == '' then old = '{}' end
  if new == '' or new == '{}' then return old end
  if old == '{}' then return new end
  return old .. '\n' .. new
end

local function run_ended(status)
  return status ~= RUN_SCHEDULED and status ~= RUN_STARTED
end

local function entry_seq(e)
  return math.floor(e / 4)
end

-- The Celery task id of a run the runner created: a version-8 UUID carrying the scheduling time
-- in ms and the run id (see src/model/ids.rs, which parses it).
local function backend_id(run_id, scheduled_us)
  local ms = math.floor(scheduled_us / 1000)
  local hi = math.floor(run_id / 281474976710656) -- 2^48
  return string.format('%08x-%04x-85c8-8%03x-%012x', math.floor(ms / 65536), ms % 65536,
    hi, run_id - hi * 281474976710656)
end

-- Appends a run to the task's list (in its state `t`, which the caller saves) and deletes the
-- oldest ended runs beyond `keep`. Returns nil, or the foreign backend ids of deleted runs
-- (their entries in the global index are the caller's to remove).
local function attach_run(base, t, run_seq, foreign, keep)
  local runs = t.runs
  runs[#runs + 1] = run_seq * 4 + (foreign and RUN_FOREIGN_BIT or 0)
  local excess = #runs - keep
  if excess <= 0 then return nil end
  local kept, dropped = {}, nil
  for i = 1, #runs do
    local e = runs[i]
    if excess > 0 and i < #runs and e % 2 == RUN_ENDED_BIT then
      local rs = entry_seq(e)
      if math.floor(e / 2) % 2 == 1 then
        local r = load_run(base, rs)
        if r and r.backend_id then
          dropped = dropped or {}
          dropped[#dropped + 1] = r.backend_id
        end
      end
      local key, field = run_loc(base, rs)
      redis.call('HDEL', key, field)
      excess = excess - 1
    else
      kept[#kept + 1] = e
    end
  end
  t.runs = kept
  return dropped
end

-- Flags the run as ended in the task's list (in its state `t`, which the caller saves).
local function mark_run_ended(t, run_seq)
  for i, e in ipairs(t.runs) do
    if entry_seq(e) == run_seq then
      if e % 2 == 0 then t.runs[i] = e + RUN_ENDED_BIT end
      return
    end
  end
end

-- The seqs of the task's kept runs, oldest first.
local function task_run_seqs(t)
  local out = {}
  for i, e in ipairs(t.runs) do out[i] = entry_seq(e) end
  return out
end
