-- How many live cache holders have not yet acknowledged invalidation ARGV[2]; members whose
-- membership lapsed (a process that died) are removed, with their acknowledgements.
local now = now_ms()
local members = redis.call('HGETALL', ARGV[1] .. ':members')
local lagging = 0
for i = 1, #members, 2 do
  if tonumber(members[i + 1]) < now then
    redis.call('HDEL', ARGV[1] .. ':members', members[i])
    redis.call('HDEL', ARGV[1] .. ':acks', members[i])
  elseif tonumber(redis.call('HGET', ARGV[1] .. ':acks', members[i]) or '0') < tonumber(ARGV[2]) then
    lagging = lagging + 1
  end
end
return lagging
