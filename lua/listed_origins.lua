-- A page of the listings of one lister and one visit type, in url order (the original's
-- get_listed_origins, for one visit type; the caller merges visit types and listers).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] lister index
-- ARGV[2] the url to start after, or '' to start at the first
-- ARGV[3] most listings to return
-- ARGV[4] the only url wanted, or '' for all
-- Returns 2 values per listing: url, the origin's listings as stored (includes/origin.lua;
-- the caller takes the lister's).
--@include origin
--@include leaves
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
local root = base .. ':lx:' .. ARGV[1]
local members
if ARGV[4] ~= '' then
  members = {}
  -- (the caller checks that it comes after the page token: Lua's string order follows the
  -- server's locale)
  members[1] = leaves_find(root, ARGV[4])
else
  members = leaves_range(root, ARGV[2], tonumber(ARGV[3]))
end
local list, urls = {}, {}
for i, m in ipairs(members) do
  local z = string.find(m, '\0', 1, true)
  urls[i] = string.sub(m, 1, z - 1)
  list[i] = tonumber(string.sub(m, z + 1))
end
local out = {}
if #list == 0 then return out end
local _, L = read_records(base, list)
for i, id in ipairs(list) do
  if L[id] then
    out[#out + 1] = urls[i]
    out[#out + 1] = L[id]
  end
end
return out
