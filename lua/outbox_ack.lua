-- A forwarder is done with its batch (src/store/outbox.rs): when it has put the batch into the
-- broker, the batch is dropped; when it could not, the batch stays for the next forwarder,
-- which re-sends only what the broker lacks. Either way the lease is released, if it is
-- still the forwarder's.
-- KEYS[1] <tag base>:outbox:<queue>:batch    list: the batch being forwarded
-- KEYS[2] <tag base>:outbox:<queue>:lease    string: the forwarder holding the batch
-- KEYS[3] the type's hash (<prefix>:{<type>}:type or <prefix>:{vt:<visit_type>}:meta)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] the forwarder's token
-- ARGV[2] '1' when the batch is in the broker, '0' to leave it
-- ARGV[3] messages forwarded, added to the `outbox_forwarded` field of KEYS[3]
-- ARGV[4] of them, messages sent again after a forwarder died (possible duplicates), added
--   to the `outbox_resent` field of KEYS[3]
-- Returns 1, or 0 when the lease had passed to another forwarder (which sends the batch
-- again: what it finds in the broker it does not duplicate).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[2] ~= '1' then return 1 end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[3], 'outbox_forwarded', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[3], 'outbox_resent', ARGV[4]) end
return 1
