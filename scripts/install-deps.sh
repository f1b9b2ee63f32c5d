#!/usr/bin/env bash
# Installs the Debian packages the build, tests and benchmarks need. Idempotent: a no-op when all are
# present. Shared by `make run`, `make test` and .ci/run.
set -euo pipefail
packages=(
  cmake g++ make pkg-config ccache
  libboost1.81-dev nlohmann-json3-dev libsqlite3-dev libspdlog-dev libcli11-dev libyaml-cpp-dev
  libexpected-dev libcurl4-openssl-dev libssl-dev libsodium-dev libjwt-dev clang-14 libclang-rt-14-dev libgtest-dev libbenchmark-dev wrk curl bc sqlite3
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
