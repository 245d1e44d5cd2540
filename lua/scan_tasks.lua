-- Scans the tasks of one type bucket by bucket, for search_tasks, keeping those that match.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] first bucket to read
-- ARGV[2] most buckets to read in this call
-- ARGV[3] most tasks to return
-- ARGV[4] statuses to keep, as codes separated by commas, or '' for all
-- ARGV[5] priorities to keep, codes separated by commas, or '' for all
-- ARGV[6] policies to keep, codes separated by commas, or '' for all
-- ARGV[7] keep next_run <= this (us), or ''
-- ARGV[8] keep next_run >= this (us), or ''
-- Returns the next bucket to read (-1 when done), then seq, state record, arguments record for
-- each task kept, in seq order.
--@include codes
--@include task
local tk = KEYS[1]
local base = type_base(tk)
local first = tonumber(ARGV[1])
local last_bucket = math.floor((tonumber(redis.call('HGET', tk, 'task_seq')) or 0) / TASK_BUCKET)
local stop = math.min(last_bucket, first + tonumber(ARGV[2]) - 1)
local limit = tonumber(ARGV[3])
local function set_of(list)
  if list == '' then return nil end
  local s = {}
  for c in string.gmatch(list, '%d+') do s[tonumber(c)] = true end
  return s
end
local statuses, priorities, policies = set_of(ARGV[4]), set_of(ARGV[5]), set_of(ARGV[6])
local before, after = opt_num(ARGV[7]), opt_num(ARGV[8])
local out = { -1 }
local found = 0
for b = first, stop do
  local kv = redis.call('HGETALL', base .. ':t:' .. b)
  local rows, args = {}, {}
  for i = 1, #kv, 2 do
    local f = tonumber(kv[i])
    if f >= TASK_BUCKET then
      args[f - TASK_BUCKET] = kv[i + 1]
    else
      local t = decode_task(kv[i + 1])
      if (not statuses or statuses[t.status]) and (not policies or policies[t.policy])
        and (not priorities or priorities[t.priority or 0])
        and (not before or t.next_run <= before) and (not after or t.next_run >= after) then
        rows[#rows + 1] = { f, kv[i + 1] }
      end
    end
  end
  table.sort(rows, function(x, y) return x[1] < y[1] end)
  for _, row in ipairs(rows) do
    out[#out + 1] = b * TASK_BUCKET + row[1]
    out[#out + 1] = row[2]
    out[#out + 1] = args[row[1]]
  end
  found = found + #rows
  if found >= limit and b < last_bucket then
    out[1] = b + 1
    return out
  end
end
if stop < last_bucket then out[1] = stop + 1 end
return out
