-- Adds usage deltas: ARGV[1] is the prefix, then id, requests, errors, first use, last use,
-- repeated. Keys that do not exist (any more) are skipped.
local p = ARGV[1]
for i = 2, #ARGV, 5 do
  add_usage(p, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
return 1
