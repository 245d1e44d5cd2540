-- Reads the kept runs of tasks of one type.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] task seqs
-- Returns seq, record pairs of their runs, task by task, oldest run first.
--@include codes
--@include task
--@include run
local base = type_base(KEYS[1])
local out = {}
for i = 1, #ARGV do
  local t = load_task(base, tonumber(ARGV[i]))
  for _, seq in ipairs(t and task_run_seqs(t) or {}) do
    local key, field = run_loc(base, seq)
    local raw = redis.call('HGET', key, field)
    if raw then
      out[#out + 1] = seq
      out[#out + 1] = raw
    end
  end
end
return out
