#!/usr/bin/env bash
# Builds pulse-pipe and runs the default manifest (the README's first quick-start command).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/pulse-pipe run manifests/quick.lua "$@"
