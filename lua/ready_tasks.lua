-- Peeks at, or grabs, the due tasks of one type: status next_run_not_scheduled and
-- next_run <= timestamp, oldest next_run first (ties in id order). Grabbing sets them
-- next_run_scheduled, atomically, so concurrent grabbers never get the same task.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[2] <prefix>:{<type>}:ready, or <prefix>:{<type>}:ready:prio for tasks with a priority
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] timestamp in us, or '' for the server clock
-- ARGV[2] most tasks to return, or '' for all
-- ARGV[3] '1' to grab, '0' to peek
-- ARGV[4] due tasks to pass over first (peeking page by page)
-- Returns seq, state record, arguments record for each (states as saved, after grabbing).
--@include codes
--@include time
--@include task
--@include type
local tk = KEYS[1]
load_type(tk)
local base = type_base(tk)
local ts = time_or(ARGV[1], nil) or server_now_us()
local limit = tonumber(ARGV[2]) or -1
if limit == 0 then return {} end
local grab = ARGV[3] == '1'
local members = redis.call('ZRANGE', KEYS[2], '-inf', int_str(ts), 'BYSCORE', 'LIMIT',
  tonumber(ARGV[4]), limit)
if grab and #members > 0 then
  -- the due members are the lowest-ranked ones (grabbing passes over none)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, #members - 1)
end
local out = {}
for _, m in ipairs(members) do
  local seq = member_seq(m)
  local raw, args = load_records(base, seq)
  if raw then
    if grab then
      local t = decode_task(raw)
      count_status(t.status, TASK_SCHEDULED)
      t.status = TASK_SCHEDULED
      raw = save_task(base, seq, t)
    end
    out[#out + 1] = seq
    out[#out + 1] = raw
    out[#out + 1] = args
  end
end
flush_counts(tk)
return out
