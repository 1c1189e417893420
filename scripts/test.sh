#!/usr/bin/env bash
# Builds pulse-pipe and runs the whole test suite (the README's second quick-start command).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
