#!/usr/bin/env bash
# STYLE.md section 6: outside src/core/, nothing reads a clock, sleeps, draws rand() or reads the
# environment directly; time, randomness and configuration come in through core/ interfaces.
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(grep -rnE 'std::chrono::(system|steady|high_resolution)_clock::now|sleep_for|getenv\(|[^a-z_]rand\(' \
         src --include=*.cc --include=*.h | grep -v '^src/core/' || true)
if [ -n "$hits" ]; then
  echo "direct clock, sleep, rand or getenv outside src/core/:"
  echo "$hits"
  exit 1
fi
echo "style check: no direct clock, sleep, rand or getenv outside src/core/"
