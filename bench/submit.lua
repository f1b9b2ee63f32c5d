-- wrk script: durable job submits (POST /api/v1/jobs/submit) over keep-alive connections.
wrk.method = "POST"
wrk.path = "/api/v1/jobs/submit"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("GPUORCH_BENCH_TOKEN") or "")
wrk.body = '{"name":"bench","job_type":"custom","priority":1,' ..
           '"config":{"gpu_count":1,"command":["true"],"env":{"MODE":"bench"}}}'

local created = 0
local other = 0

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
