-- Records listings of one visit type, as the original's record_listed_origins: an upsert by
-- (lister, url, visit type) that sets enabled, extra_loader_arguments, last_update and
-- last_seen, and first_seen on insert only. The caller merged duplicates (last wins).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta (the other keys of the visit type share its base,
--         see includes/origin.lua)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us: one timestamp for the whole call (first_seen = last_seen on insert)
-- ARGV[2] the caller's order of the listings: for each, in that order, its number (from 0)
--   among those below, as a 2-byte big-endian integer. They come in the url index's order
--   (src/store/origin_records.rs, index_order), and new origins take their ids in the caller's.
-- ARGV[3..] 3 values per listing: url, the url's 8-byte hash (src/store/origins.rs), the
--   listing entry as stored (includes/origin.lua) with first_seen = last_seen = now
-- Returns the first_seen (us, an integer) of each listing, in the order of ARGV[3..] (the
-- caller has the rest: what it sent, and last_seen = ARGV[1]).
--@include origin
--@include leaves
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
local now = tonumber(ARGV[1])

-- the listings of each url: the first one's place, and a list of them for the rare urls
-- that several listers listed in one call (a table per url is much of what a script spends)
local urls, hs, first, several = {}, {}, {}, {}
for i = 3, #ARGV, 3 do
  local url = ARGV[i]
  local f = first[url]
  if not f then
    first[url] = i
    urls[#urls + 1] = url
    hs[#hs + 1] = ARGV[i + 1]
  else
    local t = several[url]
    if not t then
      t = {f}
      several[url] = t
    end
    t[#t + 1] = i
  end
end
-- the listings of `url`, in a table the caller must not keep when it is the shared `one`
local one = {}
local function given_of(url)
  local t = several[url]
  if t then return t end
  one[1] = first[url]
  return one
end
local ix = url_index(meta)
local ids, U, L, R, taken = find_origins(base, ix, urls, hs)
local b = new_batch()
-- the rest goes in the caller's order: new origins take their ids in it (oldest_scheduled_first
-- gives never scheduled origins in id order, as the original gives them in the order of its
-- serial ids), and the indexes are written in it (a lister's urls often come in order, which
-- a zset takes fastest)
local order = ARGV[2]
if #order * 3 ~= (#ARGV - 2) * 2 then
  return redis.error_reply('ERR record_origins: ARGV[2] must give the order of every listing')
end
local in_order, fresh, hs_of = {}, {}, {}
for r = 1, #order, 2 do
  local hi, lo = string.byte(order, r, r + 1)
  local i = 3 + 3 * (hi * 256 + lo)
  local url = ARGV[i]
  if first[url] == i then
    in_order[#in_order + 1] = url
    if not ids[url] then
      fresh[#fresh + 1] = url
      hs_of[url] = ARGV[i + 1]
    end
  end
end
local new_ids = add_origins(b, base, meta, ix, fresh, hs_of, taken)

local result = {}
local lex, lex_order = {}, {}
local function listed_by(entry, url, id)
  local lidx = struct.unpack('>H', entry)
  local t = lex[lidx]
  if not t then
    t = {}
    lex[lidx] = t
    lex_order[#lex_order + 1] = lidx
  end
  t[#t + 1] = url .. '\0' .. id
end

-- The offset (1-based) of lister `lidx`'s entry in the listings `raw`, or nil.
local function entry_at(raw, lidx)
  local pos = 1
  while pos <= #raw do
    local l = struct.unpack('>H', raw, pos)
    if l == lidx then return pos end
    pos = pos + LISTING_HEAD + struct.unpack('>H', raw, pos + 24)
  end
  return nil
end

local function entry_end(raw, pos)
  return pos + LISTING_HEAD + struct.unpack('>H', raw, pos + 24) - 1
end

-- The listings `raw` of one entry, listed again as ARGV[i + 2]: the entry given, with the
-- stored first_seen, which is the listing's result.
local function sole_entry_again(raw, i)
  result[i] = struct.unpack('>i7', raw, 11)
  local e = ARGV[i + 2]
  return string.sub(e, 1, 10) .. string.sub(raw, 11, 17) .. string.sub(e, 18)
end

-- A known origin whose given listings all exist with the same enabled and last_update (what
-- the indexes and counters read): re-listing an unchanged forge is mostly this. Only the
-- listings are rewritten (last_seen, extra_loader_arguments), first_seen kept. Returns
-- whether it applied.
local function relist(id, given)
  local raw = L[id]
  if not raw then return false end
  local pos = {}
  for k, i in ipairs(given) do
    local e = ARGV[i + 2]
    local at = entry_at(raw, struct.unpack('>H', e))
    if not at or string.sub(raw, at, at + 9) ~= string.sub(e, 1, 10) then return false end
    pos[k] = at
  end
  local out = raw
  if #given == 1 and pos[1] == 1 and entry_end(raw, 1) == #raw then
    out = sole_entry_again(raw, given[1])
  else
    for k, i in ipairs(given) do
      local e = ARGV[i + 2]
      local at = entry_at(out, struct.unpack('>H', e))
      result[i] = struct.unpack('>i7', out, at + 10)
      out = string.sub(out, 1, at + 16) .. string.sub(e, 18)
        .. string.sub(out, entry_end(out, at) + 1)
    end
  end
  put_field(b, base, id, 1, out)
  return true
end

-- A known origin listed by one lister only, listed again by it with the same flags but
-- another last_update (a forge whose projects changed since the last listing, the common case
-- of a relisting): whether retime applies to it.
local function retimes(id, given)
  if #given ~= 1 then return false end
  local raw, e = L[id], ARGV[given[1] + 2]
  if not raw or entry_end(raw, 1) ~= #raw or string.sub(raw, 1, 3) ~= string.sub(e, 1, 3) then
    return false
  end
  local fl = string.byte(raw, 3)
  return fl % 2 == 0 or fl >= 2
end

-- Only its last_update moves, so only its nv and lag scores and its lister's pending-changes
-- counter can change: they follow from its results and sending (k, sc, released) with the
-- rules of place, without decoding and re-encoding the listing as record_general does.
local function retime(id, i, k, sc, released)
  local raw, e = L[id], ARGV[i + 2]
  put_field(b, base, id, 1, sole_entry_again(raw, i))
  if string.byte(raw, 3) % 2 == 0 then return end -- disabled: in no index, counted as known
  local was, upd = struct.unpack('>i7', raw, 4), struct.unpack('>i7', e, 4)
  local s = decode_results(R[id])
  local _, nv0, lag0 = place(true, was, s, k, sc, released)
  local _, nv1, lag1 = place(true, upd, s, k, sc, released)
  rescore(b, 'nv', id, nv0, nv1)
  rescore(b, 'lag', id, lag0, lag1)
  local ok = s and last_success(s)
  if ok ~= nil then
    local d = (upd > ok and 1 or 0) - (was > ok and 1 or 0)
    if d ~= 0 then count(b.counts, counter_fields(struct.unpack('>H', raw)).p, d) end
  end
end

-- The general case: new listings, or changes that move the origin; `o` as stored.
local function record_general(o, given)
  local n = copy_origin(o)
  for _, i in ipairs(given) do
    local e = decode_listings(ARGV[i + 2])[1]
    local at = nil
    for k, x in ipairs(n.listings) do
      if x.lidx == e.lidx then at = k end
    end
    if at then
      e.fs = n.listings[at].fs
      n.listings[at] = e
    else
      n.listings[#n.listings + 1] = e
      listed_by(ARGV[i + 2], o.url, o.id)
    end
    result[i] = e.fs
  end
  put_origin(b, base, o, n, true, false)
end

local nv = b.zadd.nv
local general, retimed = {}, {}
for _, url in ipairs(in_order) do
  local given = given_of(url)
  local id = ids[url]
  if id == nil then
    id = new_ids[url]
    if #given == 1 then
      -- a new origin listed once: its entry as given, placed without decoding it
      local e = ARGV[given[1] + 2]
      local id_text = fmt_int(id) -- (not "%.14g" or "%.17g" as a number would be given)
      put_field(b, base, id, 1, e)
      listed_by(e, url, id_text)
      result[given[1]] = now
      local lidx, fl, upd = struct.unpack('>HBi7', e)
      local c = counter_fields(lidx)
      count(b.counts, c.k, 1)
      if fl % 2 == 1 then
        count(b.counts, c.e, 1)
        count(b.counts, c.n, 1)
        set_bit(b, id, 1)
        if fl >= 2 then
          nv[#nv + 1] = fmt_int(upd)
          nv[#nv + 1] = id_text
        end
      end
    else
      general[#general + 1] = {id, url, given, true}
    end
  elseif not relist(id, given) then
    if retimes(id, given) then
      retimed[#retimed + 1] = id
      retimed[#retimed + 1] = given[1]
    else
      general[#general + 1] = {id, url, {unpack(given)}, false}
    end
  end
end
if #general > 0 or #retimed > 0 then
  local known = {}
  for _, x in ipairs(general) do
    if not x[4] then known[#known + 1] = x[1] end
  end
  for j = 1, #retimed, 2 do known[#known + 1] = retimed[j] end
  local K = sendings_of(base, known)
  local T, REL = sending_times(base, K)
  for j = 1, #retimed, 2 do
    local id = retimed[j]
    local k = K[id] or 0
    retime(id, retimed[j + 1], k, T[k], REL[k] or false)
  end
  for _, x in ipairs(general) do
    local id, url = x[1], x[2]
    local o
    if x[4] then
      o = origin_from(id, url, false, false, 0, T, REL)
    else
      o = origin_from(id, url, L[id], R[id], K[id] or 0, T, REL)
    end
    record_general(o, x[3])
  end
end
flush(b, base, meta)
for _, lidx in ipairs(lex_order) do
  leaves_add(base .. ':lx:' .. lidx, meta, lex[lidx])
end
local out = {}
for i = 3, #ARGV, 3 do out[#out + 1] = result[i] end
return out
