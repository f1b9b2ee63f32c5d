#!/usr/bin/env bash
# Copies the service binaries with every shared library they load, and the dynamic loader, into DIR,
# so they run on a Linux x86-64 machine that lacks this project's packages:
#   DIR/ld-linux-x86-64.so.2 --library-path DIR DIR/gpuorch serve
set -euo pipefail
DIR=${1:?usage: make-bundle.sh DIR}
BIN=${BUILD_DIR:-build}/bin
mkdir -p "$DIR"
cp "$BIN/gpuorch" "$BIN/gpuorch-shim" "$DIR/"
ldd "$BIN/gpuorch" | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}' | while read -r lib; do
  cp -L "$lib" "$DIR/"
done
