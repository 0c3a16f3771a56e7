-- wrk script for bench/run: optional request body, Connection: close, a request cap, and the
-- 99.9th latency percentile (wrk --latency prints only up to 99 %).
--   BENCH_BODY_BYTES=N   POST an N-byte body instead of GET
--   BENCH_CLOSE=1        send Connection: close (a new connection per request)
--   BENCH_MAX_REQUESTS=N each wrk thread stops after N responses (a fixed request count)
local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0")
if body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("a", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local seen = 0
if max_requests > 0 then
  response = function(status, headers, body)
    seen = seen + 1
    if seen >= max_requests then
      wrk.thread:stop()
    end
  end
end

done = function(summary, latency, requests)
  io.write(string.format("P99.9: %d\n", latency:percentile(99.9)))
end
