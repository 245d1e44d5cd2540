-- Creates tasks of one type, skipping those that duplicate an existing task, as the original's
-- create_tasks: a duplicate has the same arguments, policy, priority and status (and, for
-- oneshot tasks, next_run). current_interval is always the type's default_interval;
-- retries_left is the given value, else the type's num_retries, else 0.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2..] 8 values per task: fingerprint (8 bytes, computed by the caller from arguments,
--   policy and priority), next_run (us or ''), status, policy,
--   retries_left (or ''), priority (or ''), args JSON text, kwargs JSON text
-- Returns, per task, the seq, state record and arguments record of the task it resolves to: a
-- new one, or the existing one it duplicates (whatever its next_run, as the original's
-- swh_scheduler_create_tasks_from_temp, whose result joins on everything but next_run).
-- Raises SWH_UNKNOWN_TYPE, or SWH_NO_INTERVAL for recurring tasks of a type without
-- default_interval, before writing anything.
--@include codes
--@include time
--@include task
--@include type
local tk = KEYS[1]
local tt = load_type(tk)
local base = type_base(tk)
local now = time_or(ARGV[1], nil) or server_now_us()
local n = (#ARGV - 1) / 8

-- First pass, read-only: validate, and resolve duplicates of stored tasks or of earlier inputs.
-- The dedup entries of every input are read with one HMGET.
local dk = base .. ':dedup'
local fps = {}
for i = 1, n do fps[i] = ARGV[1 + (i - 1) * 8 + 1] end
local listed = {}
for i = 1, n, 1000 do
  local v = redis.call('HMGET', dk, unpack(fps, i, math.min(i + 999, n)))
  for j = 1, #v do listed[i + j - 1] = v[j] end
end
local dedup = {} -- fingerprint -> its entry as written at the end ("seq[ seq...]"), if changed
-- the new inputs of this call by fingerprint: the first one's position, and after each the
-- next one's (chain), so that no table is made per input
local inputs, batch, chain, fresh = {}, {}, {}, 0

-- Whether task u (arguments record u_args) is a duplicate of the input t (args).
local function same(u, u_args, t, args)
  return u_args == args and u.policy == t.policy and u.priority == t.priority
    and u.status == t.status and (t.policy ~= ONESHOT or u.next_run == t.next_run)
end
for i = 1, n do
  local o = 1 + (i - 1) * 8
  local t = {
    next_run = time_or(ARGV[o + 2], now),
    interval = us_secs(tt.default_interval),
    status = tonumber(ARGV[o + 3]),
    policy = tonumber(ARGV[o + 4]),
    retries = opt_num(ARGV[o + 5]) or tt.num_retries or 0,
    priority = opt_num(ARGV[o + 6]),
    runs = {},
    created = now,
  }
  local args = ARGV[o + 7] .. '\n' .. ARGV[o + 8]
  if t.policy == RECURRING and t.interval == nil then
    return redis.error_reply('SWH_NO_INTERVAL ' .. string.match(tk, '{(.-)}'))
  end
  local fp = ARGV[o + 1]
  -- a duplicate with the same next_run, if any, is the one returned
  local found, found_task
  local candidates = listed[i]
  if candidates then
    for s in string.gmatch(candidates, '%d+') do
      local u = load_task(base, tonumber(s))
      if u and same(u, load_args(base, tonumber(s)), t, args) then
        if not found or u.next_run == t.next_run then
          found, found_task = tonumber(s), u
        end
        if u.next_run == t.next_run then break end
      end
    end
  end
  if not found then
    local j, tail = batch[fp], nil
    while j do
      if same(inputs[j].task, inputs[j].args, t, args) then found = -j; break end
      j, tail = chain[j], j
    end
    if found == nil then
      if tail then chain[tail] = i else batch[fp] = i end
    end
  end
  if found == nil then fresh = fresh + 1 end
  inputs[i] = { fp = fp, task = t, args = args, found = found, found_task = found_task }
end

-- Second pass: write the new tasks, grouped (includes/writes.lua): one HSET per task hash, one
-- ZADD per index and one HSET of the dedup entries.
local w = writes_new()
local listed_by_fp = {}
for i = 1, n do listed_by_fp[fps[i]] = listed[i] or false end
local dedup_order = {}
local last = 0
if fresh > 0 then last = redis.call('HINCRBY', tk, 'task_seq', fresh) end
local seq = last - fresh
local out = {}
for i = 1, n do
  local inp = inputs[i]
  local t = inp.task
  local s, u
  if inp.found == nil then
    seq = seq + 1
    s, u = seq, t
    inp.seq = s
    inp.raw = encode_task(t)
    local key, field, args_field = state_loc(base, s)
    w_hset(w, key, field, inp.raw)
    w_hset(w, key, args_field, inp.args)
    reindex_into(w, base, s, nil, t)
    local prev = dedup[inp.fp]
    if prev == nil then
      prev = listed_by_fp[inp.fp]
      dedup_order[#dedup_order + 1] = inp.fp
    end
    dedup[inp.fp] = prev and (prev .. ' ' .. int_str(s)) or int_str(s)
  elseif inp.found < 0 then
    local first = inputs[-inp.found]
    s, u = first.seq, first.task
  else
    s, u = inp.found, inp.found_task
  end
  out[#out + 1] = s
  out[#out + 1] = (inp.found == nil and inp.raw) or (inp.found < 0 and inputs[-inp.found].raw)
    or encode_task(u)
  out[#out + 1] = inp.args
end
for _, fp in ipairs(dedup_order) do w_hset(w, dk, fp, dedup[fp]) end
w_flush(w)
flush_counts(tk)
return out
