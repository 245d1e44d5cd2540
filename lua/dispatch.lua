-- The runner's one step for one task type (see src/runner.rs): counts what waits in the
-- broker queue, takes up to that many free slots of due tasks, oldest first, creates their runs
-- (status scheduled, in flight as ranges: includes/run.lua), marks them next_run_scheduled and
-- LPUSHes one Celery protocol-v2 message each. All in one script, so any number of runners
-- can run at once without sending a task twice.
-- Slots, as the original: with no max_queue_length (nil or 0), 10000; otherwise
-- min(max_queue_length - waiting, 10000), and nothing unless more than
-- min(10000, max_queue_length) / 5 are free. A runner fills the slots in calls of at most
-- ARGV[6] tasks, so that no call holds Redis long; the calls after the first of a pass skip
-- the 1/5 threshold (ARGV[9]), as the original fills its slots in one go. The priority queue
-- gets no threshold (its tasks are urgent) but is not filled past max_queue_length either
-- (the original's priority runner did not look at the queue at all).
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[2] <prefix>:{<type>}:ready, or <prefix>:{<type>}:ready:prio
-- KEYS[3] the broker list to push to (the queue's priority-0 bucket), or the queue's outbox
-- KEYS[4..] the queue's other priority buckets (counted as waiting), or the outbox's batch
--   being forwarded (lua/includes/broker.lua)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2] '1' for the priority queue, '0' for the normal one
-- ARGV[3] runs to keep per task
-- ARGV[4] queue name (the messages' routing key)
-- ARGV[5] origin ("<name>@<host>" of the runner)
-- ARGV[6] most tasks in this call
-- ARGV[7] the broker's database number and ARGV[8] the store's, when they differ (the queue
--   keys are read and written in the broker's); '' when they are the same; 'outbox' and the
--   messages waiting in the broker when it is another server
-- ARGV[9] '1' to apply the 1/5 threshold (a pass's first call), '0' not to
-- Returns {tasks sent, messages waiting before}, then the foreign backend ids of runs deleted
-- to keep the run history short.
-- The envelope is the one src/celery/message.rs builds (tests check they agree): a plain-JSON
-- body (no body_encoding), delivery_tag = task id = the run's backend id.
--@include codes
--@include time
--@include task
--@include run
--@include type
--@include broker
local tk = KEYS[1]
local tt = load_type(tk)
local base = type_base(tk)
local now = time_or(ARGV[1], nil) or server_now_us()
local priority_queue = ARGV[2] == '1'
local keep = tonumber(ARGV[3])
local per_call = tonumber(ARGV[6])
local MAX_NUM_TASKS = 10000

local path = broker_path(ARGV[7], ARGV[8])
local waiting = queue_waiting(path, 3)
local mql = tt.max_queue_length
local slots = MAX_NUM_TASKS
if mql and mql > 0 then
  slots = math.min(mql - waiting, MAX_NUM_TASKS)
  if not priority_queue and ARGV[9] == '1'
    and slots <= math.floor(math.min(MAX_NUM_TASKS, mql) / 5) then
    slots = 0
  end
end
slots = math.min(slots, per_call)
if slots <= 0 then return { 0, waiting } end

local due = redis.call('ZRANGE', KEYS[2], '-inf', int_str(now), 'BYSCORE', 'LIMIT', 0, slots)
local n = #due
if n == 0 then return { 0, waiting } end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)
local first_run = redis.call('HINCRBY', tk, 'run_seq', n) - n

-- The envelope around the per-task parts. Canonical JSON (how args are stored) has no raw
-- control character, so escaping it as a JSON string only needs backslashes and quotes, and
-- escaping distributes over concatenation: the body string is "[" .. esc(args) .. ","
-- .. esc(kwargs) .. esc(embed) .. "]".
local p1 = '{"body":"['
local p2 = ',{\\"callbacks\\":null,\\"errbacks\\":null,\\"chain\\":null,\\"chord\\":null}]",'
  .. '"content-encoding":"utf-8","content-type":"application/json","headers":{"lang":"py",'
  .. '"task":' .. cjson.encode(tt.backend_name) .. ',"id":"'
local p3 = '","shadow":null,"eta":null,"expires":null,"group":null,"group_index":null,'
  .. '"retries":0,"timelimit":[null,null],"root_id":"'
local p4 = '","parent_id":null,"argsrepr":"'
local p5 = '","kwargsrepr":"'
local p6 = '","origin":' .. cjson.encode(ARGV[5]) .. ',"ignore_result":false,'
  .. '"replaced_task_nesting":0,"stamped_headers":null,"stamps":{}},'
  .. '"properties":{"correlation_id":"'
local p7 = '","reply_to":"","delivery_mode":2,"delivery_info":{"exchange":"","routing_key":'
  .. cjson.encode(ARGV[4]) .. '},"priority":0,"delivery_tag":"'
local p8 = '"}}'
-- Backend ids share their first 24 characters within a call (time, magic, high run-id bits).
local first_id = run_id(tt, first_run + 1)
local id_head = string.sub(backend_id(first_id, now), 1, 24)
local id_base = math.floor(first_id / 281474976710656) * 281474976710656

local out = { 0, waiting }
-- Tasks due together were mostly created together, so their records share hashes: they are
-- read with one HMGET and written with one HSET per task hash, and their new runs (consecutive)
-- with one HSET per run hash, instead of three commands a task.
local groups, group_keys, seqs = {}, {}, {}
for i = 1, n do
  local seq = member_seq(due[i])
  seqs[i] = seq
  local skey, f, af = state_loc(base, seq)
  local g = groups[skey]
  if not g then
    g = { fields = {}, at = {} }
    groups[skey] = g
    group_keys[#group_keys + 1] = skey
  end
  local fs = g.fields
  fs[#fs + 1] = f
  fs[#fs + 1] = af
  g.at[#g.at + 1] = i
end
local msgs = {} -- by position in `due`; a task deleted since it became due leaves a hole
local moved = 0 -- tasks next_run_not_scheduled -> next_run_scheduled, counted once at the end
local run_writes, run_bucket = nil, -1
local function flush_runs()
  if run_writes then redis.call('HSET', base .. ':r:' .. run_bucket, unpack(run_writes)) end
end
-- the run records, in run order (the run of due[i] is first_run + i)
local run_records = {}
for _, skey in ipairs(group_keys) do
  local g = groups[skey]
  local fs = g.fields
  local v
  if #g.at * 2 >= TASK_BUCKET then
    local got = hash_fields(skey)
    v = {}
    for x = 1, #fs do v[x] = got[fs[x]] or false end
  else
    v = redis.call('HMGET', skey, unpack(fs))
  end
  local writes = {}
  for j, i in ipairs(g.at) do
    local raw = v[2 * j - 1]
    if raw then
      local seq = seqs[i]
      local rseq = first_run + i
      local t = decode_task(raw)
      if t.status == TASK_NOT_SCHEDULED then moved = moved + 1 else count_status(t.status, TASK_SCHEDULED) end
      t.status = TASK_SCHEDULED
      for _, d in ipairs(attach_run(base, t, rseq, false, keep) or {}) do out[#out + 1] = d end
      writes[#writes + 1] = fs[2 * j - 1]
      writes[#writes + 1] = encode_task(t)
      -- a new run's record (layout of includes/run.lua): task, status, scheduled, started,
      -- ended, metadata, backend id (nil: derived)
      run_records[i] = cmsgpack.pack(seq, RUN_SCHEDULED, now, nil, nil, '{}', nil)
      local rid = run_id(tt, rseq)
      local bid = string.format('%s%012x', id_head, rid - id_base)
      if rid - id_base >= 281474976710656 then bid = backend_id(rid, now) end
      local esc = json_escaped(v[2 * j])
      local nl = string.find(esc, '\n', 1, true)
      local ea, ek = string.sub(esc, 1, nl - 1), string.sub(esc, nl + 1)
      msgs[i] = p1 .. ea .. ',' .. ek .. p2 .. bid .. p3 .. bid .. p4 .. ea .. p5 .. ek
        .. p6 .. bid .. p7 .. bid .. p8
    end
  end
  if #writes > 0 then redis.call('HSET', skey, unpack(writes)) end
end
local sent = {}
for i = 1, n do
  local rec = run_records[i]
  if rec then
    local rseq = first_run + i
    local b = math.floor(rseq / RUN_BUCKET)
    if b ~= run_bucket then
      flush_runs()
      run_writes, run_bucket = {}, b
    end
    run_writes[#run_writes + 1] = num_text(rseq - b * RUN_BUCKET)
    run_writes[#run_writes + 1] = rec
    sent[#sent + 1] = msgs[i]
  end
end
flush_runs()
out[1] = #sent
count_status(TASK_NOT_SCHEDULED, TASK_SCHEDULED, moved)
push_messages(path, KEYS[3], sent)
-- the runs in flight as ranges (includes/run.lua), the holes in them with no record
if #sent > 0 then
  count_open(tk, base, #sent)
  local za = {}
  inflight_entries(za, int_str(now), first_run + 1, n)
  redis.call('ZADD', base .. ':inflight', unpack(za))
end
flush_counts(tk, { runs_dispatched = out[1] }, now)
return out
