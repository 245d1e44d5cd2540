-- Starts and ends runs of one type, in order, applying the end-of-run rules to their tasks
-- (see includes/end_rules.lua). Used by start_task_run, end_task_run and the listener's batches.
-- Ending is idempotent: a run that has ended keeps its status and end. A start event that
-- arrives after the end (Celery publishes a worker's task-result event at once but batches
-- task-started with other events) only fills in the start time and worker, if missing.
-- A run never starts after it ended: Celery's prefork parent stamps task-started when it
-- handles the child's ack, which can be after the child stamped task-succeeded, so a start
-- later than the end is taken as the end (whichever of the two events arrives first).
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2] '1' to return run records
-- ARGV[3..] 8 values per entry: 's' (a start), 'e' (an end) or 'x' (a start, then an end of
--   the same run: the caller folds them when nothing of that run comes between), run seq, end
--   status code (or ''), the start's metadata to merge (JSON object text, or '') and
--   timestamp (us, or '' for now), the end's metadata and timestamp, the backend id the caller
--   looked the run up by: '' not to check it, '#<ms>' for an id of this scheduler's own format
--   (src/model/ids.rs) carrying that scheduling time in ms (the run id in it is the run's),
--   else the id itself
-- Returns 2 values per event (two for an 'x' entry's start, then two for its end): 0 if no
-- such run (or its backend id is not the one given), 1 if the event changed nothing (the run
-- had ended), 2 if it changed the run; then the run's record when ARGV[2] is '1', else ''.
-- The call works in three steps, so that its Redis commands are per hash and per set, not per
-- event (a batch's runs were mostly dispatched together, and share their hashes): it reads
-- every run with one HMGET per run hash, then the tasks of the runs it may end with one HMGET
-- per task hash; applies the events in order to the decoded records; and writes each changed
-- run and task once (includes/writes.lua), with one ZADD and one ZREM per sorted set. So a
-- run started and ended in the same call (Celery's task.multi batches mostly carry both) is
-- read and written once.
--@include codes
--@include time
--@include task
--@include run
--@include type
--@include end_rules
--@include end_run
local tk = KEYS[1]
local tt = load_type(tk)
local base = type_base(tk)
local now = time_or(ARGV[1], nil) or server_now_us()
local want = ARGV[2] == '1'

-- Whether the run is the one the caller looked up by that backend id.
local function id_matches(r, seq, expected)
  if string.byte(expected, 1) == 35 then -- '#': ours, made from the run id and this time
    local ms = tonumber(string.sub(expected, 2))
    if r.backend_id then return r.backend_id == backend_id(run_id(tt, seq), ms * 1000) end
    return r.scheduled ~= nil and math.floor(r.scheduled / 1000) == ms
  end
  return expected == (r.backend_id or (r.scheduled and backend_id(run_id(tt, seq), r.scheduled)))
end

-- 1. Read the runs, and the tasks of those an end event may end.
local runs, order, ends = {}, {}, {}
local groups, keys = {}, {}
local seqs = {} -- by entry offset
for o = 3, #ARGV, 8 do
  local seq = tonumber(ARGV[o + 1])
  seqs[o] = seq
  if runs[seq] == nil then
    runs[seq] = false
    order[#order + 1] = seq
    local key, field = run_loc(base, seq)
    group_add(groups, keys, key, field, seq)
  end
  if ARGV[o] ~= 's' then ends[seq] = true end
end
-- (a run hash holds RUN_BUCKET runs, a task hash TASK_BUCKET tasks, each also its arguments)
read_groups(groups, keys, function(seq, raw) runs[seq] = decode_run(raw) end, RUN_BUCKET / 2)
local tasks, was, changed_tasks = {}, {}, {}
groups, keys = {}, {}
for _, seq in ipairs(order) do
  local r = runs[seq]
  if r and ends[seq] and not run_ended(r.status) and tasks[r.task] == nil then
    tasks[r.task] = false
    local key, field = state_loc(base, r.task)
    group_add(groups, keys, key, field, r.task)
  end
end
read_groups(groups, keys, function(seq, raw)
  local t = decode_task(raw)
  tasks[seq] = t
  was[seq] = snapshot(t)
end, TASK_BUCKET / 2)

-- 2. Apply the events in order to the records.
local out = {}
local changed = {} -- run seq -> true once changed, in changed_order
local changed_order, task_order = {}, {}
-- Applies the start ('s') or the end ('e') of the entry at offset o.
local function apply(kind, o)
  local seq = seqs[o]
  local r = runs[seq]
  local expected = ARGV[o + 7]
  if r and expected ~= '' and not id_matches(r, seq, expected) then r = nil end
  local found = 0
  if r then
    found = 1
    local ts_arg = kind == 's' and ARGV[o + 4] or ARGV[o + 6]
    local meta = kind == 's' and ARGV[o + 3] or ARGV[o + 5]
    local ts = time_or(ts_arg, now)
    if run_ended(r.status) then
      if kind == 's' and r.started == nil then
        found = 2
        RUN_COUNTS.runs_started = (RUN_COUNTS.runs_started or 0) + 1
        if r.ended and ts > r.ended then ts = r.ended end
        r.started = ts
        r.metadata = merge_metadata(r.metadata, meta)
      end
    else
      found = 2
      r.metadata = merge_metadata(r.metadata, meta)
      if kind == 's' then
        RUN_COUNTS.runs_started = (RUN_COUNTS.runs_started or 0) + 1
        r.started = ts
        r.status = RUN_STARTED
      else
        local status = tonumber(ARGV[o + 2])
        if r.started and r.started > ts then r.started = ts end
        if run_ended(status) then
          local t = tasks[r.task] or nil
          end_run_state(tt, seq, r, t, status, ts)
          if t and not changed_tasks[r.task] then
            changed_tasks[r.task] = true
            task_order[#task_order + 1] = r.task
          end
        else -- "ended" with scheduled or started: only the fields change
          r.status = status
          r.ended = ts
        end
      end
    end
    if found == 2 and not changed[seq] then
      changed[seq] = true
      changed_order[#changed_order + 1] = seq
    end
  end
  out[#out + 1] = found
  out[#out + 1] = (want and r and encode_run(r)) or ''
end
for o = 3, #ARGV, 8 do
  local kind = ARGV[o]
  if kind == 'x' then
    apply('s', o)
    apply('e', o)
  else
    apply(kind, o)
  end
end

-- 3. Write what changed, grouped.
local w = writes_new()
for _, seq in ipairs(changed_order) do
  local key, field = run_loc(base, seq)
  w_hset(w, key, field, encode_run(runs[seq]))
end
for _, s in ipairs(task_order) do
  local t = tasks[s]
  local key, field = state_loc(base, s)
  w_hset(w, key, field, encode_task(t))
  reindex_into(w, base, s, was[s], t)
end
w_flush(w)
flush_counts(tk, RUN_COUNTS, now)
count_open(tk, base, OPEN_DELTA)
return out
