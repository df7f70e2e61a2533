-- Drops the oldest alerts created before a time, at most ARGV[3] of them, with their
-- deliveries and dedup keys: ARGV[1] is the prefix, ARGV[2] the exclusive upper bound of the
-- newest-first index ('(' and the time's digits, see alert-add.lua). Answers how many went; the
-- store calls it again while a call drops ARGV[3].
local p = ARGV[1]
local members = redis.call('ZRANGEBYLEX', p .. ':alertsby', '-', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(members) do
  local id = string.sub(m, 18)
  local json = redis.call('HGET', p .. ':alerts', id)
  if json then
    local a = cjson.decode(json)
    if type(a.tenant) == 'string' then redis.call('ZREM', p .. ':alertsby:t:' .. a.tenant, m) end
    if type(a.key) == 'table' and type(a.key.id) == 'string' then redis.call('ZREM', p .. ':alertsby:k:' .. a.key.id, m) end
  end
  local dedup = redis.call('HGET', p .. ':alertdedupof', id)
  if dedup then redis.call('HDEL', p .. ':alertdedup', dedup) end
  redis.call('HDEL', p .. ':alertdedupof', id)
  redis.call('HDEL', p .. ':alerts', id)
  for _, d in ipairs(redis.call('LRANGE', p .. ':alertdlv:' .. id, 0, -1)) do
    redis.call('DEL', p .. ':dlv:' .. d)
    redis.call('ZREM', p .. ':dlvdue', d)
  end
  redis.call('DEL', p .. ':alertdlv:' .. id)
  redis.call('ZREM', p .. ':alertsby', m)
end
return #members
