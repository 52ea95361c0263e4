-- Reference: GET /health/live, the cheapest answer the server gives (no database, no auth).
-- The ratio targets of the other scenarios are fractions of this one's req/s on the same
-- backend's server. One static request: no request() hook.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
wrk.method = "GET"
wrk.path = "/health/live"
