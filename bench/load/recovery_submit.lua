-- Write scenario: recovery-request submission, POST /api/v1/recovery-requests (answers 202),
-- with the body setup.py seeds with. Every request names its own username and contact address
-- (see c.unique_name), so that nothing is shared between requests, wrk threads or runs.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local headers = { ["Content-Type"] = "application/json" }
local n = 0
function request()
  n = n + 1
  local name = c.unique_name("lost", id, n)
  local body = '{"username":' .. c.json_string(name)
    .. ',"contact_email":' .. c.json_string(name .. "@example.org")
    .. ',"reason":"I lost my phone with the authenticator app and never saved my codes."'
    .. ',"recovery_codes_lost":true,"code_of_conduct_accepted":true'
    .. ',"processing_time_acknowledged":true}'
  return wrk.format("POST", "/api/v1/recovery-requests", headers, body)
end
