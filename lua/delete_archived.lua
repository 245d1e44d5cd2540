-- Deletes runs of one type, then those of their tasks that have no run left, as the original's
-- delete_archived_tasks.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] 3 values per run: task seq, run seq, the task's dedup fingerprint
-- Returns the number of tasks deleted, then the foreign backend ids of the deleted runs.
--@include codes
--@include task
--@include run
local base = type_base(KEYS[1])
local out = { 0 }
local touched, fps = {}, {}
local open = 0 -- open runs deleted (their count goes down)
for o = 1, #ARGV, 3 do
  local task_seq, run_seq = tonumber(ARGV[o]), tonumber(ARGV[o + 1])
  fps[task_seq] = ARGV[o + 2]
  local r = load_run(base, run_seq)
  if r and r.task == task_seq then
    if not run_ended(r.status) then open = open - 1 end
    delete_run(base, run_seq)
    if r.backend_id then out[#out + 1] = r.backend_id end
  end
  touched[task_seq] = true
end
local dk = base .. ':dedup'
for seq in pairs(touched) do
  local t = load_task(base, seq)
  if t then
    local kept = {}
    for _, e in ipairs(t.runs) do
      local rk, rf = run_loc(base, entry_seq(e))
      if redis.call('HEXISTS', rk, rf) == 1 then kept[#kept + 1] = e end
    end
    t.runs = kept
    if #kept > 0 then
      save_task(base, seq, t)
    else
      delete_task_records(base, seq)
      if t.failed then redis.call('ZREM', base .. ':failed', seq) end
      local was = snapshot(t)
      t.status = -1 -- belongs to no index
      reindex_task(base, seq, was, t)
      local ids = redis.call('HGET', dk, fps[seq])
      if ids then
        local rest = {}
        for s in string.gmatch(ids, '%d+') do
          if tonumber(s) ~= seq then rest[#rest + 1] = s end
        end
        if #rest == 0 then redis.call('HDEL', dk, fps[seq])
        else redis.call('HSET', dk, fps[seq], table.concat(rest, ' ')) end
      end
      out[1] = out[1] + 1
    end
  end
end
flush_counts(KEYS[1])
count_open(KEYS[1], base, open)
return out
