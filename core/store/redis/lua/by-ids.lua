-- Records (and usage) by id, ids from ARGV[2] on: four values per id, the first '' when
-- there is no such key.
local p = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local json = redis.call('GET', p .. ':key:' .. ARGV[i])
  local r, e, l = usage_of(p, ARGV[i])
  table.insert(out, json or '')
  table.insert(out, r)
  table.insert(out, e)
  table.insert(out, l)
end
return out
