-- Choosing origins to visit, shared by grab_next_visits.lua (the API) and send_visits.lua (the
-- recurrent visit runner). `g` holds: ts (us), release (ts - scheduled cooldown), absolute,
-- failed, not_found (cooldowns in us, or nil), allowed (lister index -> true, or nil for any),
-- dry (choose without marking).
-- The policy indexes hold the origins each policy may choose (enabled, not parked, and what
-- the policy needs: see placement in origin.lua) at any time from the latest grab's on (meta
-- max_ts), once no result is dated later (max_result) and no sending was released by a
-- later bound (max_release). Such a grab, the visit runner's and any grab at the present
-- time, takes the head of its index and reads no record: it gives the origins a new sending
-- in one BITFIELD and moves them with a few commands for all. Any other (an earlier
-- timestamp, later versions' cooldowns, a lister filter) checks each candidate's results.
-- bounds on the work of one call: origins released from parking, candidates passed over
local RELEASE_MAX, SKIP_MAX = 10000, 10000

-- Sendings parked before the scheduled cooldown are released: their origins are eligible
-- again, in the osf set of the same sending and back into nv or lag.
local function release_parked(base, meta, release)
  local ks = redis.call('ZRANGE', base .. ':pk', '-inf', '(' .. fmt_int(release), 'BYSCORE',
    'LIMIT', 0, 100)
  if #ks == 0 then return end
  local b, n = new_batch(), 0
  local sd = base .. ':sd'
  for _, name in ipairs(ks) do
    local k = tonumber(name)
    local list = redis.call('SMEMBERS', base .. ':pk:' .. name)
    for i, m in ipairs(list) do list[i] = tonumber(m) end
    local O = load_origins(base, list)
    for _, id in ipairs(list) do
      local o = O[id]
      if o and placement(o).pk == k then
        local c = copy_origin(o)
        c.released = true
        put_origin(b, base, o, c, false, false)
      else
        -- not where its record says it is: only the set forgets it
        chunk_op(b.crem.pk, k, 0, id)
      end
    end
    local t = redis.call('HGET', sd, name)
    if t then redis.call('HSET', sd, name, string.match(t, '^%S+') .. ' r') end
    n = n + #list
    if n >= RELEASE_MAX then break end
  end
  flush(b, base, meta)
  local m = tonumber(redis.call('HGET', meta, 'max_release') or '-inf')
  if release > m then redis.call('HSET', meta, 'max_release', fmt_int(release)) end
end

-- Whether the head of the indexes can be taken as it is (see the top).
local function fast_path(meta, g)
  if g.allowed or g.absolute or g.failed or g.not_found then return false end
  local v = redis.call('HMGET', meta, 'max_ts', 'max_result', 'max_release')
  return g.ts >= (tonumber(v[1]) or -math.huge) and g.ts >= (tonumber(v[2]) or -math.huge)
    and g.release >= (tonumber(v[3]) or -math.huge)
end

-- Whether origin `o` (load_origins) may be chosen under `g`: false, true (any enabled
-- listing), or the listing to send (with a lister filter).
local function eligible(g, o)
  local s = o.st
  local r = s and last_result(s)
  if o.k ~= 0 then
    local bound = g.release
    if r ~= nil and r > bound then bound = r end
    if not (o.sc < bound) then return false end
    if g.absolute and o.sc >= g.ts - g.absolute then return false end
  end
  if r ~= nil and r ~= last_success(s) then
    if s.fa == r and g.failed and r >= g.ts - g.failed then return false end
    if s.fa ~= r and s.nf == r and g.not_found and r >= g.ts - g.not_found then return false end
  end
  if g.allowed == nil then return true end
  for _, l in ipairs(o.listings) do
    if l.enabled and g.allowed[l.lidx] then return l end
  end
  return false
end

-- Marks the chosen origins (ids) scheduled at g.ts the fast way: new sendings of CHUNK, set
-- for all in one BITFIELD whose reply tells where each was. Taken from the head of nv or lag
-- (`policy`), they leave it by rank, and are in no other of the two (one needs a snapshot,
-- the other none).
local function mark_fast(base, meta, g, policy, ids)
  local b = new_batch()
  local ks, k = {}, nil
  for i = 1, #ids do
    if (i - 1) % CHUNK == 0 then k = new_sending(base, meta, g.ts) end
    ks[i] = k
  end
  local olds = bitfield_set(base .. ':sc', 32, ids, ks)
  local zn, zl = b.zrem.nv, b.zrem.lag
  if policy ~= 'osf' then
    redis.call('ZREMRANGEBYRANK', base .. ':' .. policy, 0, #ids - 1)
    zn, zl = {}, {}
  end
  for i, id in ipairs(ids) do
    local was = olds[i]
    -- the commands get the id as text: a Lua number would be formatted with "%.17g"
    local t = fmt_int(id)
    if was == 0 then
      set_bit(b, id, 0)
    else
      chunk_op(b.crem.osf, was, 0, t)
      b.refs[was] = (b.refs[was] or 0) - 1
    end
    zn[i], zl[i] = t, t
    chunk_op(b.cadd.pk, ks[i], g.ts, t)
    b.refs[ks[i]] = (b.refs[ks[i]] or 0) + 1
  end
  flush(b, base, meta)
end

-- Marks the chosen origins (O: id -> load_origins record) scheduled at g.ts, each by the
-- rule: last_scheduled = max(it, ts).
local function mark_each(base, meta, g, ids, O)
  local b = new_batch()
  local k, in_chunk, at = nil, CHUNK, {}
  for _, id in ipairs(ids) do
    local o = O[id]
    local c = copy_origin(o)
    if o.k == 0 or g.ts > o.sc then
      if in_chunk >= CHUNK then
        k, in_chunk = new_sending(base, meta, g.ts), 0
      end
      in_chunk = in_chunk + 1
      c.k, c.sc = k, g.ts
    elseif o.released then
      -- a later sending stays, but waits again: a sending of the same time, not released
      at[o.sc] = at[o.sc] or new_sending(base, meta, o.sc)
      c.k = at[o.sc]
    end
    c.released = false
    put_origin(b, base, o, c, false, false)
  end
  flush(b, base, meta)
end

-- The ids of up to `want` origins in `policy`'s order ('osf', 'nv' or 'lag'), read page by
-- page; `take(ids)` returns true when it has enough.
local function scan(base, meta, policy, want, take)
  local page_size = math.min(math.max(want, 16), 1000)
  if policy ~= 'osf' then
    local key = base .. ':' .. policy
    local offset = 0
    while true do
      local page = redis.call('ZRANGE', key, offset, offset + page_size - 1)
      if #page == 0 then return end
      offset = offset + #page
      for i, m in ipairs(page) do page[i] = tonumber(m) end
      if take(page) then return end
    end
  end
  -- never scheduled first, in id order, from the bitmap
  local key = base .. ':new'
  local from = tonumber(redis.call('HGET', meta, 'new_from') or '0')
  local pos, first = from, nil
  while true do
    local p = redis.call('BITPOS', key, 1, pos)
    if p < 0 then break end
    local at = math.floor(p / 8)
    first = first or at
    local bytes = redis.call('GETRANGE', key, at, at + math.ceil(page_size / 8))
    local ids = {}
    for i = 1, #bytes do
      local v = string.byte(bytes, i)
      if v ~= 0 then
        local id0 = (at + i - 1) * 8
        if v == 255 then
          for j = 0, 7 do ids[#ids + 1] = id0 + j end
        else
          for j = 0, 7 do
            if bit.band(v, bit.rshift(128, j)) ~= 0 then ids[#ids + 1] = id0 + j end
          end
        end
      end
    end
    pos = at + #bytes
    if take(ids) then
      if first > from then redis.call('HSET', meta, 'new_from', first) end
      return
    end
  end
  if first and first > from then redis.call('HSET', meta, 'new_from', first) end
  -- then those scheduled before, oldest first, sending by sending
  local rank = 0
  while true do
    local names = redis.call('ZRANGE', base .. ':osf', rank, rank + 9)
    if #names == 0 then return end
    rank = rank + #names
    for _, name in ipairs(names) do
      local ids = redis.call('SMEMBERS', base .. ':osf:' .. name)
      for i, m in ipairs(ids) do ids[i] = tonumber(m) end
      if take(ids) then return end
    end
  end
end

-- Up to `count` eligible origins in `policy`'s order, marked scheduled at g.ts unless g.dry.
-- Returns their ids and, for each, true (any enabled listing) or the listing to send.
local function grab(base, meta, g, policy, count)
  local ids, picks = {}, {}
  if count <= 0 then return ids, picks end
  if fast_path(meta, g) then
    scan(base, meta, policy, count, function(page)
      for _, id in ipairs(page) do
        if #ids >= count then return true end
        ids[#ids + 1] = id
        picks[#ids] = true
      end
      return #ids >= count
    end)
    if not g.dry and #ids > 0 then mark_fast(base, meta, g, policy, ids) end
  else
    local O, skipped = {}, 0
    scan(base, meta, policy, count, function(page)
      local got = load_origins(base, page)
      for _, id in ipairs(page) do
        if #ids >= count or skipped >= SKIP_MAX then return true end
        local o = got[id]
        local pick = o and eligible(g, o)
        if pick then
          ids[#ids + 1] = id
          picks[#ids] = pick
          O[id] = o
        else
          skipped = skipped + 1
        end
      end
      return #ids >= count or skipped >= SKIP_MAX
    end)
    if not g.dry and #ids > 0 then mark_each(base, meta, g, ids, O) end
  end
  if not g.dry and #ids > 0 then
    local m = tonumber(redis.call('HGET', meta, 'max_ts') or '-inf')
    if g.ts > m then redis.call('HSET', meta, 'max_ts', fmt_int(g.ts)) end
  end
  return ids, picks
end
