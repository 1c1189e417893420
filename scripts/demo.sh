#!/usr/bin/env bash
# Builds pulse-pipe, runs the PULSE protocol on the embedded world (the README's first quick-start command)
# and prints the report. Another manifest can be given: scripts/demo.sh manifests/pulse.lua
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
manifest=${1:-manifests/quick.lua}
build/pulse-pipe run "$manifest"
build/pulse-pipe cat report markdown
