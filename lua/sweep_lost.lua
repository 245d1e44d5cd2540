-- Marks lost the runs of one type still scheduled or started whose last change (scheduling or
-- start) is at least ARGV[2] old, and applies the failure rules to their tasks (retry after
-- retry_delay, or the next interval, or disable a oneshot task). Pub/sub drops Celery events
-- while no listener is connected, so without this such runs would stay open forever. Atomic,
-- so any number of sweepers can run.
-- It reads the in-flight entries scored at or before the cutoff (includes/run.lua) and the
-- records of their runs: an entry whose runs all ended goes; a run still open and changed
-- since the cutoff is added again alone, scored by its last change; a run left alone (below)
-- is added again scored just past the cutoff, so that the next sweep looks at it again and
-- this one goes on past it.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock (the runs' end time)
-- ARGV[2] how old (in us) the last change must be
-- ARGV[3] most runs to examine in this call (entries are examined whole)
-- ARGV[4] '1' to leave alone the runs still scheduled (their message may be waiting in a
--   queue that is not empty), '0' not to
-- ARGV[5] age (us) past which a scheduled run is lost even if its queue has messages (its
--   message cannot wait that long on a moving queue), or '' for no bound
-- Returns {runs marked lost, runs examined, runs left alone, 1 if entries may be left to
-- examine (call again) else 0}.
--@include codes
--@include time
--@include task
--@include run
--@include type
--@include end_rules
--@include end_run
local tk = KEYS[1]
local tt = load_type(tk)
local base = type_base(tk)
local now = time_or(ARGV[1], nil) or server_now_us()
local inflight = base .. ':inflight'
local cutoff = now - tonumber(ARGV[2])
local cutoff_text = int_str(cutoff)
local most = tonumber(ARGV[3])
local keep_scheduled = ARGV[4] == '1'
local hard = opt_num(ARGV[5] or '')
local lost, kept, examined = 0, 0, 0
local more = 0
while more == 0 do
  -- entries examined leave the range read (gone, or scored past the cutoff)
  local page = redis.call('ZRANGE', inflight, '-inf', cutoff_text, 'BYSCORE', 'LIMIT', 0, 16)
  if #page == 0 then break end
  local taken, order, groups, keys, full = take_entries(base, page, examined, most)
  if full then more = 1 end
  local runs = {}
  read_groups(groups, keys, function(seq, raw) runs[seq] = decode_run(raw) end, RUN_BUCKET / 2)
  if #taken > 0 then redis.call('ZREM', inflight, unpack(taken)) end
  examined = examined + #order
  local again = {}
  for _, seq in ipairs(order) do
    local r = runs[seq]
    if r and not run_ended(r.status) then
      local changed = r.started or r.scheduled or cutoff
      if changed > cutoff then
        again[#again + 1] = int_str(changed)
        again[#again + 1] = int_str(seq)
      elseif keep_scheduled and r.status == RUN_SCHEDULED
        and (hard == nil or changed > now - hard) then
        -- not lost while its queue has messages: look again at the next sweep
        kept = kept + 1
        again[#again + 1] = int_str(cutoff + 1)
        again[#again + 1] = int_str(seq)
      else
        r.metadata = merge_metadata(r.metadata, '{"lost":true}')
        end_run(base, tt, seq, r, RUN_LOST, now)
        lost = lost + 1
      end
    end
  end
  for i = 1, #again, 2000 do
    redis.call('ZADD', inflight, unpack(again, i, math.min(i + 1999, #again)))
  end
end
flush_counts(tk, RUN_COUNTS, now)
count_open(tk, base, OPEN_DELTA)
return { lost, examined, kept, more }
