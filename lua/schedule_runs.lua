-- Records new runs (status scheduled) of tasks of one type, as the original's
-- schedule_task_run and mass_schedule_task_runs: the tasks themselves are not changed, but each
-- keeps only its last ARGV[2] runs (older ended runs are deleted).
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2] runs to keep per task
-- ARGV[3] the type's index the task seqs were taken from (see load_type)
-- ARGV[4..] 4 values per run: task seq, backend_id ('' to derive one from the run id),
--   scheduled (us or ''), metadata (JSON object text)
-- Returns seq, record pairs of the new runs, then the foreign backend ids of deleted runs.
-- Raises SWH_UNKNOWN_TASK <seq> before writing anything if a task does not exist.
--@include codes
--@include time
--@include task
--@include run
--@include type
local tk = KEYS[1]
local tt = load_type(tk, ARGV[3])
local base = type_base(tk)
local now = time_or(ARGV[1], nil) or server_now_us()
local keep = tonumber(ARGV[2])
local n = (#ARGV - 3) / 4
local tasks = {}
for i = 1, n do
  local seq = tonumber(ARGV[4 + (i - 1) * 4])
  if not tasks[seq] then
    tasks[seq] = load_task(base, seq)
    if not tasks[seq] then
      return redis.error_reply('SWH_UNKNOWN_TASK ' .. int_str(run_id(tt, seq)))
    end
  end
end
local last = redis.call('HINCRBY', tk, 'run_seq', n)
local out, dropped = {}, {}
for i = 1, n do
  local o = 4 + (i - 1) * 4
  local task_seq = tonumber(ARGV[o])
  local seq = last - n + i
  local r = {
    task = task_seq,
    status = RUN_SCHEDULED,
    scheduled = time_or(ARGV[o + 2], now),
    metadata = ARGV[o + 3],
  }
  if ARGV[o + 1] ~= '' then r.backend_id = ARGV[o + 1] end
  out[#out + 1] = seq
  out[#out + 1] = save_run(base, seq, r)
  redis.call('ZADD', base .. ':inflight', r.scheduled, seq)
  for _, b in ipairs(attach_run(base, tasks[task_seq], seq, r.backend_id ~= nil, keep) or {}) do
    dropped[#dropped + 1] = b
  end
end
for seq, t in pairs(tasks) do save_task(base, seq, t) end
for _, b in ipairs(dropped) do out[#out + 1] = b end
return out
