-- Starts and ends runs of one type, in order, applying the end-of-run rules to their tasks
-- (see includes/end_rules.lua). Used by start_task_run, end_task_run and the listener's batches.
-- Ending is idempotent: a run that has ended keeps its status and end. A start event that
-- arrives after the end (Celery publishes a worker's task-result event at once but batches
-- task-started with other events) only fills in the start time and worker, if missing.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2] '1' to return run records
-- ARGV[3..] 6 values per event: 's' (start) or 'e' (end), run seq, end status code (or ''),
--   metadata to merge (JSON object text, or ''), timestamp (us, or '' for now), the backend id
--   the caller looked the run up by (or '' not to check it)
-- Returns 2 values per event: 0 if no such run (or its backend id is not the one given), 1 if
-- the event changed nothing (the run had ended), 2 if it changed the run; then the run's record
-- when ARGV[2] is '1', else ''.
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
local inflight = base .. ':inflight'
local out = {}
for o = 3, #ARGV, 6 do
  local seq = tonumber(ARGV[o + 1])
  local key, field = run_loc(base, seq)
  local raw = redis.call('HGET', key, field)
  local r = raw and decode_run(raw)
  local expected = ARGV[o + 5]
  if r and expected ~= '' and expected ~= (r.backend_id or backend_id(run_id(tt, seq), r.scheduled)) then
    r = nil
  end
  local found = 0
  if r then
    found = 1
    if run_ended(r.status) and ARGV[o] == 's' and r.started == nil then
      found = 2
      RUN_COUNTS.runs_started = (RUN_COUNTS.runs_started or 0) + 1
      r.started = time_or(ARGV[o + 4], now)
      r.metadata = merge_metadata(r.metadata, ARGV[o + 3])
      raw = save_run(base, seq, r)
    elseif not run_ended(r.status) then
      found = 2
      local ts = time_or(ARGV[o + 4], now)
      r.metadata = merge_metadata(r.metadata, ARGV[o + 3])
      local status = tonumber(ARGV[o + 2])
      if ARGV[o] == 's' then
        RUN_COUNTS.runs_started = (RUN_COUNTS.runs_started or 0) + 1
        r.status = RUN_STARTED
        r.started = ts
        redis.call('ZADD', inflight, ts, seq)
        raw = save_run(base, seq, r)
      elseif run_ended(status) then
        raw = end_run(base, tt, seq, r, status, ts)
      else -- "ended" with scheduled or started: only the fields change
        r.status = status
        r.ended = ts
        raw = save_run(base, seq, r)
      end
    end
  end
  out[#out + 1] = found
  out[#out + 1] = (want and r and raw) or ''
end
flush_counts(tk, RUN_COUNTS)
return out
