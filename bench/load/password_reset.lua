-- Scenario 3: password-reset request, POST /api/v1/password-resets, for the seeded accounts
-- (verified addresses: every request issues a token and mails a link).
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local reqs, n = {}, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for _, user in ipairs(c.lines("login_users.txt", id, nthreads)) do
    reqs[#reqs + 1] = wrk.format("POST", "/api/v1/password-resets", headers, '{"login":' .. c.json_string(user) .. '}')
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
