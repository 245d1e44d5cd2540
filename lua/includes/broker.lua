-- The Celery broker queue, seen from a script of the store (dispatch.lua, send_visits.lua):
-- it may live in another database of the same server, and what waits in it bounds what may
-- be sent. `db` is {broker = ARGV's broker database or '', store = the store's}: '' means
-- the broker shares the store's database.

-- Calls f with the broker's database selected, then selects the store's again.
local function in_broker(db, f)
  if db.broker ~= '' then redis.call('SELECT', db.broker) end
  local r = f()
  if db.broker ~= '' then redis.call('SELECT', db.store) end
  return r
end

-- Messages waiting in the queue's lists KEYS[first], KEYS[first + 1], ... (its priority
-- buckets).
local function queue_waiting(db, first)
  return in_broker(db, function()
    local w = 0
    for i = first, #KEYS do w = w + redis.call('LLEN', KEYS[i]) end
    return w
  end)
end

-- Pushes the messages onto the list `key`, a thousand to a command (Lua's unpack has a limit).
local function push_messages(db, key, msgs)
  in_broker(db, function()
    for i = 1, #msgs, 1000 do
      redis.call('LPUSH', key, unpack(msgs, i, math.min(i + 999, #msgs)))
    end
  end)
end
