-- wrk script for bench/scaling.ts: the keys of a file, one a line, each used once in file
-- order: with a cold cache, every request is a cache miss.
--   wrk -t1 -s sequential.lua URL -- KEYS_FILE
-- When the last key is answered, the thread stops and prints "pass done": wrk's main thread
-- sleeps for the whole -d duration whatever its threads do, so bench/scaling.ts answers that
-- line with SIGINT, on which wrk stops and reports over the pass alone. -d stays the bound.
local reqs = {}
local n = 0
local sent = 0
local answered = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", "/bench", { ["Authorization"] = "Bearer " .. line })
    end
  end
end

function request()
  if n == 0 then return wrk.format() end
  sent = sent + 1
  -- Requests still in flight at the end wrap around to the first keys (cache hits by then).
  return reqs[(sent - 1) % n + 1]
end

function response(status, headers, body)
  answered = answered + 1
  if answered == n then
    wrk.thread:stop()
    io.stdout:write("pass done\n")
    io.stdout:flush()
  end
end
