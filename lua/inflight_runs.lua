-- Lists the runs of one type still scheduled or started, for the listener's reconciliation
-- after it reconnects: those of the in-flight entries (includes/run.lua), in their order.
-- KEYS[1] <prefix>:{<type>}:type
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] offset (in entries), ARGV[2] most runs to read (entries are read whole)
-- Returns the number of entries read, 1 if they were the last ones else 0, then run seq, run
-- record pairs of the open runs: an entry whose runs ended or are gone (deleted with their
-- task) gives none, so the caller pages by entries read, not by runs returned.
--@include codes
--@include run
local base = type_base(KEYS[1])
local inflight = base .. ':inflight'
local offset, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = { 0, 1 }
local read, runs, full = 0, 0, false
while not full do
  local page = redis.call('ZRANGE', inflight, offset + read, offset + read + 15)
  if #page == 0 then
    return out
  end
  local taken, order, groups, keys
  taken, order, groups, keys, full = take_entries(base, page, runs, most)
  read = read + #taken
  local records = {}
  read_groups(groups, keys, function(seq, raw) records[seq] = raw end, RUN_BUCKET / 2)
  out[1] = read
  runs = runs + #order
  for _, seq in ipairs(order) do
    local raw = records[seq]
    -- (the status is the record's second value)
    if raw and not run_ended(select(2, cmsgpack.unpack(raw))) then
      out[#out + 1] = seq
      out[#out + 1] = raw
    end
  end
end
out[2] = 0
return out
