-- A page of the listings of one lister and one visit type, in url order (the original's
-- get_listed_origins, for one visit type; the caller merges visit types and listers).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] lister index
-- ARGV[2] the url to start after, or '' to start at the first
-- ARGV[3] most listings to return
-- ARGV[4] the only url wanted, or '' for all
-- Returns the listings, 7 values each (see record_origins.lua).
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local lidx = ARGV[1]
local urls
if ARGV[4] ~= '' then
  urls = {}
  if redis.call('ZSCORE', base .. ':lister:' .. lidx, ARGV[4])
    and (ARGV[2] == '' or ARGV[4] > ARGV[2]) then
    urls[1] = ARGV[4]
  end
else
  local from = ARGV[2] == '' and '-' or ('(' .. ARGV[2])
  urls = redis.call('ZRANGEBYLEX', base .. ':lister:' .. lidx, from, '+', 'LIMIT', 0,
    tonumber(ARGV[3]))
end
local out = {}
if #urls == 0 then return out end
local ids = origin_ids(base, KEYS[1], urls, false)
local list = {}
for _, url in ipairs(urls) do
  if ids[url] then list[#list + 1] = ids[url] end
end
local stored = load_origins(base, list)
for _, url in ipairs(urls) do
  local o = ids[url] and stored[ids[url]]
  if o then
    for _, l in ipairs(o.listings) do
      if l.lidx == lidx then listing_reply(out, o, l) end
    end
  end
end
return out
