-- Records listings of one visit type, as the original's record_listed_origins: an upsert by
-- (lister, url, visit type) that sets enabled, extra_loader_arguments, last_update and
-- last_seen, and first_seen on insert only. The caller merged duplicates (last wins).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta (the other keys of the visit type share its base,
--         see includes/origin.lua)
-- ARGV[1] now in us: one timestamp for the whole call (first_seen = last_seen on insert)
-- ARGV[2..] 5 values per listing: lister index, url, enabled ('1' or '0'), last_update (us or
--   ''), extra_loader_arguments (JSON object text)
-- Returns the stored listings, 7 values each: lister index, url, enabled, last_update,
-- first_seen, last_seen, extra_loader_arguments.
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 5 do
  local lidx, url = ARGV[i], ARGV[i + 1]
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
  local l
  for _, x in ipairs(o.listings) do
    if x.lidx == lidx then l = x end
  end
  if not l then
    l = {lidx = lidx, first_seen = now}
    o.listings[#o.listings + 1] = l
    redis.call('ZADD', base .. ':lister:' .. lidx, 0, url)
  end
  l.enabled = ARGV[i + 2] == '1'
  l.last_update = num(ARGV[i + 3])
  l.last_seen = now
  l.extra = ARGV[i + 4]
  store_origin(base, id, old, o)
  listing_reply(out, o, l)
end
return out
