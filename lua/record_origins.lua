-- Records listings of one visit type, as the original's record_listed_origins: an upsert by
-- (lister, url, visit type) that sets enabled, extra_loader_arguments, last_update and
-- last_seen, and first_seen on insert only. The caller merged duplicates (last wins).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta (the other keys of the visit type share its base,
--         see includes/origin.lua)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us: one timestamp for the whole call (first_seen = last_seen on insert)
-- ARGV[2..] 5 values per listing: lister index, url, enabled ('1' or '0'), last_update (us or
--   ''), extra_loader_arguments (JSON object text)
-- Returns the first_seen (us, an integer) of each listing, in the order given (the caller has the rest:
-- what it sent, and last_seen = ARGV[1]).
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local now = tonumber(ARGV[1])

-- the listings of each url (an origin may be listed by several listers in one call)
local urls, by_url = {}, {}
for i = 2, #ARGV, 5 do
  local url = ARGV[i + 1]
  if not by_url[url] then
    by_url[url] = {}
    urls[#urls + 1] = url
  end
  local t = by_url[url]
  t[#t + 1] = i
end
local ids, fresh = origin_ids(base, KEYS[1], urls, true)
local is_fresh = {}
for _, url in ipairs(fresh) do is_fresh[url] = true end
local known = {}
for _, url in ipairs(urls) do
  if not is_fresh[url] then known[#known + 1] = ids[url] end
end
local stored = load_origins(base, known)

local b = new_batch()
local new_members = {}
local result = {}

-- The listing of `o` by lister `lidx`, if any.
local function listing_of(o, lidx)
  for _, x in ipairs(o.listings) do
    if x.lidx == lidx then return x end
  end
  return nil
end

-- Whether the listings given for a known origin change neither its indexes nor its counters:
-- each one exists already with the same enabled and last_update (what placement and
-- contribution read). Re-listing an unchanged forge is mostly this case; such an origin
-- only gets its record rewritten (last_seen, extra_loader_arguments), without the copy and
-- the index and counter work.
local function only_seen(o, given)
  for _, i in ipairs(given) do
    local l = listing_of(o, ARGV[i])
    if not l or l.enabled ~= (ARGV[i + 2] == '1') or l.last_update ~= num(ARGV[i + 3]) then
      return false
    end
  end
  return true
end

-- The general case: new listings, or changes that move the origin.
local function record_listings(id, url, old)
  local o = old and copy_origin(old) or {url = url, has_stats = false,
    unparked = false, listings = {}}
  for _, i in ipairs(by_url[url]) do
    local lidx = ARGV[i]
    local l = listing_of(o, lidx)
    if not l then
      l = {lidx = lidx, first_seen = now}
      o.listings[#o.listings + 1] = l
      local m = new_members[lidx]
      if not m then
        m = {}
        new_members[lidx] = m
      end
      m[#m + 1] = 0
      m[#m + 1] = url
    end
    l.enabled = ARGV[i + 2] == '1'
    l.last_update = num(ARGV[i + 3])
    l.last_seen = now
    l.extra = ARGV[i + 4]
    result[i] = l
  end
  put_origin(b, base, id, old, o)
end

for _, url in ipairs(urls) do
  local id = ids[url]
  local old = stored[id]
  if old and only_seen(old, by_url[url]) then
    for _, i in ipairs(by_url[url]) do
      local l = listing_of(old, ARGV[i])
      l.last_seen = now
      l.extra = ARGV[i + 4]
      result[i] = l
    end
    put_record(b, base, id, old)
  else
    record_listings(id, url, old)
  end
end
flush(b, base)
for lidx, members in pairs(new_members) do
  call_many('ZADD', base .. ':lister:' .. lidx, members)
end
local out = {}
for i = 2, #ARGV, 5 do out[#out + 1] = result[i].first_seen end
return out
