-- Lists the runs of one type still scheduled or started, oldest last change first, for the
-- listener's reconciliation after it reconnects.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] offset, ARGV[2] count
-- Returns the number of entries read (fewer than ARGV[2]: the last page), then run seq, run
-- record pairs: an entry whose run is gone (deleted with its task) gives none, so the caller
-- pages by entries read, not by runs returned.
--@include codes
--@include run
local base = type_base(KEYS[1])
local out = { 0 }
local seqs = redis.call('ZRANGE', base .. ':inflight', ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
for _, s in ipairs(seqs) do
  local key, field = run_loc(base, tonumber(s))
  local raw = redis.call('HGET', key, field)
  if raw then
    out[#out + 1] = tonumber(s)
    out[#out + 1] = raw
  end
end
out[1] = #seqs
return out
