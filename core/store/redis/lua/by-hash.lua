-- A key's record JSON and usage by lookup hash (ARGV[2]), in one round trip; false when none.
local p = ARGV[1]
local id = redis.call('GET', p .. ':hash:' .. ARGV[2])
if not id then return false end
local json = redis.call('GET', p .. ':key:' .. id)
if not json then return false end
local r, e, l = usage_of(p, id)
return {json, r, e, l}
