-- Sets the status (and optionally next_run) of tasks of one type, as the original's
-- set_status_tasks. Unknown ids are skipped.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2] status code
-- ARGV[3] next_run in us, or '' to leave it
-- ARGV[4] '1' to leave alone the tasks that are completed or whose next_run is not before now
--         (except_completed_tasks)
-- ARGV[5] the type's index the seqs were taken from (see load_type)
-- ARGV[6..] task seqs
-- Returns the number of tasks changed.
--@include codes
--@include time
--@include task
--@include type
local tk = KEYS[1]
load_type(tk, ARGV[5])
local base = type_base(tk)
local now = time_or(ARGV[1], nil)
local status = tonumber(ARGV[2])
local next_run = opt_num(ARGV[3])
local except_completed = ARGV[4] == '1'
if except_completed and now == nil then now = server_now_us() end
local changed = 0
for i = 6, #ARGV do
  local seq = tonumber(ARGV[i])
  local t = load_task(base, seq)
  if t and not (except_completed and (t.status == TASK_COMPLETED or t.next_run >= now)) then
    local was = snapshot(t)
    t.status = status
    if next_run then t.next_run = next_run end
    save_task(base, seq, t)
    reindex_task(base, seq, was, t)
    changed = changed + 1
  end
end
flush_counts(KEYS[1])
return changed
