-- Lists the runs of one type still scheduled or started, oldest last change first, for the
-- listener's reconciliation after it reconnects.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] offset, ARGV[2] count
-- Returns run seq, run record pairs.
--@include codes
--@include run
local base = type_base(KEYS[1])
local out = {}
local seqs = redis.call('ZRANGE', base .. ':inflight', ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
for _, s in ipairs(seqs) do
  local key, field = run_loc(base, tonumber(s))
  local raw = redis.call('HGET', key, field)
  if raw then
    out[#out + 1] = tonumber(s)
    out[#out + 1] = raw
  end
end
return out
