#!lua name=trio_monitor
-- trio-monitor's cluster state in Redis: one atomic call per probe result (observe),
-- the membership heartbeat with its fencing token, and the cluster's identity.
-- Loaded with FUNCTION LOAD REPLACE by the first node whose copy is newer (tm_version).
-- Every key is under the hash tag {tm}, so all of them live in one slot.
--
-- Every write here may be repeated (a call cancelled by the caller's deadline may still
-- have been applied, and is sent again): a result already applied is recognised by its
-- id (the node's token and a sequence number) and changes nothing.

local VERSION = 7
-- the outbox and the alerts stream are trimmed to about this many entries (XADD MAXLEN
-- ~): Redis's memory and a starting node's replay stay bounded whatever the alert rate
local ALERTS_MAXLEN = 100000

local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The process holding `member` (location/node) is the one whose token the fence
-- keeps: a newer process of the same member takes it over, the older one is fenced.
-- An empty fence (a Redis that lost its data) is taken by whoever comes first.
local function fenced(fence_key, member, token)
  local held = redis.call('HGET', fence_key, member)
  if not held then
    redis.call('HSET', fence_key, member, token)
    return false
  end
  return held ~= token
end

local function tm_version(keys, args)
  return VERSION
end

-- claim(fence; member, token) -> the token it replaced (or false): a new incarnation
-- takes its member name over.
local function claim(keys, args)
  local previous = redis.call('HGET', keys[1], args[1])
  redis.call('HSET', keys[1], args[1], args[2])
  return previous
end

-- The cluster `id_key` holds is not the one the node joined (`joined`): Redis lost its
-- data (no id, or a new one another node set since), so the node must join again, and
-- seed what it knows, before it writes anything.
local function not_joined(id_key, joined)
  return redis.call('GET', id_key) ~= joined
end

-- heartbeat(members, fence, hashes, cluster_id; member, token, ttl, config_hash, joined)
--   -> {'empty'} (not the cluster it joined: the node joins again), {'fenced'}, or
--   {'ok', now, {member, expiry, ...} of the live members, {member, hash, ...}}
local function heartbeat(keys, args)
  local members, fence, hashes = keys[1], keys[2], keys[3]
  local member, token, ttl, config_hash = args[1], args[2], tonumber(args[3]), args[4]
  if not_joined(keys[4], args[5]) then
    return {'empty'}
  end
  if fenced(fence, member, token) then
    return {'fenced'}
  end
  local now = redis_now()
  redis.call('ZADD', members, now + ttl, member)
  redis.call('HSET', hashes, member, config_hash)
  local dead = redis.call('ZRANGEBYSCORE', members, '-inf', '(' .. now)
  if #dead > 0 then
    redis.call('ZREM', members, unpack(dead))
    redis.call('HDEL', hashes, unpack(dead))
  end
  local live = redis.call('ZRANGE', members, 0, -1, 'WITHSCORES')
  return {'ok', tostring(now), live, redis.call('HGETALL', hashes)}
end

-- leave(members, hashes, fence; member, token): a clean stop takes its lease back.
local function leave(keys, args)
  if redis.call('HGET', keys[3], args[1]) == args[2] then
    redis.call('ZREM', keys[1], args[1])
    redis.call('HDEL', keys[2], args[1])
  end
  return 'ok'
end

-- cluster_id(id_key; proposed) -> {id, created}: the cluster's identity; a Redis that
-- came back empty has none, and the node that notices sets a new one.
local function cluster_id(keys, args)
  local created = redis.call('SET', keys[1], args[1], 'NX')
  return {redis.call('GET', keys[1]), created and 1 or 0}
end

-- The target's verdict over its locations: DOWN when at least `quorum` fresh
-- locations (heard from within two intervals) see it down, UP when at least
-- locations - quorum + 1 of them see it up, else what it was (no flapping between).
local function verdict(t, current, locations, quorum, freshness, now)
  local down, up = 0, 0
  local fields = redis.call('HGETALL', t)
  local seen, states = {}, {}
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    local loc, what = string.match(name, '^l:(.*):(%a+)$')
    if loc then
      if what == 'seen' then seen[loc] = tonumber(value) end
      if what == 'st' then states[loc] = value end
    end
  end
  for loc, st in pairs(states) do
    if seen[loc] and now - seen[loc] <= freshness then
      if st == 'DOWN' then down = down + 1 elseif st == 'UP' then up = up + 1 end
    end
  end
  if down >= quorum then return 'DOWN' end
  if up >= locations - quorum + 1 then return 'UP' end
  return current
end

-- observe(target, fence, outbox, results, late_ids, cluster_id;
--         member, token, location, name, interval, age, ok, failure_threshold,
--         success_threshold, locations, quorum, result, ts, reason, detail, url,
--         results_maxlen, result_id, joined)
--   -> {status, state, alert json or '', results stream id or ''}
-- status: 'applied', 'late' (an older probe than one applied: history only),
-- 'duplicate' (this very result was applied already: nothing written), 'fenced',
-- 'empty' (not the cluster the node joined: nothing written).
-- Results are ordered per (target, location) by their probe's start on Redis's clock
-- (now - age: no node's clock matters): not by interval slots, since confirmation
-- probes put several results in one interval.
local function observe(keys, args)
  local t, fence, outbox, results, late_ids = keys[1], keys[2], keys[3], keys[4], keys[5]
  if not_joined(keys[6], args[19]) then
    return {'empty', '', '', ''}  -- Redis lost its data: the node joins (and seeds) first
  end
  local member, token, loc, name = args[1], args[2], args[3], args[4]
  local interval, age = tonumber(args[5]), tonumber(args[6])
  local ok = args[7] == '1'
  local failure_threshold, success_threshold = tonumber(args[8]), tonumber(args[9])
  local locations, quorum = tonumber(args[10]), tonumber(args[11])
  local result, ts, url = args[12], tonumber(args[13]), args[16]
  local reason = args[14] ~= '' and args[14] or nil
  local detail = args[15] ~= '' and args[15] or nil
  local maxlen, result_id = args[17], args[18]
  if fenced(fence, member, token) then
    return {'fenced', '', '', ''}
  end
  local now = redis_now()
  -- the probe's start on Redis's clock: no node's clock matters, only its own age count
  local start = math.floor((now - age) * 1000)
  local p = 'l:' .. loc .. ':'
  local last = tonumber(redis.call('HGET', t, p .. 'start') or '-1')
  local state = redis.call('HGET', t, 'state') or 'UNKNOWN'
  local function to_history(late)
    return redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*',
      'node', member, 'loc', loc, 'late', late, 'r', result)
  end
  if redis.call('HGET', t, p .. 'rid') == result_id then
    return {'duplicate', state, '', ''}  -- sent again: its first call's answer was lost
  end
  if start < last then
    -- an older probe than the newest applied (a spool replayed): history only, once
    if redis.call('SET', late_ids .. result_id, '1', 'NX', 'EX', 3600) then
      return {'late', state, '', to_history('1')}
    end
    return {'duplicate', state, '', ''}
  end
  redis.call('HSET', t, p .. 'start', start, p .. 'seen', now, p .. 'rid', result_id)
  local failures = tonumber(redis.call('HGET', t, p .. 'f') or '0')
  local successes = tonumber(redis.call('HGET', t, p .. 's') or '0')
  local loc_state = redis.call('HGET', t, p .. 'st') or 'UNKNOWN'
  -- the thresholds as MemoryStateStore applies them (engine/state.py), per location
  if ok then
    successes = successes + 1
    if successes >= success_threshold then
      loc_state, failures = 'UP', 0
      redis.call('HDEL', t, p .. 'streak')
    end
  else
    successes, failures = 0, failures + 1
    if failures == 1 or not redis.call('HGET', t, p .. 'streak') then
      redis.call('HSET', t, p .. 'streak', ts)
    end
    if failures >= failure_threshold then loc_state = 'DOWN' end
  end
  redis.call('HSET', t, p .. 'f', failures, p .. 's', successes, p .. 'st', loc_state)
  local new = verdict(t, state, locations, quorum, 2 * interval, now)
  local alert = ''
  if new ~= state then
    redis.call('HSET', t, 'state', new, 'since', ts)
    local event
    if new == 'DOWN' then
      local since = tonumber(redis.call('HGET', t, p .. 'streak') or ts)
      redis.call('HSET', t, 'down_since', since, 'since', since)
      event = {event = 'down', reason = reason, detail = detail, since = since,
        failures = failures}
    elseif state == 'DOWN' then
      local since = tonumber(redis.call('HGET', t, 'down_since') or ts)
      event = {event = 'up', since = since, detail = detail,
        downtime_s = math.floor((ts - since) * 1000 + 0.5) / 1000}
    end
    if event then
      local version = redis.call('HINCRBY', t, 'version', 1)
      event.id = name .. ':' .. version
      event.ts, event.target, event.url = ts, name, url
      alert = cjson.encode(event)
      redis.call('XADD', outbox, 'MAXLEN', '~', ALERTS_MAXLEN, '*', 'id', event.id, 'alert', alert)
    end
  end
  return {'applied', new, alert, to_history('0')}
end

-- seed(target, fence; member, token, location, state, failures, since, version)
--   -> 'seeded', 'exists' or 'fenced'. A Redis that came back empty learns from a node's
--   own state what it knew: the target UP or DOWN (so the next result does not page an
--   outage again) and its last alert version (so alert ids go on, never repeat). A
--   target already written (another node, or a result first) is left alone.
local function seed(keys, args)
  local t, fence = keys[1], keys[2]
  if fenced(fence, args[1], args[2]) then
    return 'fenced'
  end
  if redis.call('EXISTS', t) == 1 then
    return 'exists'
  end
  local p = 'l:' .. args[3] .. ':'
  local state, since = args[4], args[6]
  redis.call('HSET', t, 'state', state, 'since', since, 'version', args[7],
    p .. 'st', state, p .. 'f', args[5], p .. 's', 0, p .. 'seen', redis_now())
  if state == 'DOWN' then
    redis.call('HSET', t, 'down_since', since, p .. 'streak', since)
  end
  return 'seeded'
end

-- event(target, fence, outbox, event_ids, cluster_id; member, token, id, alert, ttl,
--       versioned, joined) -> {status, id}: an alert that is no verdict change (a result's
-- `slow`, `content_changed`, certificate alerts; early warning's `degrading`) into the
-- outbox once across the cluster: its id (made by the node from the result, so the
-- same when sent again) is remembered for `ttl` seconds and a second one is a
-- 'duplicate'. `versioned`: the target's verdict version ends the id (`@vN`): one
-- such alert per id between two verdict changes, whichever node sends it first.
local function event(keys, args)
  if not_joined(keys[5], args[7]) then
    return {'empty', ''}
  end
  if fenced(keys[2], args[1], args[2]) then
    return {'fenced', ''}
  end
  local id = args[3]
  if args[6] == '1' then
    id = id .. '@v' .. (redis.call('HGET', keys[1], 'version') or '0')
  end
  if not redis.call('SET', keys[4] .. id, '1', 'NX', 'EX', tonumber(args[5])) then
    return {'duplicate', id}
  end
  redis.call('XADD', keys[3], 'MAXLEN', '~', ALERTS_MAXLEN, '*', 'id', id, 'alert', args[4])
  return {'applied', id}
end

-- alert(alerts, alert_ids, cluster_id; id, alert, ttl, joined) -> 'applied',
-- 'duplicate' or 'empty': one alert of the policy (cluster/policy.py) into the stream
-- the notifiers read, once: every node computes the same alerts with the same ids, and
-- the first to send one puts it in; its id is remembered for `ttl` seconds.
local function alert(keys, args)
  if not_joined(keys[3], args[4]) then
    return 'empty'
  end
  if not redis.call('SET', keys[2] .. args[1], '1', 'NX', 'EX', tonumber(args[3])) then
    return 'duplicate'
  end
  redis.call('XADD', keys[1], 'MAXLEN', '~', ALERTS_MAXLEN, '*', 'id', args[1], 'alert', args[2])
  return 'applied'
end

-- policed(mark; ms) -> the mark: the outbox's time (ms) through which the policy's
-- alerts are all sent; it only moves on. A node that starts makes the policy's alerts
-- up to it again without sending them (they were sent), and sends what comes after.
local function policed(keys, args)
  local mark = tonumber(redis.call('GET', keys[1]) or '0')
  if tonumber(args[1]) > mark then
    redis.call('SET', keys[1], args[1])
    return args[1]
  end
  return tostring(mark)
end

redis.register_function('tm_alert', alert)
redis.register_function('tm_policed', policed)
redis.register_function('tm_version', tm_version)
redis.register_function('tm_event', event)
redis.register_function('tm_seed', seed)
redis.register_function('tm_claim', claim)
redis.register_function('tm_heartbeat', heartbeat)
redis.register_function('tm_leave', leave)
redis.register_function('tm_cluster_id', cluster_id)
redis.register_function('tm_observe', observe)
