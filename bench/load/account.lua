-- Reference: GET /api/v1/account with a bearer access token, cycling over one token per seeded
-- login account (access_tokens.txt, minted by `setup.py tokens` right before this scenario:
-- access tokens live ACCESS_TOKEN_TTL, 15 minutes by default).
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local reqs, n = {}, 0
function init(args)
  for _, token in ipairs(c.lines("access_tokens.txt", id, nthreads)) do
    reqs[#reqs + 1] = wrk.format("GET", "/api/v1/account", { ["Authorization"] = "Bearer " .. token })
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
