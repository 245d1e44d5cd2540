-- Starts and ends runs of one type, in order, applying the end-of-run rules to their tasks
-- (see includes/end_rules.lua). Used by start_task_run, end_task_run and the listener's batches.
-- Ending is idempotent: a run that has ended is left as it is, and so is one that a late
-- start event would move back from an end status.
-- KEYS[1] <prefix>:{<type>}:type
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2..] 6 values per event: 's' (start) or 'e' (end), run seq, end status code (or ''),
--   metadata to merge (JSON object text, or ''), timestamp (us, or '' for now), the backend id
--   the caller looked the run up by (or '' not to check it)
-- Returns 3 values per event: the run's record ('' for an unknown run, or one whose backend id
-- is not the one given), 1 if the event changed it else 0, and the task's record if the run
-- ended now, else ''.
--@include codes
--@include time
--@include task
--@include run
--@include type
--@include end_rules
local tk = KEYS[1]
local tt = load_type(tk)
local base = type_base(tk)
local now = time_or(ARGV[1], nil) or server_now_us()
local inflight = base .. ':inflight'
local out = {}
for o = 2, #ARGV, 6 do
  local seq = tonumber(ARGV[o + 1])
  local r = load_run(base, seq)
  local expected = ARGV[o + 5]
  if r and expected ~= '' and expected ~= (r.backend_id or backend_id(run_id(tt, seq), r.scheduled)) then
    r = nil
  end
  local run_raw, changed, task_raw = '', 0, ''
  if r then
    local ts = time_or(ARGV[o + 4], now)
    if not run_ended(r.status) then
      changed = 1
      r.metadata = merge_metadata(r.metadata, ARGV[o + 3])
      if ARGV[o] == 's' then
        r.status = RUN_STARTED
        r.started = ts
        redis.call('ZADD', inflight, ts, seq)
      else
        r.status = tonumber(ARGV[o + 2])
        r.ended = ts
        if run_ended(r.status) then
          redis.call('ZREM', inflight, seq)
          local t = load_task(base, r.task)
          if t then
            local was = snapshot(t)
            apply_end_rules(tt, t, r.status, ts)
            task_raw = save_task(base, r.task, t)
            reindex_task(base, r.task, was, t)
          end
        end
      end
      run_raw = save_run(base, seq, r)
    else
      local key, field = run_loc(base, seq)
      run_raw = redis.call('HGET', key, field)
    end
  end
  out[#out + 1] = run_raw
  out[#out + 1] = changed
  out[#out + 1] = task_raw
end
return out
