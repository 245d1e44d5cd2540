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
-- As update_runs.lua, the tasks are read with one HMGET per task hash (or HGETALL), and the
-- new runs and the tasks written with one command per hash (includes/writes.lua), the runs in
-- flight as ranges (includes/run.lua), instead of four commands a run.
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

-- 1. Read every task once, grouped by hash; none is written unless all exist.
local tasks, order = {}, {}
local groups, keys = {}, {}
for i = 1, n do
  local seq = tonumber(ARGV[4 + (i - 1) * 4])
  if tasks[seq] == nil then
    tasks[seq] = false
    order[#order + 1] = seq
    local key, field = state_loc(base, seq)
    group_add(groups, keys, key, field, seq)
  end
end
read_groups(groups, keys, function(seq, raw) tasks[seq] = decode_task(raw) end, TASK_BUCKET / 2)
for _, seq in ipairs(order) do
  if not tasks[seq] then
    return redis.error_reply('SWH_UNKNOWN_TASK ' .. int_str(run_id(tt, seq)))
  end
end

-- 2. The runs, written grouped at the end.
local last = redis.call('HINCRBY', tk, 'run_seq', n)
local out, dropped = {}, {}
local w = writes_new()
local oldest -- the earliest scheduling time, the score of the runs' in-flight entries
for i = 1, n do
  local o = 4 + (i - 1) * 4
  local task_seq = tonumber(ARGV[o])
  local seq = last - n + i
  local backend = ARGV[o + 1] ~= '' and ARGV[o + 1] or nil
  local r = {
    task = task_seq,
    status = RUN_SCHEDULED,
    scheduled = time_or(ARGV[o + 2], now),
    metadata = ARGV[o + 3],
    backend_id = backend,
  }
  local key, field = run_loc(base, seq)
  local raw = encode_run(r)
  w_hset(w, key, field, raw)
  if not oldest or r.scheduled < oldest then oldest = r.scheduled end
  out[#out + 1] = seq
  out[#out + 1] = raw
  for _, b in ipairs(attach_run(base, tasks[task_seq], seq, backend ~= nil, keep) or {}) do
    dropped[#dropped + 1] = b
  end
end
for _, seq in ipairs(order) do
  local key, field = state_loc(base, seq)
  w_hset(w, key, field, encode_task(tasks[seq]))
end
w_flush(w)
if n > 0 then
  count_open(tk, base, n)
  local za = {}
  inflight_entries(za, int_str(oldest), last - n + 1, n)
  redis.call('ZADD', base .. ':inflight', unpack(za))
end
for _, b in ipairs(dropped) do out[#out + 1] = b end
return out
