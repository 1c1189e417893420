#!/bin/sh
# launch.sh IN.cu OUT.cpp: an engine/cuda/ source as cudaemu compiles it: each kernel launch
# `k<<<grid, block>>>(args)` becomes `cudaemu::launch(k, "k", __LINE__, grid, block)(args)` (one launch per
# line, as the sources write them; k may be a template's instance, `k<float, uint16_t>`), and a #line keeps
# compiler messages on the original file.
set -eu
{
    printf '#line 1 "%s"\n' "$1"
    sed -E 's/([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_:, ]+>)?)<<<(.*)>>>\(/cudaemu::launch(\1, "\1", __LINE__, \3)(/' "$1"
} >"$2.tmp"
if grep -n '<<<' "$2.tmp" >&2; then
    echo "launch.sh: $1: a launch this script cannot rewrite" >&2
    exit 1
fi
mv "$2.tmp" "$2"
