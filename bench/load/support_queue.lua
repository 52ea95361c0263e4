-- Scenario 5: the support queue, GET /api/v1/admin/recovery-requests (the first page: all 20
-- seeded requests, oldest first, about 12 KB) as the support user. One static request: no
-- request() hook. (setup.py --requests sets the queue's length.)
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local f = assert(io.open(c.data .. "/support_token.txt"))
local token = f:read("*l")
f:close()
wrk.method = "GET"
wrk.path = "/api/v1/admin/recovery-requests"
wrk.headers["Authorization"] = "Bearer " .. token
