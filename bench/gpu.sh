#!/usr/bin/env bash
# bench/gpu.sh: the GPU benchmark (bench/README.md). On a machine with an NVIDIA GPU, a CUDA build of
# bench_train (configured with -DPULSE_CUDA=ON and built already) and python3 with torch, transformers and
# peft: measures the GPU's dense matmul peak (torch), then for each shape runs this engine and torch in bf16
# (the engine also with bf16 activations, --dtype bf16-act), then both in fp32 (no TF32; last, so that a
# tight budget drops them first), and prints a Markdown table.
# Every run has a time limit, so one hang cannot eat the rest; a run that fails or times out is a row saying
# so.
#   bench/gpu.sh              # BUILD=build-cuda SHAPES="7b 13b" STEPS=2 WARMUP=1 TIMEOUT=150 BUDGET=300
#   SHAPES=7b STEPS=1 TIMEOUT=120 bench/gpu.sh
#   DEVICE=cpu PEAK_N=512 SHAPES=tiny BUILD=build-bench PY=.venv/bin/python bench/gpu.sh
# (the last one checks the script itself on a machine without a GPU; its numbers mean nothing).
# The raw JSON lines go to ${OUT:-/tmp}/bench_gpu.jsonl, each run's output and stderr to
# ${OUT:-/tmp}/bench_gpu_logs/, the table to ${OUT:-/tmp}/bench_gpu.md as well.
set -uo pipefail # not -e: a failed run is recorded and the next one runs
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build-cuda}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PY=${PY:-python3}
SHAPES=${SHAPES:-"7b 13b"}
STEPS=${STEPS:-2}     # measured steps (the median is reported) ...
WARMUP=${WARMUP:-1}   # ... after this many untimed ones
# the engine fills its random weights with this many threads (bench_train takes 1..64); torch's CPU side
THREADS=${THREADS:-$(($(nproc) < 64 ? $(nproc) : 64))}
TIMEOUT=${TIMEOUT:-150}      # seconds per run at most (a 13B fp32 step takes seconds, its setup tens)
BUDGET=${BUDGET:-300}        # seconds for the whole script: a run gets what is left, none starts under 15 s
DEVICE=${DEVICE:-cuda}
PEAK_N=${PEAK_N:-8192}
DIR=${OUT:-/tmp}
JSONL=$DIR/bench_gpu.jsonl
LOGS=$DIR/bench_gpu_logs
BIN=${BENCH_BIN:-$BUILD/bench/bench_train} # BENCH_BIN: a bench_train from elsewhere (tests/gpu/check.sh's bundle)

if [ ! -x "$BIN" ]; then
    echo "bench/gpu.sh: no $BIN (configure with -DPULSE_CUDA=ON and build the bench_train target)" >&2
    exit 1
fi
mkdir -p "$LOGS"
: >"$JSONL"
SMI=$(command -v nvidia-smi || true)
if [ -n "$SMI" ]; then
    "$SMI" --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2
fi

START=$(date +%s)

# run TAG CMD...: CMD under the time limit, the GPU's used memory sampled every 200 ms meanwhile. Appends to
# the JSONL the last JSON line CMD printed, with the sampled peak (smi_peak_mib) and the wall time added, or,
# when CMD failed, a line {"tag", "failed": rc, "error": last stderr line}; "failed": "skipped" when the
# budget is spent.
run() {
    local tag=$1 sampler="" t0 t1 rc left limit
    shift
    left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 15 ]; then
        printf '{"failed": "skipped", "error": "the %s s budget is spent", "tag": "%s", "smi_peak_mib": null}\n' \
            "$BUDGET" "$tag" | tee -a "$JSONL" >&2
        return
    fi
    limit=$((left < TIMEOUT ? left : TIMEOUT))
    echo "# $tag (limit $limit s): $*" >&2
    if [ -n "$SMI" ]; then
        "$SMI" --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$LOGS/$tag.smi" 2>/dev/null &
        sampler=$!
    fi
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" >"$LOGS/$tag.out" 2>"$LOGS/$tag.err"
    rc=$?
    t1=$(date +%s.%N)
    if [ -n "$sampler" ]; then
        kill "$sampler" 2>/dev/null
        wait "$sampler" 2>/dev/null
    fi
    "$PY" - "$tag" "$rc" "$t0" "$t1" "$LOGS/$tag.out" "$LOGS/$tag.err" "$LOGS/$tag.smi" "$limit" \
        >>"$JSONL" <<'PYEOF'
import json, os, sys
tag, rc, t0, t1, out, err, smi, limit = sys.argv[1:]
rc = int(rc)
def lines(p):
    return [l.strip() for l in open(p, errors="replace")] if os.path.exists(p) else []
row = None
if rc == 0:
    js = [l for l in lines(out) if l.startswith("{")]
    try:
        row = json.loads(js[-1]) if js else None
    except ValueError:
        row = None
