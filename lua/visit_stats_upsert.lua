-- Records what visits of origins of one visit type found, as the original's
-- origin_visit_stats_upsert: a new origin takes every field; a known one keeps each of
-- last_eventful, last_uneventful, last_failed, last_notfound and last_snapshot that the call
-- leaves empty (coalesce), and never takes last_scheduled from the call. The caller refused
-- batches with a repeated url. Origins no lister listed are recorded too, as in the original.
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1..] 8 values per origin: url, the url's 8-byte hash, last_eventful, last_uneventful,
--   last_failed, last_notfound, last_scheduled (us or ''), last_snapshot (bytes or '')
-- Returns the number of origins written.
--@include origin
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
local urls, hs, at = {}, {}, {}
for i = 1, #ARGV, 8 do
  urls[#urls + 1] = ARGV[i]
  hs[#hs + 1] = ARGV[i + 1]
  at[ARGV[i]] = i
end
local ix = url_index(meta)
local ids, U, L, R, taken = find_origins(base, ix, urls, hs)
local b = new_batch()
local fresh, hs_of = {}, {}
for j, url in ipairs(urls) do
  if not ids[url] then
    fresh[#fresh + 1] = url
    hs_of[url] = hs[j]
  end
end
local known = {}
for _, url in ipairs(urls) do
  if ids[url] then known[#known + 1] = ids[url] end
end
local K = sendings_of(base, known)
for url, id in pairs(add_origins(b, base, meta, ix, fresh, hs_of, taken)) do
  ids[url] = id
  U[id], L[id], R[id], K[id] = url, false, false, 0
end
local T, REL = sending_times(base, K)
-- sendings for the last_scheduled of origins that get their first stats here, by time
local sendings = {}
local function sending_at(sc)
  local c = sendings[sc]
  if not c or c.n >= CHUNK then
    c = {k = new_sending(base, meta, sc), n = 0}
    sendings[sc] = c
  end
  c.n = c.n + 1
  return c.k
end

local latest = nil
for _, url in ipairs(urls) do
  local i, id = at[url], ids[url]
  local o = origin_from(id, url, L[id], R[id], K[id] or 0, T, REL)
  local n = copy_origin(o)
  local s = n.st
  if s == nil then
    s = {fails = 0}
    n.st = s
    local sc = num(ARGV[i + 6])
    if o.k == 0 and sc ~= nil then n.k, n.sc, n.released = sending_at(sc), sc, false end
  end
  s.ev = num(ARGV[i + 2]) or s.ev
  s.un = num(ARGV[i + 3]) or s.un
  s.fa = num(ARGV[i + 4]) or s.fa
  s.nf = num(ARGV[i + 5]) or s.nf
  if ARGV[i + 7] ~= '' then s.snap = ARGV[i + 7] end
  local r = last_result(s)
  if r ~= nil and (latest == nil or r > latest) then latest = r end
  put_origin(b, base, o, n, false, true)
end
flush(b, base, meta)
saw_result(meta, latest)
return #urls
