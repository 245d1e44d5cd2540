-- Choosing origins to visit, shared by grab_next_visits.lua (the API) and send_visits.lua (the
-- recurrent visit runner). `g` holds: ts (us), release (ts - scheduled cooldown), absolute,
-- failed, not_found (cooldowns in us, or nil), allowed (lister index -> true, or nil for any),
-- dry (choose without marking).
-- bounds on the work of one call: origins released from parking, candidates passed over
local RELEASE_MAX, SKIP_MAX = 10000, 10000

-- Origins parked (scheduled, no result since) before the scheduled cooldown are eligible
-- again: back to the policy indexes.
local function release_parked(base, release)
  local due = redis.call('ZRANGEBYSCORE', base .. ':parked', '-inf', '(' .. tstr(release),
    'LIMIT', 0, RELEASE_MAX)
  if #due == 0 then return end
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

-- The listing to send for an origin eligible under `g` and `policy`, or nil.
local function eligible_listing(g, policy, o)
  local r = last_result(o)
  if o.ls ~= nil then
    local bound = g.release
    if r ~= nil and r > bound then bound = r end
    if not (o.ls < bound) then return nil end
    if g.absolute and o.ls >= g.ts - g.absolute then return nil end
  end
  if r ~= nil and r ~= last_success(o) then
    if o.lf == r and g.failed and r >= g.ts - g.failed then return nil end
    if o.lf ~= r and o.lnf == r and g.not_found and r >= g.ts - g.not_found then
      return nil
    end
  end
  local _, lu = enabled_update(o)
  if policy == 'nv' and (o.snapshot ~= nil or lu == nil) then return nil end
  if policy == 'lag' then
    local s = last_success(o)
    if o.snapshot == nil or lu == nil or s == nil or not (lu > s) then return nil end
  end
  for _, l in ipairs(o.listings) do
    if l.enabled and (g.allowed == nil or g.allowed[l.lidx]) then return l end
  end
  return nil
end

local POLICY_INDEXES = {osf = {'p:osf0', 'p:osf'}, nv = {'p:nv'}, lag = {'p:lag'}}

-- Up to `count` eligible origins in `policy`'s order ('osf', 'nv' or 'lag'), as
-- {id, o (the record before), l (the listing)}, marked scheduled at g.ts unless g.dry.
local function grab(base, g, policy, count)
  local chosen, skipped = {}, 0
  local page_size = math.min(math.max(count, 16), 1000)
  for _, name in ipairs(POLICY_INDEXES[policy]) do
    local offset = 0
    while #chosen < count and skipped < SKIP_MAX do
      local page = redis.call('ZRANGE', base .. ':' .. name, offset, offset + page_size - 1)
      if #page == 0 then break end
      offset = offset + #page
      local list = {}
      for i, m in ipairs(page) do list[i] = tonumber(m) end
      local stored = load_origins(base, list)
      for _, id in ipairs(list) do
        if #chosen >= count or skipped >= SKIP_MAX then break end
        local o = stored[id]
        local l = o and eligible_listing(g, policy, o)
        if l then
          chosen[#chosen + 1] = {id = id, o = o, l = l}
        else
          skipped = skipped + 1
        end
      end
    end
  end
  if not g.dry and #chosen > 0 then
    local b = new_batch()
    for _, c in ipairs(chosen) do
      local n = copy_origin(c.o)
      if n.ls == nil or g.ts > n.ls then n.ls = g.ts end
      n.has_stats = true
      n.unparked = false
      put_origin(b, base, c.id, c.o, n, true)
    end
    flush(b, base)
  end
  return chosen
end
