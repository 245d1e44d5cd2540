-- Runs that ended, by status (fields runs_<status> of the type hash, for /metrics); written
-- by flush_counts(type_key, RUN_COUNTS).
local RUN_STATUS_NAMES = { [RUN_EVENTFUL] = 'runs_eventful', [RUN_UNEVENTFUL] = 'runs_uneventful',
  [RUN_FAILED] = 'runs_failed', [RUN_PERMFAILED] = 'runs_permfailed', [RUN_LOST] = 'runs_lost' }
local RUN_COUNTS = {}

-- Ends run <seq> (its decoded record `r`, not yet ended) with `status` at `ts`: drops it from
-- the in-flight set, applies the end-of-run rules to its task and flags the run ended in the
-- task's list, and saves the run. Returns the run's new record.
local function end_run(base, tt, seq, r, status, ts)
  local counter = RUN_STATUS_NAMES[status]
  RUN_COUNTS[counter] = (RUN_COUNTS[counter] or 0) + 1
  r.status = status
  r.ended = ts
  redis.call('ZREM', base .. ':inflight', seq)
  local t = load_task(base, r.task)
  if t then
    local was = snapshot(t)
    apply_end_rules(tt, t, status, ts)
    mark_run_ended(t, seq)
    -- the failed tasks' index: in it while the last ended run failed
    if status == RUN_EVENTFUL or status == RUN_UNEVENTFUL then
      if t.failed then
        redis.call('ZREM', base .. ':failed', r.task)
        t.failed = false
      end
    else
      redis.call('ZADD', base .. ':failed', ts, r.task)
      t.failed = true
    end
    save_task(base, r.task, t)
    reindex_task(base, r.task, was, t)
  end
  return save_run(base, seq, r)
end
