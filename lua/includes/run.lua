-- Run records. Run <seq> of a type lives in field (seq % BUCKET) of the hash
-- "<base>:r:<floor(seq / BUCKET)>", as consecutive cmsgpack values:
--   task seq, status, scheduled (us or nil), started (us or nil), ended (us or nil),
--   metadata, backend_id (nil when derived from the run id, see backend_id below).
-- metadata is one or more JSON objects separated by "\n"; readers merge them, later keys
-- winning. Appending instead of merging keeps the values' text exact without a JSON parser.
-- <base>:inflight is a zset of the runs still scheduled or started, scored by the time of
-- their last change: the lost-run sweep reads it.

local function run_loc(base, seq)
  return base .. ':r:' .. math.floor(seq / BUCKET), seq % BUCKET
end

local function load_run(base, seq)
  local key, field = run_loc(base, seq)
  local raw = redis.call('HGET', key, field)
  if not raw then return nil end
  local r = {}
  r.task, r.status, r.scheduled, r.started, r.ended, r.metadata, r.backend_id =
    cmsgpack.unpack(raw)
  return r
end

local function save_run(base, seq, r)
  local key, field = run_loc(base, seq)
  local raw = cmsgpack.pack(r.task, r.status, r.scheduled, r.started, r.ended, r.metadata,
    r.backend_id)
  redis.call('HSET', key, field, raw)
  return raw
end

local function delete_run(base, seq)
  local key, field = run_loc(base, seq)
  redis.call('HDEL', key, field)
  redis.call('ZREM', base .. ':inflight', seq)
end

local function merge_metadata(old, new)
  if new == '' or new == '{}' then return old end
  if old == '{}' then return new end
  return old .. '\n' .. new
end

local function run_ended(status)
  return status ~= RUN_SCHEDULED and status ~= RUN_STARTED
end

-- The Celery task id of a run the runner created: a version-8 UUID carrying the scheduling time
-- in ms and the run id (see src/model/ids.rs, which parses it).
local function backend_id(run_id, scheduled_us)
  local ms = math.floor(scheduled_us / 1000)
  local hi = math.floor(run_id / 281474976710656) -- 2^48
  return string.format('%08x-%04x-85c8-8%03x-%012x', math.floor(ms / 65536), ms % 65536,
    hi, run_id - hi * 281474976710656)
end

-- Appends a run to the task's history and drops the oldest ended runs beyond `keep`; returns
-- the foreign backend ids of the dropped runs (their global index entries are the caller's).
local function attach_run(base, task_seq, run_seq, keep)
  local runs = load_task_runs(base, task_seq)
  runs[#runs + 1] = run_seq
  local excess = #runs - keep
  local dropped = {}
  if excess > 0 then
    local kept = {}
    for i = 1, #runs do
      local r = runs[i]
      local drop = false
      if excess > 0 and i < #runs then
        local run = load_run(base, r)
        if run == nil or run_ended(run.status) then
          drop = true
          if run then
            delete_run(base, r)
            if run.backend_id then dropped[#dropped + 1] = run.backend_id end
          end
        end
      end
      if drop then excess = excess - 1 else kept[#kept + 1] = r end
    end
    runs = kept
  end
  save_task_runs(base, task_seq, runs)
  return dropped
end
