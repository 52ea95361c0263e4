-- Shared by the bench/load scenario scripts (loaded with dofile; BENCH_LUA is this folder).
-- BENCH_DATA is the folder of the data files bench/load/setup.py wrote.

local M = {}

M.data = os.getenv("BENCH_DATA") or "."

-- The lines of a data file that belong to this wrk thread (line i goes to thread i mod n), so
-- that single-use data (mfa token + recovery code pairs) is never sent twice.
function M.lines(name, id, nthreads)
  local out, i = {}, 0
  for line in io.lines(M.data .. "/" .. name) do
    if line ~= "" then
      if i % nthreads == id then out[#out + 1] = line end
      i = i + 1
    end
  end
  assert(#out > 0, name .. " has no lines for thread " .. id)
  return out
end

-- A name no other request of any run uses: KIND_RUN_THREAD_COUNTER. BENCH_RUN is a random
-- number bench/load/run draws for every wrk invocation (warm-up, first and second run), so a
-- second run, or a second benchmark on the same database, never collides with an earlier name.
-- Only digits vary: usernames must be unique ignoring look-alikes (UTS #39 skeletons), and
-- distinct digit strings between fixed separators never look alike.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
function M.unique_name(kind, thread_id, counter)
  return kind .. "_" .. run .. "_" .. thread_id .. "_" .. counter
end

function M.json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

-- Give every thread its index and the thread count, read back in init as the globals `id` and
-- `nthreads`. wrk runs setup and then init thread by thread, so the count comes from
-- BENCH_THREADS (bench/load/run sets it to wrk's -t).
local count = 0
function M.setup(thread)
  thread:set("id", count)
  thread:set("nthreads", tonumber(os.getenv("BENCH_THREADS") or "1"))
  count = count + 1
end

-- One machine-readable line for bench/load/run; latencies in milliseconds.
function M.done(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
      .. "non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.status, e.connect, e.read, e.write, e.timeout))
end

return M
