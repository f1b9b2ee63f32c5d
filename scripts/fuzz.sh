#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang-14 (ASan + UBSan) into build-fuzz/ and runs each
# for SECONDS_PER_TARGET seconds (argument, else $FUZZ_SECONDS, else 60), one after another, over a
# copy of its seed corpus (build-fuzz/corpus-run/<target>; fuzz/corpus/ is never written). Logs go
# to build-fuzz/logs/<target>.log, crashing inputs to build-fuzz/artifacts/<target>/.
#
# Exits non-zero when a target crashes, leaks, times out, runs out of memory or reports a sanitizer
# error; prints a summary table either way. Installs nothing: clang-14 and libclang-rt-14-dev (the
# libFuzzer and sanitizer runtimes) must be present.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-60}}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]  (a positive integer; got '$seconds')" >&2
  exit 2
fi
CXX_BIN="${FUZZ_CXX:-clang++-14}"
if ! command -v "$CXX_BIN" >/dev/null 2>&1; then
  echo "fuzz: $CXX_BIN not found. The fuzz targets need clang 14 with its libFuzzer and" >&2
  echo "fuzz: sanitizer runtimes; on Debian: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 1
fi

BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${FUZZ_JOBS:-2}"
cmake -S fuzz -B "$BUILD_DIR" -DCMAKE_CXX_COMPILER="$(command -v "$CXX_BIN")" >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"

# target:max_len (bytes)
targets=(job_spec_fuzz:65536 http_request_fuzz:65536 jwt_verify_fuzz:8192)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Besides libFuzzer's exit status: any sanitizer or invariant report in the log fails the target.
sanitizer_errors='ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|ERROR: libFuzzer'
sanitizer_errors+='|SUMMARY: UndefinedBehaviorSanitizer|FUZZ_CHECK failed'

# The value of libFuzzer's final "stat::NAME:   VALUE" line in a log, or nothing.
stat_value() {
  sed -nE "s/^stat::$1:[[:space:]]+([0-9]+).*/\1/p" "$2" | tail -1
}

mkdir -p "$BUILD_DIR/logs" "$BUILD_DIR/corpus-run" "$BUILD_DIR/artifacts"
failed=()
summary=()
for entry in "${targets[@]}"; do
  target="${entry%%:*}"
  max_len="${entry##*:}"
  binary="$BUILD_DIR/bin/$target"
  log="$BUILD_DIR/logs/$target.log"
  corpus="$BUILD_DIR/corpus-run/$target"
  artifacts="$BUILD_DIR/artifacts/$target"
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/corpus/"$target"/* "$corpus"/
  dict=()
  if [ -f "fuzz/$target.dict" ]; then
    dict=("-dict=fuzz/$target.dict")
  fi
  echo "fuzz: $target for ${seconds}s (log: $log)"
  rc=0
  "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len" -timeout=25 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$corpus" >"$log" 2>&1 || rc=$?

  status=ok
  if [ "$rc" -ne 0 ]; then
    status="FAILED (exit $rc)"
  elif grep -qE "$sanitizer_errors" "$log"; then
    status="FAILED (sanitizer report)"
  fi
  if [ "$status" != ok ]; then
    failed+=("$target")
    echo "fuzz: $target $status; the report:" >&2
    grep -m1 -A40 -E "$sanitizer_errors|==ERROR|deadly signal" "$log" >&2 || tail -40 "$log" >&2
    for artifact in "$artifacts"/*; do
      [ -e "$artifact" ] && echo "fuzz: reproduce with: $binary $artifact" >&2
    done
  fi

  execs=$(stat_value number_of_executed_units "$log")
  rate=$(stat_value average_exec_per_sec "$log")
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
  corpus_files=$(find "$corpus" -type f | wc -l)
  summary+=("$(printf '%-18s %-26s %12s %8s %7s %8s %7s' "$target" "$status" "${execs:--}" \
    "${rate:--}" "${cov:--}" "${ft:--}" "$corpus_files")")
done

echo
printf '%-18s %-26s %12s %8s %7s %8s %7s\n' target status executions exec/s cov ft corpus
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (logs in $BUILD_DIR/logs/, inputs in $BUILD_DIR/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a finding"
