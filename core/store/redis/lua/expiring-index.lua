-- Builds the expiring-key index for keys written before it existed (an upgraded deployment):
-- ARGV[1] is the prefix, then id, version and member per key, as read a moment ago. A key whose
-- version moved since was indexed by the commit that moved it, and is left alone. ARGV[2] = ''
-- alone marks the index complete.
local p = ARGV[1]
if #ARGV == 2 and ARGV[2] == '' then
  redis.call('SET', p .. ':expiring:built', '1')
  return 1
end
for i = 2, #ARGV, 3 do
  if redis.call('HGET', p .. ':ver', ARGV[i]) == ARGV[i + 1] then set_expiring(p, ARGV[i], ARGV[i + 2]) end
end
return 1
