-- Records what visits of origins of one visit type found, as the original's
-- origin_visit_stats_upsert: a new origin takes every field; a known one keeps each of
-- last_eventful, last_uneventful, last_failed, last_notfound and last_snapshot that the call
-- leaves empty (coalesce), and never takes last_scheduled from the call. The caller refused
-- batches with a repeated url. Origins no lister listed are recorded too, as in the original.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- ARGV[1..] 7 values per origin: url, last_eventful, last_uneventful, last_failed,
--   last_notfound, last_scheduled (us or ''), last_snapshot (hex or '')
-- Returns the number of origins written.
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local n = 0
for i = 1, #ARGV, 7 do
  local url = ARGV[i]
  local id = tonumber(redis.call('HGET', base .. ':ids', url))
  local old, o
  if id then
    old = load_origin(base, id)
    o = load_origin(base, id)
  else
    id = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    redis.call('HSET', base .. ':ids', url, id)
  end
  if not o then o = {url = url, has_stats = false, listings = {}} end
  o.le = num(ARGV[i + 1]) or o.le
  o.lu = num(ARGV[i + 2]) or o.lu
  o.lf = num(ARGV[i + 3]) or o.lf
  o.lnf = num(ARGV[i + 4]) or o.lnf
  if ARGV[i + 6] ~= '' then o.snapshot = ARGV[i + 6] end
  if not o.has_stats then
    o.ls = num(ARGV[i + 5])
    o.has_stats = true
  end
  store_origin(base, id, old, o)
  n = n + 1
end
return n
