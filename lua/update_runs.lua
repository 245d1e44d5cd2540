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
-- A run started and ended in the same call (Celery's task.multi batches mostly carry both) is
-- read and written once: its start is applied to the decoded record, which its end then
-- saves (when records are not asked for).
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
-- the last end event of each run in this call, and the started runs waiting for theirs
local last_end, held = {}, {}
if not want then
  for o = 3, #ARGV, 6 do
    if ARGV[o] == 'e' then last_end[ARGV[o + 1]] = o end
  end
end
for o = 3, #ARGV, 6 do
  local sk = ARGV[o + 1]
  local seq = tonumber(sk)
  local r, raw = held[sk], nil
  held[sk] = nil
  local was_held = r ~= nil
  if not r then
    local key, field = run_loc(base, seq)
    raw = redis.call('HGET', key, field)
    r = raw and decode_run(raw)
  end
  local expected = ARGV[o + 5]
  if r and expected ~= '' and expected ~= (r.backend_id or backend_id(run_id(tt, seq), r.scheduled)) then
    if was_held then held[sk] = r end
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
        if (last_end[sk] or 0) > o then
          held[sk] = r -- its end, later in this call, writes it
        else
          redis.call('ZADD', inflight, ts, seq)
          raw = save_run(base, seq, r)
        end
      elseif run_ended(status) then
        raw = end_run(base, tt, seq, r, status, ts)
      else -- "ended" with scheduled or started: only the fields change
        if was_held then redis.call('ZADD', inflight, r.started, seq) end
        r.status = status
        r.ended = ts
        raw = save_run(base, seq, r)
      end
    end
  end
  out[#out + 1] = found
  out[#out + 1] = (want and r and raw) or ''
end
-- a start whose end did not apply after all (another backend id) is written as a start
for sk, r in pairs(held) do
  redis.call('ZADD', inflight, r.started, sk)
  save_run(base, tonumber(sk), r)
end
flush_counts(tk, RUN_COUNTS, now)
return out
