-- The recurrent visit runner's one step for one visit type (see src/visit_runner.rs): counts
-- what waits in the loader's Celery queue, chooses that many free slots of origins by a
-- weighted mix of grab_next_visits policies, marks them scheduled and LPUSHes one Celery
-- protocol-v2 message each (kwargs: url, the lister's name and instance, then the listing's
-- extra_loader_arguments), all in one script: any number of runners can run at once without
-- sending an origin twice. Slots: with no max_queue_length, 10000; otherwise
-- min(max_queue_length - waiting, 10000), and nothing while at most 5% are free (the
-- original's runner waits then).
-- KEYS[1] <prefix>:{vt:<visit_type>}:meta
-- KEYS[2] the broker list to push to (the queue's priority-0 bucket), or the queue's outbox
-- KEYS[3..] the queue's other priority buckets (counted as waiting), or the outbox's batch
--   being forwarded (lua/includes/broker.lua)
-- KEYS[#KEYS] the slot guard (src/store/scripts.rs): never present, never touched
-- ARGV[1] now in us, or '' for the server clock
-- ARGV[2] max_queue_length, or '' for none
-- ARGV[3] scheduled cooldown in us
-- ARGV[4] the loader's Celery task name
-- ARGV[5] queue name (the messages' routing key)
-- ARGV[6] origin ("<name>@<host>" of the runner)
-- ARGV[7] the broker's database number and ARGV[8] the store's, when they differ; '' when
--   they are the same; 'outbox' and the messages waiting in the broker when it is another
--   server
-- ARGV[9] the visit type's index (lua/visit_type_index.lua), for the messages' task ids
-- ARGV[10] failed cooldown, ARGV[11] not-found cooldown, ARGV[12] absolute cooldown: in us,
--   or '' for none (later versions' rules; see grab.lua)
-- ARGV[13] k, then k pairs: lister index, `"lister_name":…,"lister_instance_name":…` (JSON)
-- then pairs: policy ('osf', 'nv' or 'lag'), weight
-- Returns {visits sent, messages waiting before, then the visits sent by each policy}; adds
-- the visits sent to the `visits_sent` field of KEYS[1].
--@include origin
--@include grab
--@include broker
local base = string.sub(KEYS[1], 1, -6)
local ts = num(ARGV[1])
if ts == nil then
  local t = redis.call('TIME')
  ts = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local mql = num(ARGV[2])
local path = broker_path(ARGV[7], ARGV[8])
local waiting = queue_waiting(path, 2)
local MAX_SLOTS = 10000
local slots = MAX_SLOTS
if mql and mql > 0 then
  slots = math.min(mql - waiting, MAX_SLOTS)
  if slots <= math.floor(math.min(mql, MAX_SLOTS) / 20) then slots = 0 end
end
local vt_index = tonumber(ARGV[9])
local listers, i = {}, 14
for _ = 1, tonumber(ARGV[13]) do
  listers[ARGV[i]] = ARGV[i + 1]
  i = i + 2
end
local policies, total = {}, 0
while i < #ARGV do
  policies[#policies + 1] = {name = ARGV[i], weight = tonumber(ARGV[i + 1])}
  total = total + tonumber(ARGV[i + 1])
  i = i + 2
end
local out = {0, waiting}
for k = 1, #policies do out[k + 2] = 0 end
if slots <= 0 or total <= 0 then return out end

local g = {ts = ts, release = ts - tonumber(ARGV[3]), failed = num(ARGV[10]),
  not_found = num(ARGV[11]), absolute = num(ARGV[12])}
release_parked(base, g.release)
-- each policy's share of the slots, plus what the ones before it could not fill; the last
-- one takes what is left (the rounding too)
local sent = {}
local left, carry = slots, 0
for k, p in ipairs(policies) do
  local share = math.floor(slots * p.weight / total) + carry
  if k == #policies then share = left end
  share = math.min(share, left)
  local got = 0
  if share > 0 then
    for _, c in ipairs(grab(base, g, p.name, share)) do
      sent[#sent + 1] = c
      got = got + 1
    end
  end
  out[k + 2] = got
  carry = share - got
  left = left - got
end
if #sent == 0 then return out end

-- the messages: as dispatch.lua builds them (see src/celery/message.rs), with the kwargs of a
-- visit and a task id that names the visit type and the origin (src/model/ids.rs: visit_id)
local ms = math.floor(ts / 1000)
local id_head = string.format('%08x-%04x-85c9-8%03x-', math.floor(ms / 65536), ms % 65536,
  vt_index)
local p1 = '{"body":"[[],'
local p2 = ',{\\"callbacks\\":null,\\"errbacks\\":null,\\"chain\\":null,\\"chord\\":null}]",'
  .. '"content-encoding":"utf-8","content-type":"application/json","headers":{"lang":"py",'
  .. '"task":' .. cjson.encode(ARGV[4]) .. ',"id":"'
local p3 = '","shadow":null,"eta":null,"expires":null,"group":null,"group_index":null,'
  .. '"retries":0,"timelimit":[null,null],"root_id":"'
local p4 = '","parent_id":null,"argsrepr":"()","kwargsrepr":"'
local p5 = '","origin":' .. cjson.encode(ARGV[6]) .. ',"ignore_result":false,'
  .. '"replaced_task_nesting":0,"stamped_headers":null,"stamps":{}},'
  .. '"properties":{"correlation_id":"'
local p6 = '","reply_to":"","delivery_mode":2,"delivery_info":{"exchange":"","routing_key":'
  .. cjson.encode(ARGV[5]) .. '},"priority":0,"delivery_tag":"'
local p7 = '"}}'
local msgs = {}
for _, c in ipairs(sent) do
  local id = id_head .. string.format('%012x', c.id)
  local extra = string.sub(c.l.extra, 2, -2)
  local kwargs = '{"url":' .. cjson.encode(c.o.url)
    .. (listers[c.l.lidx] and (',' .. listers[c.l.lidx]) or '')
    .. (extra ~= '' and (',' .. extra) or '') .. '}'
  -- JSON text has no raw control character: escaping it into a JSON string only needs
  -- backslashes and quotes
  local esc = string.gsub(kwargs, '[\\"]', '\\%0')
  msgs[#msgs + 1] = p1 .. esc .. p2 .. id .. p3 .. id .. p4 .. esc .. p5 .. id .. p6 .. id .. p7
end
push_messages(path, KEYS[2], msgs)
-- counted for /metrics (src/rpc/metrics.rs)
redis.call('HINCRBY', KEYS[1], 'visits_sent', #sent)
out[1] = #sent
return out
