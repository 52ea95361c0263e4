-- Scenario 4: a requester reads their recovery request, GET /api/v1/recovery-requests/{id}
-- with X-Tracking-Token, cycling over the seeded requests.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local reqs, n = {}, 0
function init(args)
  for _, line in ipairs(c.lines("requests.txt", id, nthreads)) do
    local rid, token = line:match("^(%S+) (%S+)$")
    reqs[#reqs + 1] = wrk.format("GET", "/api/v1/recovery-requests/" .. rid, { ["X-Tracking-Token"] = token })
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
