-- Lists runs of finished tasks of one type for filter_task_to_archive: tasks that are oneshot
-- and completed or disabled, or recurring and disabled, from seq ARGV[1] on, and of their kept
-- runs those started (or, if never started, scheduled) in [ARGV[2], ARGV[3]). Reads at most
-- ARGV[5] tasks per call, so that no call holds Redis long whatever the window matches.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] first task seq
-- ARGV[2] after (us, inclusive)
-- ARGV[3] before (us, exclusive)
-- ARGV[4] stop after the task that brings the number of runs to at least this
-- ARGV[5] most tasks to read
-- Returns the seq to go on from (-1 when no task remains), then for each task with matching
-- runs: task seq, state record, arguments record, number of runs k, then k run seq, run record
-- pairs.
--@include codes
--@include task
--@include run
local base = type_base(KEYS[1])
local after, before, want = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seqs = redis.call('ZRANGE', base .. ':archivable', ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0,
  tonumber(ARGV[5]))
local out = { -1 }
local got = 0
for i, s in ipairs(seqs) do
  if got >= want then
    out[1] = tonumber(s)
    return out
  end
  local seq = tonumber(s)
  local raw, args = load_records(base, seq)
  if raw then
    local rows = {}
    for _, rs in ipairs(task_run_seqs(decode_task(raw))) do
      local r = load_run(base, rs)
      if r then
        local when = r.started or r.scheduled
        if when and when >= after and when < before then
          local rk, rf = run_loc(base, rs)
          rows[#rows + 1] = rs
          rows[#rows + 1] = redis.call('HGET', rk, rf)
        end
      end
    end
    if #rows > 0 then
      out[#out + 1] = seq
      out[#out + 1] = raw
      out[#out + 1] = args
      out[#out + 1] = #rows / 2
      for _, v in ipairs(rows) do out[#out + 1] = v end
      got = got + #rows / 2
    end
  end
  if i == #seqs and #seqs == tonumber(ARGV[5]) then
    out[1] = seq + 1
  end
end
return out
