-- A forwarder is done with its batch (src/store/outbox.rs): when the batch is in the broker,
-- it is dropped; when the forwarder could not push it, it stays for the next forwarder. Either
-- way the lease is released, if it is still the forwarder's.
-- KEYS[1] <tag base>:outbox:<queue>:batch    list: the batch being forwarded
-- KEYS[2] <tag base>:outbox:<queue>:lease    string: the forwarder holding the batch
-- KEYS[3] <tag base>:outbox:<queue>:batch_id string: the batch's id
-- KEYS[4] the type's hash (<prefix>:{<type>}:type or <prefix>:{vt:<visit_type>}:meta)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] the forwarder's token
-- ARGV[2] '1' when the batch is in the broker, '0' to leave it
-- ARGV[3] the batch's messages, added to the `outbox_forwarded` field of KEYS[4]
-- ARGV[4] '1' when the batch was one a forwarder had left unfinished: its messages are also
--   added to the `outbox_recovered` field of KEYS[4]
-- Returns 1, or 0 when the lease had passed to another forwarder (which pushes the batch
-- again, or finds that it is in the broker: the push is idempotent, see broker_push.lua).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[2] ~= '1' then return 1 end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('HINCRBY', KEYS[4], 'outbox_forwarded', ARGV[3])
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[4], 'outbox_recovered', ARGV[3]) end
return 1
