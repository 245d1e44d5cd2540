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
-- Returns 2 values per chosen origin: its id, and the lister index of the listing to return
-- (0: the first enabled one); src/store/origins.rs reads their records.
--@include origin
--@include grab
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
local g = {
  ts = tonumber(ARGV[1]),
  absolute = num(ARGV[5]), failed = num(ARGV[6]), not_found = num(ARGV[7]),
  dry = ARGV[9] == '1',
}
g.release = g.ts - tonumber(ARGV[4])
if ARGV[8] ~= '' then
  g.allowed = {}
  for l in string.gmatch(ARGV[8], '%S+') do g.allowed[tonumber(l)] = true end
end
if not g.dry then release_parked(base, meta, g.release) end
local ids, picks = grab(base, meta, g, ARGV[3], tonumber(ARGV[2]))
local out = {}
for i, id in ipairs(ids) do
  out[2 * i - 1] = id
  out[2 * i] = picks[i] == true and 0 or picks[i].lidx
end
return out
