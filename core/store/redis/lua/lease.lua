-- Takes or renews the lease KEYS[1] for holder ARGV[1], for ARGV[2] ms: 1 while ARGV[1]
-- holds it, 0 while another does.
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
