#!/usr/bin/env bash
# Configures and builds pulse-pipe into ${BUILD_DIR:-build}. Extra arguments go to cmake's configure step
# (e.g. -DPULSE_CUDA=OFF). Used by the README, .ci/run and the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build}"
cmake -S . -B "$build" "$@"
cmake --build "$build" -j "$(nproc)"
