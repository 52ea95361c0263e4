-- Scenario 2: the recovery-code step, POST /api/v1/sessions/recovery-code. Every request sends
-- a fresh (mfa token, code) pair from BENCH_PAIRS (pairs_run.txt or pairs_warmup.txt); each is
-- used once. Should the pairs run out, the last one is sent again and answers 401, which the
-- run reports as non-2xx answers (and bench/load/run fails).
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = c.setup, c.done
local reqs, n = {}, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for _, line in ipairs(c.lines(os.getenv("BENCH_PAIRS"), id, nthreads)) do
    local token, code = line:match("^(%S+) (%S+)$")
    local body = '{"mfa_token":' .. c.json_string(token) .. ',"code":' .. c.json_string(code) .. '}'
    reqs[#reqs + 1] = wrk.format("POST", "/api/v1/sessions/recovery-code", headers, body)
  end
end
function request()
  if n < #reqs then n = n + 1 end
  return reqs[n]
end
