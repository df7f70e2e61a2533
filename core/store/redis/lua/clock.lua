-- Fragment prepended to member, lagging and take (see ../scripts.ts): memberships and the shared
-- rate limiter's buckets are judged by Redis's clock, in ms, so that gateway clocks do not matter.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
