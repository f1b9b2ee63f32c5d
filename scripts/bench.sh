#!/usr/bin/env bash
# Benchmarks: durable submits over HTTP (wrk, keep-alive, 1/16/64 clients against a real
# `gpuorch serve` with a fresh SQLite store), then the store's group-commit microbenchmark.
# Load goes to 127.0.0.1 only. Usage: scripts/bench.sh [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/bin
SECS=${1:-5}
PORT=${GPUORCH_BENCH_PORT:-58085}
DATA=$(mktemp -d /tmp/gpuorch-bench-XXXXXX)
trap 'kill $SVC 2>/dev/null || true; wait $SVC 2>/dev/null || true; rm -rf "$DATA"' EXIT

# No GPUs: submitted jobs stay queued, so the figure is the API + durable store path alone. Every
# submit is authenticated with the admin's API token (written on first start). The rate limits and
# the queued-jobs quota are lifted: by design they would cap one user at 100 requests per second
# and 10,000 queued jobs, and this measures the submit path, not the limits.
GPUORCH_LOCAL_GPUS="" GPUORCH_LOG_LEVEL=warn GPUORCH_RATE_LIMIT_USER_RPS=0 \
  GPUORCH_RATE_LIMIT_ADDRESS_RPS=0 GPUORCH_QUOTA_MAX_QUEUED_JOBS=100000000 "$BIN/gpuorch" serve --listen 127.0.0.1:$PORT \
  --data-dir "$DATA" > "$DATA/service.out" 2>&1 &
SVC=$!
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break
  sleep 0.05
done
export GPUORCH_BENCH_TOKEN
GPUORCH_BENCH_TOKEN=$(cat "$DATA/admin.token")

echo "== durable submits over HTTP (SQLite WAL, synchronous=FULL, group commit), ${SECS}s per run"
printf "%-8s %10s %10s %10s %10s %10s %8s\n" clients submits/s p50_ms p90_ms p99_ms max_ms errors
for c in 1 16 64; do
  threads=$(( c < 2 ? 1 : 2 ))
  line=$(wrk -t$threads -c$c -d${SECS}s --latency -s bench/submit.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
  eval "$(echo "$line" | sed 's/^RESULT //')"
  printf "%-8s %10s %10.2f %10.2f %10.2f %10.2f %8s\n" "$c" "$rps" \
    "$(echo "$p50_us/1000" | bc -l)" "$(echo "$p90_us/1000" | bc -l)" \
    "$(echo "$p99_us/1000" | bc -l)" "$(echo "$max_us/1000" | bc -l)" "$errors"
done
stored=$(sqlite3 "$DATA/gpuorch.db" "select count(*) from jobs" 2>/dev/null || echo "?")
echo "jobs in the store after the runs: $stored"

if [ -x "$BIN/security_bench" ]; then
  echo
  echo "== authentication, rate limiting, password hashing (Google Benchmark)"
  "$BIN/security_bench" --benchmark_min_time=0.2
fi

if [ -x "$BIN/store_bench" ]; then
  echo
  echo "== store group commit (Google Benchmark)"
  "$BIN/store_bench" --benchmark_min_time=0.5
fi

if [ -x "$BIN/optimizer_bench" ]; then
  echo
  echo "== optimizer: one decision over 50,000 offers from three providers (Google Benchmark)"
  "$BIN/optimizer_bench" --benchmark_min_time=0.2
fi
