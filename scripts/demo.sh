#!/usr/bin/env bash
# Builds pulse-pipe, runs the PULSE protocol on the embedded world (the README's first quick-start command)
# and prints the report. Another manifest can be given: scripts/demo.sh manifests/pulse.lua
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
manifest=${1:-manifests/quick.lua}
# two stages at a time once their inputs are done (the same results as one at a time, sooner)
build/pulse-pipe run "$manifest" --jobs 2
build/pulse-pipe cat report markdown
