-- wrk script for bench/scaling.ts: every request carries a key picked at random from a file
-- of keys, one a line.   wrk -s random.lua URL -- KEYS_FILE
-- The requests are built once, in init; request() only picks one.
local reqs = {}
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", "/bench", { ["Authorization"] = "Bearer " .. line })
    end
  end
  math.randomseed(os.time())
end

function request()
  -- wrk also calls request() once before init to check the script: answer it a plain request.
  if n == 0 then return wrk.format() end
  return reqs[math.random(n)]
end
