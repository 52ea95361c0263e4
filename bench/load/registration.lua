-- Write scenario: a registration burst, POST /api/v1/accounts (answers 201), a new username and
-- email address per request (see c.unique_name) and a password the policy accepts.
-- Registration hashes the password with argon2, so this scenario is argon2-bound.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local headers = { ["Content-Type"] = "application/json" }
local n = 0
function request()
  n = n + 1
  local name = c.unique_name("reg", id, n)
  local body = '{"username":' .. c.json_string(name)
    .. ',"email":' .. c.json_string(name .. "@example.test")
    .. ',"password":"orbit lantern mosaic 42"}'
  return wrk.format("POST", "/api/v1/accounts", headers, body)
end
