#!/usr/bin/env bash
# bench/run.sh: builds bench_train if needed, runs this engine and PyTorch (transformers + PEFT) on each shape
# RUNS times, and prints the medians as a table with ratios (bench/README.md).
#   bench/run.sh                      # all shapes, threads = nproc, 3 runs each
#   THREADS=2 RUNS=5 SHAPES=tiny STEPS=5 bench/run.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
PY=${PY:-$ROOT/.venv/bin/python}
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-3}
SHAPES=${SHAPES:-"tiny 100m"}
STEPS=${STEPS:-3}
# OpenBLAS 0.3.21 does not recognise this CPU and falls back to a slow kernel unless told its core type
# before the process starts. Only the engine uses OpenBLAS; torch runs with its own BLAS (MKL / oneDNN).
CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}

if [ ! -x "$BUILD/bench/bench_train" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DPULSE_CUDA=OFF >/dev/null
fi
cmake --build "$BUILD" --target bench_train -j"$THREADS" >/dev/null

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for shape in $SHAPES; do
    "$BUILD/bench/bench_train" --shape "$shape" --dump-config "$OUT/$shape.json"
    case $shape in
    tiny) args="--batch 8 --seq 96 --lora-r 0" ;;
    100m) args="--batch 4 --seq 256 --lora-r 16" ;;
    esac
    for run in $(seq "$RUNS"); do
        echo "# $shape run $run/$RUNS" >&2
        OPENBLAS_CORETYPE=$CORETYPE "$BUILD/bench/bench_train" --shape "$shape" --threads "$THREADS" \
            --steps "$STEPS" >>"$OUT/results.jsonl"
        env -u OPENBLAS_CORETYPE "$PY" -W ignore "$ROOT/bench/torch_train.py" --config "$OUT/$shape.json" \
            --shape "$shape" --threads "$THREADS" --steps "$STEPS" $args >>"$OUT/results.jsonl"
    done
done

cat "$OUT/results.jsonl" >&2
"$PY" - "$OUT/results.jsonl" "$CORETYPE" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda xs: statistics.median(xs)
print(f"engine: OPENBLAS_CORETYPE={sys.argv[2]}; torch: its own BLAS; medians of {len(rows) // 2 // len({r['shape'] for r in rows})} runs")
print("| shape | step | threads | batch x seq | engine ms | torch ms | engine tok/s | torch tok/s | engine/torch speed"
      " | GFLOP/step | engine GFLOP/s | torch GFLOP/s | sgemm peak GFLOP/s | engine % peak | torch % peak"
      " | engine maxrss MB | torch maxrss MB |")
print("|" + "---|" * 17)
for shape in dict.fromkeys(r["shape"] for r in rows):
    e = [r for r in rows if r["shape"] == shape and r["impl"] == "engine"]
    t = [r for r in rows if r["shape"] == shape and r["impl"] == "torch"]
    ems, tms = med([r["step_ms"] for r in e]), med([r["step_ms"] for r in t])
    gf, peak = e[0]["gflop_step"], med([r["peak_gflops"] for r in e])
    eg, tg = gf / ems * 1e3, gf / tms * 1e3
    step = "full" if e[0]["trainable"] == e[0]["params"] else f"LoRA ({e[0]['trainable']:,} trainable)"
    print(f"| {shape} | {step} | {e[0]['threads']} | {e[0]['batch']} x {e[0]['seq']} | {ems:.1f} | {tms:.1f}"
          f" | {e[0]['batch'] * e[0]['seq'] / ems * 1e3:.0f} | {t[0]['batch'] * t[0]['seq'] / tms * 1e3:.0f}"
          f" | {tms / ems:.2f}x | {gf:.1f} | {eg:.1f} | {tg:.1f} | {peak:.1f} | {100 * eg / peak:.0f}%"
          f" | {100 * tg / peak:.0f}% | {med([r['maxrss_mb'] for r in e]):.0f} | {med([r['maxrss_mb'] for r in t]):.0f} |")
PYEOF
