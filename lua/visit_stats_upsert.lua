-- Records what visits of origins of one visit type found, as the original's
-- origin_visit_stats_upsert: a new origin takes every field; a known one keeps each of
-- last_eventful, last_uneventful, last_failed, last_notfound and last_snapshot that the call
-- leaves empty (coalesce), and never takes last_scheduled from the call. The caller refused
-- batches with a repeated url. Origins no lister listed are recorded too, as in the original.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] 7 values per origin: url, last_eventful, last_uneventful, last_failed,
--   last_notfound, last_scheduled (us or ''), last_snapshot (bytes or '')
-- Returns the number of origins written.
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local urls = {}
for i = 1, #ARGV, 7 do urls[#urls + 1] = ARGV[i] end
local ids = origin_ids(base, KEYS[1], urls, true)
local list = {}
for _, url in ipairs(urls) do list[#list + 1] = ids[url] end
local stored = load_origins(base, list)
local b = new_batch()
for i = 1, #ARGV, 7 do
  local url = ARGV[i]
  local id = ids[url]
  local old = stored[id]
  local o = old and copy_origin(old) or {url = url, has_stats = false,
    unparked = false, listings = {}}
  o.le = num(ARGV[i + 1]) or o.le
  o.lu = num(ARGV[i + 2]) or o.lu
  o.lf = num(ARGV[i + 3]) or o.lf
  o.lnf = num(ARGV[i + 4]) or o.lnf
  if ARGV[i + 6] ~= '' then o.snapshot = ARGV[i + 6] end
  if not o.has_stats then
    o.ls = num(ARGV[i + 5])
    o.has_stats = true
  end
  put_origin(b, base, id, old, o)
end
flush(b, base)
return #urls
