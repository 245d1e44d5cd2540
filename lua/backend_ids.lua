-- Maintains the index of backend ids that do not name their run (ids chosen by RPC callers of
-- schedule_task_run; the runner's own ids carry the run id, see src/model/ids.rs).
-- KEYS[1] <prefix>:{global}:backend_ids   hash backend id -> "run_id[ run_id...]"
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] 'add' or 'remove'
-- ARGV[2..] backend id, run id pairs
-- Returns the number of entries changed.
local add = ARGV[1] == 'add'
-- every entry read with one HMGET, and written with one HSET and one HDEL (in chunks: unpack
-- has a limit), instead of two commands a pair; a backend id given twice sees the change of its first pair
local bids, cur = {}, {}
for i = 2, #ARGV, 2 do bids[#bids + 1] = ARGV[i] end
for i = 1, #bids, 1000 do
  local v = redis.call('HMGET', KEYS[1], unpack(bids, i, math.min(i + 999, #bids)))
  for j = i, math.min(i + 999, #bids) do cur[bids[j]] = v[j - i + 1] or '' end
end
local changed, touched = 0, {}
for i = 2, #ARGV, 2 do
  local bid, rid = ARGV[i], ARGV[i + 1]
  local rest, present = {}, false
  for s in string.gmatch(cur[bid], '%d+') do
    if s == rid then present = true else rest[#rest + 1] = s end
  end
  if add and not present then
    rest[#rest + 1] = rid
  end
  if add ~= present then
    cur[bid] = table.concat(rest, ' ')
    if not touched[bid] then
      touched[bid] = true
      touched[#touched + 1] = bid
    end
    changed = changed + 1
  end
end
local sets, dels = {}, {}
for _, bid in ipairs(touched) do
  if cur[bid] == '' then
    dels[#dels + 1] = bid
  else
    sets[#sets + 1] = bid
    sets[#sets + 1] = cur[bid]
  end
end
for i = 1, #sets, 2000 do redis.call('HSET', KEYS[1], unpack(sets, i, math.min(i + 1999, #sets))) end
for i = 1, #dels, 1000 do redis.call('HDEL', KEYS[1], unpack(dels, i, math.min(i + 999, #dels))) end
return changed
