-- Runs on the Celery broker's own server, not on the store: a forwarder's push of one outbox
-- batch (src/store/outbox.rs), idempotent by the batch's id. The first push of a batch sets
-- its marker and LPUSHes its messages, oldest first (so that a worker's BRPOP takes the oldest
-- first); a later push of the same batch (a forwarder whose lease had lapsed, or the one that
-- took the batch over after a crash) finds the marker and does nothing.
-- KEYS[1] the queue's list (its priority-0 bucket)
-- KEYS[2] the batch's marker: swh-scheduler:outbox-batch:<batch id>
-- ARGV[1] the marker's lifetime in seconds
-- ARGV[2..] the messages, oldest first
-- Returns 1 when it pushed, 0 when the batch was in already.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 2, #ARGV, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
