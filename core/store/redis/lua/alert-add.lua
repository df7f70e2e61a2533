-- Stores one alert with its deliveries, unless its deduplication key is taken: ARGV[1] is the
-- prefix, ARGV[2] the alert as JSON: id, dedup, json (the record, stored verbatim), member (its
-- place in the newest-first indexes, core/store/query.ts timeMember), tenant and key (absent
-- when none), deliveries (id, a alert id, t target, s state, at attempts JSON, n next attempt
-- ('' when none), c creation; times as strings, kept exact). Answers 1, or 0 when the dedup key
-- was taken (and nothing is written).
local p = ARGV[1]
local c = cjson.decode(ARGV[2])
if redis.call('HSETNX', p .. ':alertdedup', c.dedup, c.id) == 0 then return 0 end
redis.call('HSET', p .. ':alertdedupof', c.id, c.dedup)
redis.call('HSET', p .. ':alerts', c.id, c.json)
redis.call('ZADD', p .. ':alertsby', 0, c.member)
if c.tenant then redis.call('ZADD', p .. ':alertsby:t:' .. c.tenant, 0, c.member) end
if c.key then redis.call('ZADD', p .. ':alertsby:k:' .. c.key, 0, c.member) end
for _, d in ipairs(c.deliveries) do
  redis.call('HSET', p .. ':dlv:' .. d.id, 'a', d.a, 't', d.t, 's', d.s, 'at', d.at, 'n', d.n, 'c', d.c)
  redis.call('RPUSH', p .. ':alertdlv:' .. c.id, d.id)
  if d.s == 'pending' and d.n ~= '' then redis.call('ZADD', p .. ':dlvdue', d.n, d.id) end
end
return 1
