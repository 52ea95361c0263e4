-- Scenario 1: password login, POST /api/v1/sessions, cycling over the seeded accounts.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local reqs, n = {}, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for _, user in ipairs(c.lines("login_users.txt", id, nthreads)) do
    local body = '{"login":' .. c.json_string(user) .. ',"password":"orbit lantern mosaic 42"}'
    reqs[#reqs + 1] = wrk.format("POST", "/api/v1/sessions", headers, body)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
