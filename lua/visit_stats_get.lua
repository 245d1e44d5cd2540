-- Reads the visit stats of origins of one visit type (the original's origin_visit_stats_get).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- ARGV[1..] urls
-- Returns, for each url that has stats, 7 values: url, last_eventful, last_uneventful,
-- last_failed, last_notfound, last_scheduled (us or ''), last_snapshot (hex or '').
--@include origin
local base = string.sub(KEYS[1], 1, -6)
local out = {}
for i = 1, #ARGV do
  local id = tonumber(redis.call('HGET', base .. ':ids', ARGV[i]))
  local o = id and load_origin(base, id)
  if o and o.has_stats then
    for _, v in ipairs({o.url, tstr(o.le), tstr(o.lu), tstr(o.lf), tstr(o.lnf), tstr(o.ls),
      o.snapshot or ''}) do
      out[#out + 1] = v
    end
  end
end
return out
