-- Reads tasks of one type.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] task seqs
-- Returns seq, state record, arguments record for each task that exists.
--@include codes
--@include task
local base = type_base(KEYS[1])
local out = {}
for i = 1, #ARGV do
  local seq = tonumber(ARGV[i])
  local raw, args = load_records(base, seq)
  if raw then
    out[#out + 1] = seq
    out[#out + 1] = raw
    out[#out + 1] = args
  end
end
return out
