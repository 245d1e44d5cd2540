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
-- Tasks due together were mostly created together and share hashes: each hash is read with
-- one HMGET (or whole, when half of it or more is wanted) and written with one HSET, instead
-- of two commands a task.
local groups, keys, seqs = {}, {}, {}
for i, m in ipairs(members) do
  local seq = member_seq(m)
  seqs[i] = seq
  local key, field, args_field = state_loc(base, seq)
  -- member i: the state of due task i; -i: its arguments
  group_add(groups, keys, key, field, i)
  group_add(groups, keys, key, args_field, -i)
end
local raws, argss = {}, {}
read_groups(groups, keys, function(i, raw)
  if i < 0 then argss[-i] = raw else raws[i] = raw end
end, TASK_BUCKET)
local w = writes_new()
if grab then
  for i, seq in ipairs(seqs) do
    if raws[i] then
      local was
      raws[i], was = with_status(raws[i], TASK_SCHEDULED)
      count_status(was, TASK_SCHEDULED)
      local key, field = state_loc(base, seq)
      w_hset(w, key, field, raws[i])
    end
  end
end
w_flush(w)
local out = {}
for i = 1, #members do
  if raws[i] then
    out[#out + 1] = seqs[i]
    out[#out + 1] = raws[i]
    out[#out + 1] = argss[i] or false
  end
end
flush_counts(tk)
return out
