-- Chooses up to `count` origins of one visit type to visit by a policy, and marks them
-- scheduled (last_scheduled = max(last_scheduled, timestamp)), atomically: concurrent callers
-- never get the same origin, and an origin listed by several listers is returned once. As
-- 0.16, an origin is eligible when it is enabled and either never scheduled or scheduled
-- before max(timestamp - scheduled cooldown, its latest visit result); the other cooldowns
-- and the lister filter are those of later versions, applied only when given.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] timestamp in us
-- ARGV[2] count
-- ARGV[3] policy: 'osf' (oldest_scheduled_first), 'nv' (never_visited_oldest_update_first)
--         or 'lag' (already_visited_order_by_lag)
-- ARGV[4] scheduled cooldown in us (0.16: 7 days)
-- ARGV[5] absolute cooldown in us, or ''
-- ARGV[6] failed cooldown in us, or ''
-- ARGV[7] not-found cooldown in us, or ''
-- ARGV[8] the lister indexes allowed, space-separated, or '' for any lister
-- ARGV[9] '1' to choose without marking anything (dry run)
-- Returns the chosen listings, 7 values each (see record_origins.lua).
--@include origin
--@include grab
local base = string.sub(KEYS[1], 1, -6)
local g = {
  ts = tonumber(ARGV[1]),
  absolute = num(ARGV[5]), failed = num(ARGV[6]), not_found = num(ARGV[7]),
  dry = ARGV[9] == '1',
}
g.release = g.ts - tonumber(ARGV[4])
if ARGV[8] ~= '' then
  g.allowed = {}
  for l in string.gmatch(ARGV[8], '%S+') do g.allowed[l] = true end
end
if not g.dry then release_parked(base, g.release) end
local out = {}
for _, c in ipairs(grab(base, g, ARGV[3], tonumber(ARGV[2]))) do
  listing_reply(out, c.o, c.l)
end
return out
