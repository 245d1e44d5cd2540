-- "Now" in microseconds from the Redis server clock, so that every process agrees on what is due.
local function server_now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- A time argument in microseconds; '' stands for `now`.
local function time_or(v, now)
  if v == '' then return now end
  return tonumber(v)
end
