#!/usr/bin/env bash
# tests/gpu/check.sh: everything a lent GPU machine is for, in one call (docs/performance.md, issue notes):
#   1. the CPU-vs-CUDA parity and determinism test (tests/unit/test_engine_cuda.c);
#   2. the quick manifest end to end with --device cuda and with --device cpu, the reports compared; then
#      the micro protocol the same way in fp32, bf16 and bf16-act (tests/cli/cuda_device.sh);
#   3. the GPU benchmark (bench/gpu.sh): LoRA steps on 7B- and 13B-shaped LLaVA, this engine against PyTorch;
#   4. where the engine's 13B bf16 step goes (bench_train --profile: the time per operation);
#   5. the 13B bf16 step once more with PULSE_CUDA_SYNC=1 (a wait after every operation, as before session
#      12): against step 3's engine row, what asynchronous operations gained.
# Then a short table. Binaries come from .gpu/bundle.tar.xz when present (tests/gpu/pack.sh, built on a
# machine without a GPU; the GPU image has no build dependencies and no network), else it configures and
# builds build-cuda here. Every step has a timeout, so one hang cannot eat the device budget.
#   bash tests/gpu/check.sh            # OUT=/path keeps the logs (default: a temporary folder)
#   SKIP_QUICK=1 SKIP_MICRO=1 SKIP_BENCH=1 SKIP_PROFILE=1 SKIP_SYNC=1 bash tests/gpu/check.sh
#   CPU_CSV=.gpu/quick_cpu.csv BENCH_BUDGET=240 bash tests/gpu/check.sh   # what a lent machine runs
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOGS=${OUT:-$(mktemp -d)}
mkdir -p "$LOGS"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }

if [ -f "$ROOT/.gpu/bundle.tar.xz" ]; then
    BIN=/tmp/pulse-gpu
    rm -rf "$BIN" && mkdir -p "$BIN" && tar -C "$BIN" -xJf "$ROOT/.gpu/bundle.tar.xz"
    export LD_LIBRARY_PATH="$BIN/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    PIPE=$BIN/bin/pulse-pipe PARITY=$BIN/bin/test_engine_cuda BENCH=$BIN/bin/bench_train
else
    B=${BUILD:-$ROOT/build-cuda}
    cmake -S "$ROOT" -B "$B" -DPULSE_CUDA=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null &&
        cmake --build "$B" -j"$(nproc)" --target pulse-pipe test_engine_cuda bench_train >"$LOGS/build.log" 2>&1 ||
        { tail -30 "$LOGS/build.log"; echo "check: build failed"; exit 1; }
    PIPE=$B/pulse-pipe PARITY=$B/tests/test_engine_cuda BENCH=$B/bench/bench_train
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "check: binaries ready at $(elapsed) s"

# 1. parity
parity=FAIL
PULSE_TEST_DATA=$ROOT/tests/data timeout 90 "$PARITY" >"$LOGS/parity.log" 2>&1 && parity=pass
grep -v '^ok' "$LOGS/parity.log" | tail -60
echo "check: parity $parity at $(elapsed) s"

# 2. the quick manifest on both devices
quick=skipped
if [ -z "${SKIP_QUICK:-}" ]; then
    S=$(mktemp -d)
    t1=$(date +%s)
    timeout 150 "$PIPE" --store "$S/cuda" run "$ROOT/manifests/quick.lua" --device cuda >"$LOGS/quick_cuda.log" 2>&1
    rc_cuda=$?
    t2=$(date +%s)
    # The CPU side: a report made elsewhere (CPU_CSV, e.g. .gpu/quick_cpu.csv from pack.sh) saves device time.
    rc_cpu=0
    if [ -n "${CPU_CSV:-}" ]; then
        cp "$CPU_CSV" "$LOGS/quick_cpu.csv"
    else
        timeout 120 "$PIPE" --store "$S/cpu" run "$ROOT/manifests/quick.lua" --threads "$(nproc)" \
            >"$LOGS/quick_cpu.log" 2>&1 && "$PIPE" --store "$S/cpu" cat report csv >"$LOGS/quick_cpu.csv"
        rc_cpu=$?
    fi
    t3=$(date +%s)
    tail -3 "$LOGS/quick_cuda.log"
    if [ $rc_cuda -eq 0 ] && [ $rc_cpu -eq 0 ]; then
        "$PIPE" --store "$S/cuda" cat report csv >"$LOGS/quick_cuda.csv"
        python3 "$ROOT/tests/gpu/compare_reports.py" "$LOGS/quick_cpu.csv" "$LOGS/quick_cuda.csv" && quick=pass || quick=FAIL
    else
        quick="FAIL (rc cuda $rc_cuda, cpu $rc_cpu)"
    fi
    echo "quick manifest: cuda $((t2 - t1)) s, cpu $((t3 - t2)) s${CPU_CSV:+ (report made elsewhere)}"
    rm -rf "$S"
