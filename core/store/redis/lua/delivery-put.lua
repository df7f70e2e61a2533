-- Replaces a stored delivery's state (ARGV[3]), attempts (ARGV[4], JSON) and next attempt
-- (ARGV[5], '' when none) and its place among the due ones; ARGV[1] is the prefix, ARGV[2] the
-- delivery's id. Answers 0 for an unknown id (nothing written), else 1.
local p = ARGV[1]
local key = p .. ':dlv:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 's', ARGV[3], 'at', ARGV[4], 'n', ARGV[5])
if ARGV[3] == 'pending' and ARGV[5] ~= '' then
  redis.call('ZADD', p .. ':dlvdue', ARGV[5], ARGV[2])
else
  redis.call('ZREM', p .. ':dlvdue', ARGV[2])
end
return 1
