-- The Celery broker queue, seen from a script of the store (dispatch.lua, send_visits.lua).
-- `path` (broker_path below) says where the queue is:
--  * in the store's database: KEYS[first..#KEYS - 1] are the queue's lists, bucket 0 (pushed to) first,
--    then the other priority buckets (counted as waiting);
--  * in another database of the store's server: the same lists, read and written with that
--    database selected (standalone servers only: a Cluster has only database 0);
--  * on another server (src/store/outbox.rs): KEYS[first] is the queue's outbox in the store
--    and KEYS[first + 1] the batch a forwarder is moving to the broker; the messages waiting
--    in the broker itself come in ARGV, counted by the caller just before the call.

-- The path from the script's two ARGV fields (a, b): ('', '') the store's database;
-- (broker database, store database) another database; ('outbox', waiting) another server.
local function broker_path(a, b)
  if a == 'outbox' then return {outbox = true, waiting = tonumber(b) or 0} end
  return {broker = a, store = b}
end

-- Calls f with the broker's database selected, then selects the store's again.
local function in_broker(path, f)
  local other = path.broker and path.broker ~= ''
  if other then redis.call('SELECT', path.broker) end
  local r = f()
  if other then redis.call('SELECT', path.store) end
  return r
end

-- Messages waiting: in the queue's lists, or in the broker plus the outbox and the batch
-- being forwarded (so that backpressure counts what is on its way).
local function queue_waiting(path, first)
  if path.outbox then
    return path.waiting + redis.call('LLEN', KEYS[first]) + redis.call('LLEN', KEYS[first + 1])
  end
  return in_broker(path, function()
    local w = 0
    for i = first, #KEYS - 1 do w = w + redis.call('LLEN', KEYS[i]) end
    return w
  end)
end

-- Pushes the messages onto the list `key` (the queue's bucket 0 or its outbox), a thousand to
-- a command (Lua's unpack has a limit).
local function push_messages(path, key, msgs)
  in_broker(path, function()
    for i = 1, #msgs, 1000 do
      redis.call('LPUSH', key, unpack(msgs, i, math.min(i + 999, #msgs)))
    end
  end)
end

-- Message text (dispatch.lua, send_visits.lua). Whether text has a quote or a backslash, by
-- plain finds: a pattern with a character class costs several times as much a character.
local function has_special(text)
  return string.find(text, '"', 1, true) ~= nil or string.find(text, '\\', 1, true) ~= nil
end

-- JSON text with its quotes and backslashes escaped, to go inside a JSON string of the message
-- (the body, argsrepr, kwargsrepr): JSON text has no raw control character, so nothing else
-- needs escaping. Text rarely holds a backslash, and without one a one-character pattern is
-- matched a quarter faster than a set.
local function json_escaped(text)
  if string.find(text, '\\', 1, true) then return (string.gsub(text, '[\\"]', '\\%0')) end
  return (string.gsub(text, '"', '\\"'))
end