if row is None:
    msg = [l for l in lines(err) if l]
    error = f"timed out after {limit} s" if rc in (124, 137) else (msg[-1] if msg else "no output")
    row = {"failed": rc, "error": error[:300]}
row["tag"] = tag
used = [int(x) for line in lines(smi) for x in line.split(",") if x.strip().isdigit()]
row["smi_peak_mib"] = max(used) if used else None
row["wall_s"] = round(float(t1) - float(t0), 1)
print(json.dumps(row))
PYEOF
    tail -n 1 "$JSONL" >&2
}

run peak "$PY" -W ignore "$ROOT/bench/torch_train.py" --device "$DEVICE" --peak --peak-n "$PEAK_N"

for shape in $SHAPES; do
    cfg=$LOGS/$shape.json
    # the shape's config.json for torch, and its batch, sequence, LoRA rank and FLOPs (a JSONL line)
    if ! "$BIN" --shape "$shape" --dump-config "$cfg" --flops >>"$JSONL"; then
        echo "bench/gpu.sh: bench_train does not know shape $shape" >&2
        continue
    fi
    read -r B T R < <(tail -n 1 "$JSONL" |
        "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["batch"], r["seq"], r["lora_r"])')
    for dtype in bf16 fp32; do
        run "$shape.engine.$dtype" "$BIN" --shape "$shape" --device "$DEVICE" --dtype "$dtype" --threads "$THREADS" \
            --steps "$STEPS" --warmup "$WARMUP"
        # bf16 activations too (precision "bf16-act"), held to torch's bf16 like the engine's bf16
        [ "$dtype" = bf16 ] && run "$shape.engine.bf16-act" "$BIN" --shape "$shape" --device "$DEVICE" \
            --dtype bf16-act --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP"
        run "$shape.torch.$dtype" "$PY" -W ignore "$ROOT/bench/torch_train.py" --config "$cfg" --shape "$shape" \
            --device "$DEVICE" --dtype "$dtype" --batch "$B" --seq "$T" --lora-r "$R" --threads "$THREADS" \
            --steps "$STEPS" --warmup "$WARMUP"
    done
done

"$PY" - "$JSONL" "$SHAPES" <<'PYEOF' | tee "$DIR/bench_gpu.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {r["tag"]: r for r in rows if "tag" in r}
flops = {r["shape"]: r["gflop_step"] for r in rows if r.get("impl") == "flops"}
pk = by.get("peak", {})
bf16_peak, fp32_peak = pk.get("bf16_tflops"), pk.get("fp32_tflops")
gpu = pk.get("gpu") or next((r.get("gpu") for r in rows if r.get("gpu")), "?")
torch_v = next((r["torch"] for r in rows if r.get("torch")), "?")
fmt = lambda x, f: "-" if x is None else format(x, f)
print(f"GPU: {gpu}; torch {torch_v}; measured matmul peak ({pk.get('n', '?')}^3):"
      f" bf16 {fmt(bf16_peak, '.1f')} TFLOP/s, fp32 (no TF32) {fmt(fp32_peak, '.1f')} TFLOP/s"
      + ("" if "failed" not in pk else f" (peak run failed: {pk['error']})"))
print("TFLOP/s: the engine's matmul count for the step (bench_train.c step_flops) over the step time, the same"
      " count for every framework; MFU = that over the measured peak. Memory: nvidia-smi's peak during the run.")
print()
print("| shape | framework | dtype | step s | tokens/s | TFLOP/s | MFU vs bf16 peak | MFU vs fp32 peak"
      " | peak GPU mem GiB | tokens/s vs torch, same dtype |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for shape in sys.argv[2].split():
    for impl, dtype in (("engine", "bf16"), ("engine", "bf16-act"), ("torch", "bf16"), ("engine", "fp32"),
                        ("torch", "fp32")):
        ref = by.get(f"{shape}.torch.{dtype.split('-')[0]}", {})
        ref_tok = ref.get("tok_s") if "failed" not in ref else None
        r = by.get(f"{shape}.{impl}.{dtype}")
        if r is None:
            continue
        mem = fmt(r["smi_peak_mib"] / 1024 if r.get("smi_peak_mib") is not None else None, ".1f")
        if "failed" in r:
            err = r["error"].replace("|", "/")
            print(f"| {shape} | {impl} | {dtype} | failed ({r['failed']}): {err} | - | - | - | - | {mem} | - |")
            continue
        s, tok, gf = r["step_ms"] / 1e3, r["tok_s"], flops.get(shape)
        tf = gf / s / 1e3 if gf else None
        mfu = lambda p: "-" if tf is None or not p else f"{100 * tf / p:.1f}%"
        ratio = f"{tok / ref_tok:.2f}x" if ref_tok and impl == "engine" else "-"
        print(f"| {shape} | {impl} | {dtype} | {s:.3f} | {tok:.0f} | {fmt(tf, '.1f')} | {mfu(bf16_peak)}"
              f" | {mfu(fp32_peak)} | {mem} | {ratio} |")
PYEOF
