-- Marks lost the runs of one type still scheduled or started whose last change (scheduling or
-- start) is at least ARGV[2] old, and applies the failure rules to their tasks (retry after
-- retry_delay, or the next interval, or disable a oneshot task). Pub/sub drops Celery events
-- while no listener is connected, so without this such runs would stay open forever. Atomic,
-- so any number of sweepers can run.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock (the runs' end time)
-- ARGV[2] how old (in us) the last change must be
-- ARGV[3] most runs to examine in this call
-- ARGV[4] '1' to leave alone the runs still scheduled (their message may be waiting in a
--   queue that is not empty), '0' not to
-- ARGV[5] how many of the oldest candidates to pass over (those left alone by earlier calls)
-- ARGV[6] age (us) past which a scheduled run is lost even if its queue has messages (its
--   message cannot wait that long on a moving queue), or '' for no bound
-- Returns {runs marked lost, runs examined, runs left alone}.
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
local cutoff = int_str(now - tonumber(ARGV[2]))
local found = redis.call('ZRANGE', inflight, '-inf', cutoff, 'BYSCORE', 'LIMIT',
  tonumber(ARGV[5]), tonumber(ARGV[3]), 'WITHSCORES')
local keep_scheduled = ARGV[4] == '1'
local hard = opt_num(ARGV[6] or '')
local lost, kept = 0, 0
local seqs = {}
for i = 1, #found, 2 do
  local seq = tonumber(found[i])
  seqs[#seqs + 1] = seq
  local changed = tonumber(found[i + 1])
  local r = load_run(base, seq)
  if r and keep_scheduled and r.status == RUN_SCHEDULED
    and (hard == nil or changed > now - hard) then
    -- not lost while its queue has messages: look again later
    kept = kept + 1
  elseif r and not run_ended(r.status) then
    r.metadata = merge_metadata(r.metadata, '{"lost":true}')
    end_run(base, tt, seq, r, RUN_LOST, now)
    lost = lost + 1
  else
    redis.call('ZREM', inflight, seq)
  end
end
flush_counts(tk, RUN_COUNTS, now)
return { lost, #seqs, kept }
