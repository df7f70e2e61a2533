-- One usage batch, at most once: ARGV[1] is the prefix, ARGV[2] the batch id (remembered a
-- day; '' for none), ARGV[3] the batch as JSON, ARGV[4] how many error samples to keep.
-- Applies the per-key deltas as usage does, adds to the aggregate buckets (hashes of counters,
-- each expiring after its retention) and appends the error samples (a list trimmed to the
-- newest ARGV[4]). Answers 0 for a batch already applied.
local p = ARGV[1]
if ARGV[2] ~= '' then
  if not redis.call('SET', p .. ':batch:' .. ARGV[2], '1', 'NX', 'PX', 86400000) then return 0 end
end
local b = cjson.decode(ARGV[3])
for _, d in ipairs(b.keys) do
  add_usage(p, d.key_id, d.requests, d.errors, d.first_at, d.last_at)
end
for _, k in ipairs(b.buckets) do
  local key = p .. ':' .. k.name
  for name, v in pairs(k.fields) do redis.call('HINCRBYFLOAT', key, name, v) end
  local ttl = redis.call('PTTL', key)
  if ttl < k.ttl_ms then redis.call('PEXPIRE', key, k.ttl_ms) end
end
if #b.errors > 0 then
  for _, e in ipairs(b.errors) do redis.call('RPUSH', p .. ':errors', cjson.encode(e)) end
  redis.call('LTRIM', p .. ':errors', -tonumber(ARGV[4]), -1)
end
return 1
