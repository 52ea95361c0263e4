-- Scenario 6: an online guesser. Wrong passwords at ONE account (bench_target) from every
-- connection, POST /api/v1/sessions. Counts the answers: 401 = evaluated against the limit (a
-- password verification ran), 429 = refused before any verification. bench/load/run starts the
-- server of this scenario with the per-account login limit at its default (or WRONG_PASSWORDS_LIMIT)
-- and no warm-up, so exactly the limit's worth of 401s is the target.
local c = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local threads = {}
function setup(thread)
  c.setup(thread)
  threads[#threads + 1] = thread
end
local reqs, n = {}, 0
evaluated, refused, other = 0, 0, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local user = c.lines("target_user.txt", 0, 1)[1]
  for i = 1, 16 do
    local body = '{"login":' .. c.json_string(user) .. ',"password":"wrong guess ' .. id .. '-' .. i .. '"}'
    reqs[#reqs + 1] = wrk.format("POST", "/api/v1/sessions", headers, body)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
function response(status, headers, body)
  if status == 401 then
    evaluated = evaluated + 1
  elseif status == 429 then
    refused = refused + 1
  else
    other = other + 1
  end
end
function done(summary, latency, requests)
  c.done(summary, latency, requests)
  local e, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    e = e + t:get("evaluated")
    r = r + t:get("refused")
    o = o + t:get("other")
  end
  io.write(string.format("GUESSES evaluated=%d refused=%d other=%d\n", e, r, o))
end
