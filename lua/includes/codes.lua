-- Codes stored in records; they mirror the enums of src/model/mod.rs.
--@include hashes
local TASK_NOT_SCHEDULED, TASK_SCHEDULED, TASK_COMPLETED, TASK_DISABLED = 0, 1, 2, 3
local RECURRING, ONESHOT = 0, 1
local RUN_SCHEDULED, RUN_STARTED, RUN_EVENTFUL, RUN_UNEVENTFUL = 0, 1, 2, 3
local RUN_FAILED, RUN_PERMFAILED, RUN_LOST = 4, 5, 6
-- Tasks are stored TASK_BUCKET to a hash (two fields each) and runs RUN_BUCKET to a hash, so
-- that the hashes stay within Redis' default hash-max-listpack-entries (128) and so
-- listpack-encoded.
local TASK_BUCKET = 64
local RUN_BUCKET = 128
local ONE_HOUR_US = 3600000000

-- Type keys are "<prefix>:{<type>}:type"; every other key of the type starts with the same
-- "<prefix>:{<type>}", so all of them live in one Cluster hash slot.
local function type_base(type_key)
  return string.sub(type_key, 1, -6)
end

-- Decimal text of an integer-valued number; Lua's tostring would use an exponent past 14 digits.
local function int_str(n)
  return string.format('%d', n)
end

-- Decimal text of an integer, remembered for the script's run: a number handed to redis.call
-- is formatted with "%.17g" (Redis 7.0) and one concatenated into a key with "%.14g", both by
-- the C library's floating-point printf, which costs more than a small command around it. The
-- record scripts name buckets and fields with this instead (src/store/keys.rs makes the same
-- text).
local NUM_TEXT = {}
local function num_text(n)
  local s = NUM_TEXT[n]
  if not s then
    s = string.format('%d', n)
    NUM_TEXT[n] = s
  end
  return s
end

-- The key `base .. infix .. b` of bucket b (a task or run hash), remembered in `cache` for
-- the script's run as num_text is: concatenating it anew copies and hashes the whole name
-- each time (Redis' Lua hashes every byte of a new string), some hundreds of instructions.
local function bucket_key(cache, base, infix, b)
  local ks = cache[base]
  if not ks then
    ks = {}
    cache[base] = ks
  end
  local k = ks[b]
  if not k then
    k = base .. infix .. num_text(b)
    ks[b] = k
  end
  return k
end

-- An optional numeric argument: '' stands for none.
local function opt_num(v)
  if v == '' then return nil end
  return tonumber(v)
end
