-- Maintains the index of backend ids that do not name their run (ids chosen by RPC callers of
-- schedule_task_run; the runner's own ids carry the run id, see src/model/ids.rs).
-- KEYS[1] <prefix>:{global}:backend_ids   hash backend id -> "run_id[ run_id...]"
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] 'add' or 'remove'
-- ARGV[2..] backend id, run id pairs
-- Returns the number of entries changed.
local add = ARGV[1] == 'add'
local changed = 0
for i = 2, #ARGV, 2 do
  local bid, rid = ARGV[i], ARGV[i + 1]
  local ids = redis.call('HGET', KEYS[1], bid)
  local rest, present = {}, false
  for s in string.gmatch(ids or '', '%d+') do
    if s == rid then present = true else rest[#rest + 1] = s end
  end
  if add and not present then
    rest[#rest + 1] = rid
    redis.call('HSET', KEYS[1], bid, table.concat(rest, ' '))
    changed = changed + 1
  elseif not add and present then
    if #rest == 0 then redis.call('HDEL', KEYS[1], bid)
    else redis.call('HSET', KEYS[1], bid, table.concat(rest, ' ')) end
    changed = changed + 1
  end
end
return changed
