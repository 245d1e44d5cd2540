-- Chooses up to `count` origins of one visit type to visit by a policy, and marks them
-- scheduled (last_scheduled = max(last_scheduled, timestamp)), atomically: concurrent callers
-- never get the same origin, and an origin listed by several listers is returned once. As
-- 0.16, an origin is eligible when it is enabled and either never scheduled or scheduled
-- before max(timestamp - scheduled cooldown, its latest visit result); the other cooldowns
-- and the lister filter are those of later versions, applied only when given.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
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
local base = string.sub(KEYS[1], 1, -6)
local ts = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local policy = ARGV[3]
local release = ts - tonumber(ARGV[4])
local absolute, failed, not_found = num(ARGV[5]), num(ARGV[6]), num(ARGV[7])
local allowed
if ARGV[8] ~= '' then
  allowed = {}
  for l in string.gmatch(ARGV[8], '%S+') do allowed[l] = true end
end
local dry = ARGV[9] == '1'
-- bounds on the work of one call: origins released from parking, candidates passed over
local RELEASE_MAX, SKIP_MAX = 10000, 10000
local PAGE = math.min(math.max(count, 16), 1000)

-- Origins parked (scheduled, no result since) before the scheduled cooldown are eligible
-- again: back to the policy indexes.
if not dry then
  local due = redis.call('ZRANGEBYSCORE', base .. ':parked', '-inf', '(' .. tstr(release),
    'LIMIT', 0, RELEASE_MAX)
  if #due > 0 then
    local list = {}
    for i, m in ipairs(due) do list[i] = tonumber(m) end
    local stored = load_origins(base, list)
    local b = new_batch()
    for _, id in ipairs(list) do
      local o = stored[id]
      if o then
        local c = copy_origin(o)
        c.unparked = true
        put_origin(b, base, id, o, c, true)
      else
        local z = b.zrem.parked
        z[#z + 1] = tostring(id)
      end
    end
    flush(b, base)
  end
end

-- The listing to return for an eligible origin, or nil.
local function choose(o)
  local r = last_result(o)
  if o.ls ~= nil then
    local bound = release
    if r ~= nil and r > bound then bound = r end
    if not (o.ls < bound) then return nil end
    if absolute and o.ls >= ts - absolute then return nil end
  end
  if r ~= nil and r ~= last_success(o) then
    if o.lf == r and failed and r >= ts - failed then return nil end
    if o.lf ~= r and o.lnf == r and not_found and r >= ts - not_found then return nil end
  end
  local _, lu = enabled_update(o)
  if policy == 'nv' and (o.snapshot ~= nil or lu == nil) then return nil end
  if policy == 'lag' then
    local s = last_success(o)
    if o.snapshot == nil or lu == nil or s == nil or not (lu > s) then return nil end
  end
  for _, l in ipairs(o.listings) do
    if l.enabled and (allowed == nil or allowed[l.lidx]) then return l end
  end
  return nil
end

local indexes = {osf = {'p:osf0', 'p:osf'}, nv = {'p:nv'}, lag = {'p:lag'}}
local chosen, skipped = {}, 0
for _, name in ipairs(indexes[policy]) do
  local offset = 0
  while #chosen < count and skipped < SKIP_MAX do
    local page = redis.call('ZRANGE', base .. ':' .. name, offset, offset + PAGE - 1)
    if #page == 0 then break end
    offset = offset + #page
    local list = {}
    for i, m in ipairs(page) do list[i] = tonumber(m) end
    local stored = load_origins(base, list)
    for _, id in ipairs(list) do
      if #chosen >= count or skipped >= SKIP_MAX then break end
      local o = stored[id]
      local l = o and choose(o)
      if l then
        chosen[#chosen + 1] = {id = id, o = o, l = l}
      else
        skipped = skipped + 1
      end
    end
  end
end

local out = {}
local b = new_batch()
for _, c in ipairs(chosen) do
  if not dry then
    local n = copy_origin(c.o)
    if n.ls == nil or ts > n.ls then n.ls = ts end
    n.has_stats = true
    n.unparked = false
    put_origin(b, base, c.id, c.o, n, true)
  end
  listing_reply(out, c.o, c.l)
end
if not dry then flush(b, base) end
return out
