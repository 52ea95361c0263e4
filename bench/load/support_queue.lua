-- Scenario 5: the support queue, GET /api/v1/admin/recovery-requests (first page, 50 of the
-- seeded requests, oldest first) as the support user. One static request: no request() hook.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local f = assert(io.open(c.data .. "/support_token.txt"))
local token = f:read("*l")
f:close()
wrk.method = "GET"
wrk.path = "/api/v1/admin/recovery-requests"
wrk.headers["Authorization"] = "Bearer " .. token
