-- wrk script: each connection waits about INTERVAL_MS between a response and its next request
-- (uniform in 0.5-1.5 x, so connections do not march in step), which holds the load near
-- connections / INTERVAL requests per second, well below what the target can take.
--   wrk -c50 -s bench/paced.lua URL -- INTERVAL_MS
local interval = 10

function init(args)
  interval = tonumber(args[1]) or interval
end

function delay()
  return math.floor(interval * (0.5 + math.random()) + 0.5)
end
