-- Tasks. Task <seq> of a type is two fields of the hash "<base>:t:<floor(seq / TASK_BUCKET)>":
-- its state in field f = seq % TASK_BUCKET and its arguments in field f + TASK_BUCKET. The part
-- every state change rewrites stays small; while both stay under Redis' default
-- hash-max-listpack-value (64 bytes: arguments of up to about 60 bytes, such as a short URL),
-- the hash stays listpack-encoded (some 80 bytes a task instead of 130; raising that setting
-- keeps longer ones compact too); and one HMGET reads a whole task.
--   field f: the state, as consecutive cmsgpack values:
--       next_run (us), current_interval (seconds, nil if none), flags, retries_left, runs,
--       created (us; listings are in creation order across types, as the original's ids are)
--     flags = status + 4 * policy + 8 * priority (0 none, 1 high, 2 normal, 3 low)
--       + 32 if its last ended run failed (or was lost): then it is in <base>:failed;
--     runs = the kept runs, oldest first, each as run_seq * 4 + 1 if the run has ended
--     + 2 if its backend id is foreign (see includes/run.lua), so trimming reads no run.
--   field f + TASK_BUCKET: the arguments, never changed: the canonical JSON texts of args and
--     kwargs joined by "\n" (canonical JSON has no raw newline).
-- Indexes, kept in step by reindex_task:
--   <base>:ready, <base>:ready:prio  zsets of the next_run_not_scheduled tasks without and with a
--                                    priority; score next_run, member the 5-byte big-endian seq
--                                    (so equal scores keep id order)
--   <base>:archivable                zset of finished tasks (see is_archivable), score = seq
--   <base>:dedup                     hash fingerprint -> "seq[ seq...]" (see create_tasks.lua)
--   <base>:failed                    zset of the tasks whose last ended run failed, was lost or
--                                    failed for good, score that run's end, member the seq
--                                    (includes/end_run.lua; the dashboard lists them)
--   <base>:rate:<hour>               hash "<minute of the hour>:<what>" -> how many of what
--                                    the scripts did in that minute (runs dispatched, ended
--                                    by status: see RATE_FIELDS), kept 25 hours, for the
--                                    dashboard's charts and last-hour counts

--@include writes

-- The task's hash, its state's field and its arguments' field (as text, see num_text).
local TASK_KEYS = {}
local function state_loc(base, seq)
  local b = math.floor(seq / TASK_BUCKET)
  local f = seq - b * TASK_BUCKET
  return bucket_key(TASK_KEYS, base, ':t:', b), num_text(f), num_text(f + TASK_BUCKET)
end

local function args_loc(base, seq)
  local key, _, args_field = state_loc(base, seq)
  return key, args_field
end

-- (built with a constructor, sized for all its fields at once: see decode_run in run.lua;
-- failed_at is set by the end-of-run rules)
local function decode_task(raw)
  local next_run, interval, flags, retries, runs, created = cmsgpack.unpack(raw)
  local priority = math.floor(flags / 8) % 4
  return { next_run = next_run, interval = interval, retries = retries, runs = runs,
    created = created, status = flags % 4, policy = math.floor(flags / 4) % 2,
    priority = priority > 0 and priority or nil, failed = flags >= 32, failed_at = nil }
end

local function encode_task(t)
  return cmsgpack.pack(t.next_run, t.interval,
    t.status + 4 * t.policy + 8 * (t.priority or 0) + (t.failed and 32 or 0),
    t.retries, t.runs, t.created)
end

-- The state record `raw` with its status set to `status`, and the status it had: the flags
-- are the record's third value, one byte (a msgpack positive fixint: flags stay under 64), so
-- they are replaced in place, without decoding the record (its runs list is a table) and
-- encoding it again.
local function with_status(raw, status)
  local off = cmsgpack.unpack_limit(raw, 2)
  local flags = string.byte(raw, off + 1)
  local was = flags % 4
  return string.sub(raw, 1, off) .. string.char(flags - was + status) .. string.sub(raw, off + 2),
    was
end

-- The task's state, or nil.
local function load_task(base, seq)
  local key, field = state_loc(base, seq)
  local raw = redis.call('HGET', key, field)
  if not raw then return nil end
  return decode_task(raw)
end

-- Saves the task's state and returns the record.
local function save_task(base, seq, t)
  local key, field = state_loc(base, seq)
  local raw = encode_task(t)
  redis.call('HSET', key, field, raw)
  return raw
end

-- The task's arguments record ("<args>\n<kwargs>"), or nil.
local function load_args(base, seq)
  local key, field = args_loc(base, seq)
  return redis.call('HGET', key, field)
end

-- Both records of a task: state, arguments (nil, nil if there is no such task).
local function load_records(base, seq)
  local key, field, args_field = state_loc(base, seq)
  local v = redis.call('HMGET', key, field, args_field)
  return v[1], v[2]
end

-- Deletes both records of a task.
local function delete_task_records(base, seq)
  local key, field, args_field = state_loc(base, seq)
  redis.call('HDEL', key, field, args_field)
end

-- Seconds (as stored) to microseconds.
local function secs_us(s)
  return math.floor(s * 1000000 + 0.5)
end

-- Microseconds to seconds as stored (cmsgpack writes whole seconds as a small integer).
local function us_secs(us)
  if us == nil then return nil end
  return us / 1000000
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

-- Per-type counts of tasks by status (fields tasks_<status> of the type hash, read by the RPC
-- server's /metrics): changes are summed here and written once by flush_counts at the end of
-- each script that changes statuses.
local STATUS_NAMES = { 'next_run_not_scheduled', 'next_run_scheduled', 'completed', 'disabled' }
local STATUS_DELTA = { 0, 0, 0, 0 }

-- Counts a task moving from status `from` to `to` (nil for a task created or deleted).
local function count_status(from, to, n)
  if from == to then return end
  n = n or 1
  if from and STATUS_DELTA[from + 1] then STATUS_DELTA[from + 1] = STATUS_DELTA[from + 1] - n end
  if to and STATUS_DELTA[to + 1] then STATUS_DELTA[to + 1] = STATUS_DELTA[to + 1] + n end
end

-- The counters of the type hash that are also counted by the minute, and their short names
-- in <base>:rate:<hour>.
local RATE_FIELDS = { runs_dispatched = 'd', runs_started = 's', runs_eventful = 'e',
  runs_uneventful = 'u', runs_failed = 'f', runs_permfailed = 'p', runs_lost = 'l' }

-- Adds n to what (a short name) in the minute of `now_us`, in <base>:rate:<hour>.
local function count_minute(base, now_us, what, n)
  local minute = math.floor(now_us / 60000000)
  local key = base .. ':rate:' .. math.floor(minute / 60)
  redis.call('HINCRBY', key, (minute % 60) .. ':' .. what, n)
  redis.call('EXPIRE', key, 90000)
end

-- Writes the counts of count_status and of `extra` ({field = increment}) to the type hash,
-- and, when `now_us` is given, those of RATE_FIELDS to the minute's counts too.
local function flush_counts(type_key, extra, now_us)
  for i = 1, 4 do
    if STATUS_DELTA[i] ~= 0 then
      redis.call('HINCRBY', type_key, 'tasks_' .. STATUS_NAMES[i], STATUS_DELTA[i])
      STATUS_DELTA[i] = 0
    end
  end
  for field, n in pairs(extra or {}) do
    if n ~= 0 then
      redis.call('HINCRBY', type_key, field, n)
      if now_us and RATE_FIELDS[field] then
        count_minute(type_base(type_key), now_us, RATE_FIELDS[field], n)
      end
    end
  end
end

-- Gathers into `w` (includes/writes.lua) the index changes of a task after a change; `was` is
-- its snapshot() before the change, or nil for a new task.
local function reindex_into(w, base, seq, was, t)
  count_status(was and was.status, t.status >= 0 and t.status or nil)
  local ready_now = t.status == TASK_NOT_SCHEDULED
  if was and was.status == TASK_NOT_SCHEDULED then
    if not ready_now or (was.priority == nil) ~= (t.priority == nil) then
      w_zrem(w, ready_key(base, was.priority), ready_member(seq))
    elseif was.next_run == t.next_run then
      ready_now = false -- already indexed with the right score
    end
  end
  if ready_now then
    w_zadd(w, ready_key(base, t.priority), int_str(t.next_run), ready_member(seq))
  end
  -- the failed tasks' index: in it while the last ended run failed (t.failed_at: it failed
  -- in this script, at that time)
  if t.failed_at then
    w_zadd(w, base .. ':failed', int_str(t.failed_at), int_str(seq))
  elseif was and was.failed and not t.failed then
    w_zrem(w, base .. ':failed', int_str(seq))
  end
  local arch_was = was and is_archivable(was.status, t.policy)
  local arch_now = is_archivable(t.status, t.policy)
  if arch_now and not arch_was then
    w_zadd(w, base .. ':archivable', int_str(seq), int_str(seq))
  elseif arch_was and not arch_now then
    w_zrem(w, base .. ':archivable', int_str(seq))
  end
end

-- Moves the task between indexes after a change, at once (see reindex_into).
local function reindex_task(base, seq, was, t)
  local w = writes_new()
  reindex_into(w, base, seq, was, t)
  w_flush(w)
end

local function snapshot(t)
  return { status = t.status, priority = t.priority, next_run = t.next_run, failed = t.failed }
end
