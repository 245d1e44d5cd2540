-- Reads tasks of one type.
-- KEYS[1] <prefix>:{<type>}:type
-- ARGV[1..] task seqs
-- Returns seq, record pairs for the tasks that exist.
--@include codes
--@include task
local base = type_base(KEYS[1])
local out = {}
for i = 1, #ARGV do
  local seq = tonumber(ARGV[i])
  local key, field = task_loc(base, seq)
  local raw = redis.call('HGET', key, field)
  if raw then
    out[#out + 1] = seq
    out[#out + 1] = raw
  end
end
return out
