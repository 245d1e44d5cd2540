-- Reads the visit stats of origins of one visit type (the original's origin_visit_stats_get).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] 2 values per origin: url, the url's 8-byte hash
-- Returns, for each url that has stats (results, or a sending), 3 values: url, its results as
-- stored (includes/origin.lua) or '', its last_scheduled (us) or ''; src/store/origins.rs
-- decodes them.
--@include origin
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
local urls, hs = {}, {}
for i = 1, #ARGV, 2 do
  urls[#urls + 1] = ARGV[i]
  hs[#hs + 1] = ARGV[i + 1]
end
local ids, _, _, R = find_origins(base, url_index(meta), urls, hs)
local list = {}
for _, url in ipairs(urls) do
  if ids[url] then list[#list + 1] = ids[url] end
end
local K = sendings_of(base, list)
local T = sending_times(base, K)
local out = {}
for _, url in ipairs(urls) do
  local id = ids[url]
  local k = id and K[id] or 0
  if id and (R[id] or k ~= 0) then
    out[#out + 1] = url
    out[#out + 1] = R[id] or ''
    out[#out + 1] = k ~= 0 and fmt_int(T[k]) or ''
  end
end
return out
