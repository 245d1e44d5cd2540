-- Task records. Task <seq> of a type lives in field (seq % BUCKET) of the hash
-- "<base>:t:<floor(seq / BUCKET)>", as consecutive cmsgpack values:
--   next_run (us), current_interval (us or nil), status, policy, retries_left,
--   priority (nil, or 1 high, 2 normal, 3 low), arguments ("<args json>,<kwargs json>"),
--   run seqs (array, oldest first).
-- Indexes, kept in step by reindex_task:
--   <base>:ready, <base>:ready:prio  zsets of the next_run_not_scheduled tasks without and with a
--                                    priority; score next_run, member the 5-byte big-endian seq
--                                    (so equal scores keep id order)
--   <base>:archivable                zset of finished tasks (see is_archivable), score = seq
--   <base>:dedup                     hash fingerprint -> "seq[ seq...]" (see create_tasks.lua)

local function task_loc(base, seq)
  return base .. ':t:' .. math.floor(seq / BUCKET), seq % BUCKET
end

local function decode_task(raw)
  local t = {}
  t.next_run, t.interval, t.status, t.policy, t.retries, t.priority, t.args, t.runs =
    cmsgpack.unpack(raw)
  return t
end

local function encode_task(t)
  return cmsgpack.pack(t.next_run, t.interval, t.status, t.policy, t.retries, t.priority,
    t.args, t.runs)
end

local function load_task(base, seq)
  local key, field = task_loc(base, seq)
  local raw = redis.call('HGET', key, field)
  if not raw then return nil end
  return decode_task(raw)
end

-- Saves the task and returns its record.
local function save_task(base, seq, t)
  local key, field = task_loc(base, seq)
  local raw = encode_task(t)
  redis.call('HSET', key, field, raw)
  return raw
end

local function ready_member(seq)
  return struct.pack('>I5', seq)
end

local function member_seq(member)
  return (struct.unpack('>I5', member))
end

local function ready_key(base, priority)
  if priority then return base .. ':ready:prio' end
  return base .. ':ready'
end

local function is_archivable(status, policy)
  return status == TASK_DISABLED or (status == TASK_COMPLETED and policy == ONESHOT)
end

-- Moves the task between indexes after a change; `was` is its {status, priority, next_run}
-- before the change, or nil for a new task.
local function reindex_task(base, seq, was, t)
  local ready_now = t.status == TASK_NOT_SCHEDULED
  if was and was.status == TASK_NOT_SCHEDULED then
    if not ready_now or (was.priority == nil) ~= (t.priority == nil) then
      redis.call('ZREM', ready_key(base, was.priority), ready_member(seq))
    elseif was.next_run == t.next_run then
      ready_now = false -- already indexed with the right score
    end
  end
  if ready_now then
    redis.call('ZADD', ready_key(base, t.priority), t.next_run, ready_member(seq))
  end
  local arch_was = was and is_archivable(was.status, t.policy)
  local arch_now = is_archivable(t.status, t.policy)
  if arch_now and not arch_was then
    redis.call('ZADD', base .. ':archivable', seq, seq)
  elseif arch_was and not arch_now then
    redis.call('ZREM', base .. ':archivable', seq)
  end
end

local function snapshot(t)
  return { status = t.status, priority = t.priority, next_run = t.next_run }
end
