-- Fragment prepended to commit and expiring-index (see ../scripts.ts): the one place that keeps
-- the expiring-key index, the sorted set <p>:expiring of members (expires_at digits, ':', id;
-- core/store/query.ts timeMember) ranged by lex, with each key's member in the hash <p>:expm.
-- A revoked key, or one without expires_at, has no member ('').
local function set_expiring(p, id, member)
  local old = redis.call('HGET', p .. ':expm', id)
  if old and old ~= member then redis.call('ZREM', p .. ':expiring', old) end
  if member ~= '' then
    redis.call('ZADD', p .. ':expiring', 0, member)
    redis.call('HSET', p .. ':expm', id, member)
  elseif old then
    redis.call('HDEL', p .. ':expm', id)
  end
end
