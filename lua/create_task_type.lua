-- Creates a task type unless it exists (the original's insert-or-ignore: never updates).
-- KEYS[1] <prefix>:{<type>}:type   hash of the type's fields, plus counters task_seq, run_seq
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] the type's index (from register_type.lua)
-- ARGV[2..] field, value pairs of the fields that are set (intervals in microseconds)
-- Returns 1 if created, 0 if the type already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'index', ARGV[1], unpack(ARGV, 2))
return 1
