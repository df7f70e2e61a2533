-- Fragment prepended to commit, usage, ingest, by-hash and by-ids (see ../scripts.ts): the one
-- place that knows how a key's usage is kept, as the hash <p>:usage:<id> of r (requests),
-- e (errors) and l (last use, ms). p is the deployment's prefix, {tag} included.

-- A key's counters as the store answers them: requests and errors ('0' when none yet) and
-- the last use ('' when never).
local function usage_of(p, id)
  local u = redis.call('HMGET', p .. ':usage:' .. id, 'r', 'e', 'l')
  return u[1] or '0', u[2] or '0', u[3] or ''
end

-- Adds one delta to the counters of key id, if the key exists; its first use appends a
-- first_used event. The values are passed to Redis as given (strings from ARGV, numbers from
-- cjson), so each caller keeps the exactness of its own encoding.
local function add_usage(p, id, requests, errors, first_at, last_at)
  if redis.call('HEXISTS', p .. ':ver', id) ~= 1 then return end
  local u = p .. ':usage:' .. id
  local last = redis.call('HGET', u, 'l')
  if not last then
    redis.call('RPUSH', p .. ':events:' .. id, cjson.encode({key_id = id, type = 'first_used', scheduled_at = cjson.null, at = tonumber(first_at), actor = 'gateway', detail = {}}))
  end
  redis.call('HINCRBY', u, 'r', requests)
  redis.call('HINCRBY', u, 'e', errors)
  if not last or tonumber(last) < tonumber(last_at) then redis.call('HSET', u, 'l', last_at) end
end
