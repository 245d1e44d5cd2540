-- Reads the visit stats of origins of one visit type (the original's origin_visit_stats_get).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] urls
-- Returns, for each url that has stats, 7 values: url, last_eventful, last_uneventful,
-- last_failed, last_notfound, last_scheduled (us, integers or nil), last_snapshot (bytes or
-- '').
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local ids = origin_ids(base, KEYS[1], ARGV, false)
local list = {}
for _, url in ipairs(ARGV) do
  if ids[url] then list[#list + 1] = ids[url] end
end
local stored = load_origins(base, list)
local out = {}
for _, url in ipairs(ARGV) do
  local o = ids[url] and stored[ids[url]]
  if o and o.has_stats then
    local n = #out
    out[n + 1] = o.url
    out[n + 2] = f(o.le)
    out[n + 3] = f(o.lu)
    out[n + 4] = f(o.lf)
    out[n + 5] = f(o.lnf)
    out[n + 6] = f(o.ls)
    out[n + 7] = o.snapshot or ''
  end
end
return out
