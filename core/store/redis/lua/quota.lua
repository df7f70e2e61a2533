-- One operation on the quota balance KEYS[1] (core/quota.ts applyQuota, line by line):
-- ARGV = initial balance, refill amount ('' when it never refills), op (spend, refund, set,
-- add, read), amount, the start of the operation's period, and how many ms the stored balance
-- is kept from now ('' for ever). Answers {1 or 0 (a spend refused), the units left as a string}.
local initial = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local op = ARGV[3]
local amount = tonumber(ARGV[4])
local start = tonumber(ARGV[5])
local keep_ms = tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 'b', 'p')
local stored = s[1] ~= false
local balance = initial
local period = start
if stored then
  balance = tonumber(s[1])
  period = tonumber(s[2])
end
local changed = false
if refill and start > period then
  balance = refill
  period = start
  changed = true
end
local ok = 1
if op == 'spend' then
  if balance >= amount then
    balance = balance - amount
    if amount ~= 0 then changed = true end
  else
    ok = 0
  end
elseif op == 'refund' then
  if (not stored) or period ~= start then return {1, string.format('%d', balance)} end
  balance = balance + amount
  changed = true
elseif op == 'set' then
  balance = amount
  changed = true
elseif op == 'add' then
  -- MAX_BALANCE of core/quota.ts: a top-up stops at 10^12.
  balance = math.min(balance + amount, 1000000000000)
  changed = true
end
if changed then
  redis.call('HSET', KEYS[1], 'b', string.format('%d', balance), 'p', string.format('%d', period))
  if keep_ms then
    redis.call('PEXPIRE', KEYS[1], keep_ms)
  else
    redis.call('PERSIST', KEYS[1])
  end
end
return {ok, string.format('%d', balance)}