fi
echo "check: quick $quick at $(elapsed) s"

# 2b. the micro protocol on both devices in fp32, bf16 and bf16-act (bf16 products, frozen-weight copies and
# bf16 activations through the whole pipeline, which nothing else here runs on the GPU; on the CPU emulator in
# CI: tests/cudaemu)
micro=skipped
if [ -z "${SKIP_MICRO:-}" ]; then
    PULSE_BIN=$PIPE PULSE_SRC=$ROOT timeout 240 bash "$ROOT/tests/cli/cuda_device.sh" >"$LOGS/micro.log" 2>&1 &&
        micro=pass || micro=FAIL
    grep -E 'cuda_device:|FAIL|Error' "$LOGS/micro.log" | tail -5
fi
echo "check: micro $micro at $(elapsed) s"

# 3. the benchmark
bench=skipped
if [ -z "${SKIP_BENCH:-}" ]; then
    SHAPES=${SHAPES:-"13b 7b"} BENCH_BIN=$BENCH OUT=$LOGS BUDGET=${BENCH_BUDGET:-240} timeout $((${BENCH_BUDGET:-240} + 20)) bash "$ROOT/bench/gpu.sh" >"$LOGS/bench.log" 2>&1 && bench=done || bench=FAIL
    cat "$LOGS/bench.log" | tail -40
fi

# 4. the profile of one 13B bf16 step (every op synchronises, so each op's time is its own)
profile=skipped
if [ -z "${SKIP_PROFILE:-}" ]; then
    timeout 120 "$BENCH" --shape 13b --device cuda --dtype bf16 --steps 1 --warmup 1 --profile \
        --threads "$(nproc)" >"$LOGS/profile.log" 2>&1 && profile=done || profile=FAIL
    tail -40 "$LOGS/profile.log"
fi
echo "check: profile $profile at $(elapsed) s"

# 5. the same step with a wait after every operation; step 3's JSONL has the asynchronous one
step_ms() { python3 -c 'import json,sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
ms = [r["step_ms"] for r in rows if r.get("impl") == "engine" and r.get("shape") == "13b" and r.get("dtype") == "bf16" and "step_ms" in r]
print(ms[-1] if ms else "-")' "$1" 2>/dev/null || echo -; }
sync_cmp=skipped
if [ -z "${SKIP_SYNC:-}" ]; then
    PULSE_CUDA_SYNC=1 timeout 120 "$BENCH" --shape 13b --device cuda --dtype bf16 --steps 2 --warmup 1 \
        --threads "$(nproc)" >"$LOGS/sync_each.jsonl" 2>"$LOGS/sync_each.err" &&
        sync_cmp="async $(step_ms "$LOGS/bench_gpu.jsonl") ms, a wait per op $(step_ms "$LOGS/sync_each.jsonl") ms" ||
        sync_cmp=FAIL
fi
echo "check: sync comparison $sync_cmp at $(elapsed) s"

echo
echo "| check | result |"
echo "| --- | --- |"
echo "| parity (CPU vs CUDA, determinism) | $parity |"
echo "| quick manifest, cuda vs cpu | $quick |"
echo "| micro protocol, cuda vs cpu, fp32, bf16, bf16-act | $micro |"
echo "| benchmark | $bench |"
echo "| 13B bf16 step profile | $profile |"
echo "| 13B bf16 step, async vs PULSE_CUDA_SYNC=1 | $sync_cmp |"
echo "| total | $(elapsed) s |"
[ "$parity" = pass ]
