-- The shared rate limiter's one script (core/shared-limiter.ts), with clock.lua in front.
-- Takes up to ARGV[3] tokens from the bucket KEYS[1] (capacity ARGV[1], ARGV[2] tokens per ms),
-- refilled by Redis's own clock so that gateway clocks do not matter. Answers the tokens
-- granted and those left. The bucket expires once it would be full again.
local cap = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local now = now_ms()
local b = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens = tonumber(b[1])
local last = tonumber(b[2])
if not tokens then
  tokens = cap
  last = now
end
if now > last then tokens = math.min(cap, tokens + (now - last) * perMs) end
if tokens > cap then tokens = cap end
local granted = 0
if tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'l', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / perMs) + 1000)
return {granted, tostring(tokens)}
