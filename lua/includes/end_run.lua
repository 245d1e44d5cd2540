-- Runs that ended, by status (fields runs_<status> of the type hash, for /metrics); written
-- by flush_counts(type_key, RUN_COUNTS).
local RUN_STATUS_NAMES = { [RUN_EVENTFUL] = 'runs_eventful', [RUN_UNEVENTFUL] = 'runs_uneventful',
  [RUN_FAILED] = 'runs_failed', [RUN_PERMFAILED] = 'runs_permfailed', [RUN_LOST] = 'runs_lost' }
local RUN_COUNTS = {}
-- How the runs open changed by the runs the script ended (one less each), for count_open
-- (includes/run.lua).
local OPEN_DELTA = 0

-- Ends run <seq> (its decoded record `r`, not yet ended) with `status` at `ts`, in memory:
-- counts it, applies the end-of-run rules to its task's state `t` (nil if the task is gone)
-- and flags the run ended in the task's list. The caller saves the run and the task and
-- reindexes the task (reindex_into: the failed tasks' index holds a task while its last ended
-- run failed).
local function end_run_state(tt, seq, r, t, status, ts)
  local counter = RUN_STATUS_NAMES[status]
  RUN_COUNTS[counter] = (RUN_COUNTS[counter] or 0) + 1
  OPEN_DELTA = OPEN_DELTA - 1
  r.status = status
  r.ended = ts
  if not t then return end
  apply_end_rules(tt, t, status, ts)
  mark_run_ended(t, seq)
  if status == RUN_EVENTFUL or status == RUN_UNEVENTFUL then
    t.failed = false
    t.failed_at = nil
  else
    t.failed = true
    t.failed_at = ts
  end
end

-- end_run_state, and its writes at once. Returns the run's new record.
local function end_run(base, tt, seq, r, status, ts)
  local w = writes_new()
  local t = load_task(base, r.task)
  local was = t and snapshot(t)
  end_run_state(tt, seq, r, t, status, ts)
  if t then
    local key, field = state_loc(base, r.task)
    w_hset(w, key, field, encode_task(t))
    reindex_into(w, base, r.task, was, t)
  end
  local key, field = run_loc(base, seq)
  local raw = encode_run(r)
  w_hset(w, key, field, raw)
  w_flush(w)
  return raw
end
