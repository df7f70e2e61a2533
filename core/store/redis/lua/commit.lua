-- Writes one commit if every expected version still holds; publishes the lookup hashes it
-- changed. ARGV[1] is the prefix, ARGV[2] the commit as JSON (keys, apps, audit, events).
-- Answers {'conflict', why}, or 'ok', then requests, errors and last use per key, then the
-- invalidation's sequence number ('0' when no hash changed).
local p = ARGV[1]
local c = cjson.decode(ARGV[2])
for _, k in ipairs(c.keys) do
  local v = tonumber(redis.call('HGET', p .. ':ver', k.id) or '0')
  if v ~= k.expected then return {'conflict', 'key ' .. k.id .. ' changed since version ' .. k.expected} end
  local owner = redis.call('GET', p .. ':hash:' .. k.hash)
  if owner and owner ~= k.id then return {'conflict', 'a key with this hash already exists'} end
end
for _, a in ipairs(c.apps) do
  local v = tonumber(redis.call('HGET', p .. ':aver', a.id) or '0')
  if v ~= a.expected then return {'conflict', 'application ' .. a.id .. ' changed since version ' .. a.expected} end
end
local changed = {}
local out = {'ok'}
for _, k in ipairs(c.keys) do
  local old = redis.call('GET', p .. ':key:' .. k.id)
  if old then
    local oh = cjson.decode(old).hash
    if oh ~= k.hash then
      redis.call('DEL', p .. ':hash:' .. oh)
      table.insert(changed, oh)
    end
  end
  redis.call('SET', p .. ':key:' .. k.id, k.json)
  redis.call('HSET', p .. ':ver', k.id, k.expected + 1)
  redis.call('SET', p .. ':hash:' .. k.hash, k.id)
  redis.call('SADD', p .. ':keys', k.id)
  if k.app ~= '' then redis.call('SADD', p .. ':appkeys:' .. k.app, k.id) end
  if k.due >= 0 then redis.call('ZADD', p .. ':due', k.due, k.id) else redis.call('ZREM', p .. ':due', k.id) end
  set_expiring(p, k.id, k.exp)
  table.insert(changed, k.hash)
  local r, e, l = usage_of(p, k.id)
  table.insert(out, r)
  table.insert(out, e)
  table.insert(out, l)
end
for _, a in ipairs(c.apps) do
  redis.call('SET', p .. ':app:' .. a.id, a.json)
  redis.call('HSET', p .. ':aver', a.id, a.expected + 1)
  redis.call('SADD', p .. ':apps', a.id)
end
for _, e in ipairs(c.audit) do redis.call('RPUSH', p .. ':audit', e) end
for _, e in ipairs(c.events) do redis.call('RPUSH', p .. ':events:' .. e.key, e.json) end
if #changed > 0 then
  local seq = redis.call('INCR', p .. ':invseq')
  redis.call('PUBLISH', p .. ':invalidate', seq .. ' ' .. table.concat(changed, ' '))
  table.insert(out, tostring(seq))
else
  table.insert(out, '0')
end
return out
