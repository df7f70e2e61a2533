-- wrk script: every request is a POST /v1/keys/verify of the key given after `--`, for the
-- benchmark's route (GET /bench), as a service checking a key before serving it would send.
--   wrk -s bench/verify.lua http://127.0.0.1:PORT/v1/keys/verify -- KEY
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"key":"' .. args[1] .. '","method":"GET","path":"/bench"}'
end
