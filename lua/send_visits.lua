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
local meta = KEYS[1]
local base = string.sub(meta, 1, -6)
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
  listers[tonumber(ARGV[i])] = ARGV[i + 1]
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
release_parked(base, meta, g.release)
-- each policy's share of the slots, plus what the ones before it could not fill; the last
-- one takes what is left (the rounding too)
local sent, sent_pick = {}, {}
local left, carry = slots, 0
for k, p in ipairs(policies) do
  local share = math.floor(slots * p.weight / total) + carry
  if k == #policies then share = left end
  share = math.min(share, left)
  local got = 0
  if share > 0 then
    local ids, picks = grab(base, meta, g, p.name, share)
    for j, id in ipairs(ids) do
      sent[#sent + 1] = id
      sent_pick[#sent] = picks[j]
    end
    got = #ids
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
-- the lister fields, escaped once per call
local lister_esc = {}
for lidx, fields in pairs(listers) do
  lister_esc[lidx] = ',' .. json_escaped(fields)
end
local U, L = read_runs(base, sent)
local msgs = {}
for i, oid in ipairs(sent) do
  local id = id_head .. string.format('%012x', oid)
  -- the listing sent: the first enabled one unless the choice named one
  local lidx, extra = nil, ''
  local lraw = L[i] or ''
  if sent_pick[i] == true then
    local pos = 1
    while pos <= #lraw do
      local x, fl, _, _, _, n, nxt = struct.unpack(LISTING_FMT, lraw, pos)
      if fl % 2 == 1 then
        lidx, extra = x, string.sub(lraw, nxt, nxt + n - 1)
        break
      end
      pos = nxt + n
    end
  else
    lidx, extra = sent_pick[i].lidx, sent_pick[i].extra
  end
  -- the url and the extra arguments as JSON string content (see json_escaped in
  -- includes/broker.lua; they rarely need any escaping)
  local url = U[i] or ''
  if has_special(url) then
    url = json_escaped(string.sub(cjson.encode(url), 2, -2))
  end
  local members = string.sub(extra, 2, -2)
  if members ~= '' then
    extra = ',' .. json_escaped(members)
  else
    extra = ''
  end
  local esc = '{\\"url\\":\\"' .. url .. '\\"' .. (lister_esc[lidx] or '') .. extra .. '}'
  msgs[i] = p1 .. esc .. p2 .. id .. p3 .. id .. p4 .. esc .. p5 .. id .. p6 .. id .. p7
end
local total_sent = #sent
push_messages(path, KEYS[2], msgs)
-- counted for /metrics (src/rpc/metrics.rs)
redis.call('HINCRBY', KEYS[1], 'visits_sent', total_sent)
count_minute(base, ts, 'vs', total_sent)
out[1] = total_sent
return out
