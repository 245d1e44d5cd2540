-- A forwarder takes the next batch of an outbox (src/store/outbox.rs): the messages dispatch
-- wrote for a broker on another server. The batch moves from the outbox to the batch list and
-- gets an id, under a lease, so that one forwarder at a time moves an outbox, and a forwarder
-- that dies mid-batch leaves the batch, with its id, to the next one.
-- KEYS[1] <tag base>:outbox:<queue>          list, newest first (dispatch LPUSHes)
-- KEYS[2] <tag base>:outbox:<queue>:batch    list, oldest first: the batch being forwarded
-- KEYS[3] <tag base>:outbox:<queue>:lease    string: the forwarder holding the batch
-- KEYS[4] <tag base>:outbox:<queue>:batch_id string: the batch's id
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] the forwarder's token
-- ARGV[2] the lease, in ms
-- ARGV[3] most messages in a batch (at most 1000)
-- ARGV[4] the id of a new batch
-- Returns {} when another forwarder holds the lease or nothing waits; otherwise {fresh, the
-- batch's id, its messages oldest first}: fresh is 1 for a batch just taken from the outbox,
-- 0 for a batch a forwarder left unfinished (it may be in the broker already).
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[1] then return {} end
if redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  local left = redis.call('LRANGE', KEYS[2], 0, -1)
  table.insert(left, 1, 0)
  table.insert(left, 2, redis.call('GET', KEYS[4]) or '')
  return left
end
local msgs = redis.call('RPOP', KEYS[1], tonumber(ARGV[3]))
if not msgs then return {} end
redis.call('RPUSH', KEYS[2], unpack(msgs))
redis.call('SET', KEYS[4], ARGV[4])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
table.insert(msgs, 1, 1)
table.insert(msgs, 2, ARGV[4])
return msgs
