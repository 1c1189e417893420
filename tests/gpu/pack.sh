#!/usr/bin/env bash
# tests/gpu/pack.sh: builds the CUDA binaries on this (GPU-less) machine and packs them, with the shared
# libraries a bare CUDA image may lack, into .gpu/bundle.tar.xz, for tests/gpu/check.sh on a lent GPU
# machine where nothing can be installed. The CUDA runtime and cuBLAS are not packed: the GPU machine has its
# own (CUDA 13, matching nvcc here). .gpu/ is ignored by git (.git/info/exclude); pass it as `carry`.
#   tests/gpu/pack.sh            # BUILD=build-cuda, CUDA architectures 80;90
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-cuda}
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S "$ROOT" -B "$BUILD" -DPULSE_CUDA=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="80;90" \
    >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target pulse-pipe test_engine_cuda bench_train
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
cp "$BUILD/pulse-pipe" "$BUILD/tests/test_engine_cuda" "$BUILD/bench/bench_train" "$STAGE/bin/"
strip "$STAGE/bin/"*
# Every library the binaries load, except the C runtime and the CUDA libraries, which the GPU image has in
# versions at least as new (older copies of those would shadow them).
for b in "$STAGE/bin/"*; do ldd "$b"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s|libresolv|libcuda[^/]*|libcublas[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done
mkdir -p "$ROOT/.gpu"
# The CPU side of check.sh's quick-manifest comparison, made here (it does not need the GPU's time).
S=$(mktemp -d)
"$BUILD/pulse-pipe" --store "$S/s" run "$ROOT/manifests/quick.lua" >/dev/null
"$BUILD/pulse-pipe" --store "$S/s" cat report csv >"$ROOT/.gpu/quick_cpu.csv"
rm -rf "$S"
tar -C "$STAGE" -cJf "$ROOT/.gpu/bundle.tar.xz" bin lib
grep -qx '/.gpu/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.gpu/' >>"$ROOT/.git/info/exclude"
ls -l "$ROOT/.gpu/bundle.tar.xz"
