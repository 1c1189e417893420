#!/usr/bin/env bash
# cuda_device: the whole PULSE graph on the micro world (tests/cli/manifests/protocol) with --device cuda and
# with --device cpu, from fresh stores, in fp32, with precision "bf16" on every model stage (bf16 products,
# frozen weights as bf16 copies; recomputation on) and with "bf16-act" (activations in bf16 too): every
# stage's record names its device, and every number
# the stages report (training losses, the tower's accuracies, each evaluation's sets) agrees: losses within
# 1e-4 relative in fp32 (the kernels agree to 1e-5: tests/unit/test_engine_cuda.c; measured on the emulator,
# 6e-8) and 5e-3 in bf16 (an operand a last bit apart can round to the neighbouring bf16 value, 2^-8 away, and
# training carries such differences on: measured 2e-5 after pretraining, growing to 1.7e-3 in NPO on the
# pretrained model, whose loss compares two models' log-likelihoods), accuracies within two items of their
# sets. Skipped (77) by a build without the CUDA backend or on a machine without a GPU; the CUDA emulator
# build (-DPULSE_CUDA=EMU, tests/cudaemu) runs it on any machine, about 90 times slower than the CPU.
source "$(dirname "$0")/lib.bash"
M="$T/micro.lua"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"
N=35
# the same graph with every model stage in bf16, and activation recomputation in training (not part of a
# stage's key, and the same bits on each device: here it only makes the CUDA run take that path)
cat >"$T/micro_bf16.lua" <<'LUA'
local s = require "micro_settings"
for _, k in ipairs({ "pretrain", "finetune", "unlearn", "evaluate" }) do s[k].precision = "bf16" end
s.finetune.recompute, s.unlearn.recompute = true, true
require "protocol" (s)
LUA

set +e
"$PP" --store "$T/cuda" run "$M" --device cuda --only world >"$T/out" 2>"$T/err"
rc=$?
set -e
if [ $rc -eq 2 ] && grep -qF -- "--device cuda:" "$T/err"; then
  echo "SKIP: $(cat "$T/err")"
  exit 77
fi
[ $rc -eq 0 ] || { cat "$T/out" "$T/err" >&2; fail "run --device cuda --only world exited $rc"; }

# Too little GPU memory (the emulator's device is PULSE_CUDAEMU_GIB large; a GPU has what it has): the stage
# fails with one line saying so and what helps, exit 1, and the store is as it was. Emulator only, on a store
# of its own.
if grep -q cudaemu <("$PP" --store "$T/cuda" show world --json); then
  PULSE_CUDAEMU_GIB=0.25 expect_code 1 "$PP" --store "$T/fault" run "$M" --device cuda
  has "$T/err" "pulse-pipe: out of GPU memory: "
  has "$T/err" "run --dry-run --device cuda prints each stage's memory plan"
  one_line "$T/err"
  expect_code 0 "$PP" --store "$T/fault" verify
  # a kernel that fails (the emulator fails its 2000th launch): one line naming CUDA, exit 1, store as it was
  PULSE_CUDAEMU_FAIL_LAUNCH=2000 expect_code 1 "$PP" --store "$T/fault" run "$M" --device cuda
  has "$T/err" "pulse-pipe: CUDA error in "
  has "$T/err" "unspecified launch failure"
  one_line "$T/err"
  expect_code 0 "$PP" --store "$T/fault" verify
fi

# compare MANIFEST CPU_STORE CUDA_STORE LOSS_TOLERANCE
compare() {
python3 - "$PP" "$1" "$T/$2" "$T/$3" "$4" <<'PY'
import json, subprocess, sys
pp, m, cpu, cuda, tol = sys.argv[1:6]
tol = float(tol)

def out(store, *args):
    return subprocess.check_output([pp, "--store", {"cpu": cpu, "cuda": cuda}[store], *args], text=True)

def numbers(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from numbers(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from numbers(v, f"{path}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path, float(x)

stages = [s["name"] for s in json.loads(out("cpu", "status", m, "--json"))["stages"]]
compared = 0
for name in stages:
    rec = {d: json.loads(out(d, "show", name, "--json")) for d in ("cpu", "cuda")}
    if rec["cpu"]["kind"] != "synth":  # the world is data, made on the CPU by either run
        assert rec["cuda"]["device"].startswith("cuda: "), (name, rec["cuda"]["device"])
        assert rec["cpu"]["device"].startswith("cpu"), (name, rec["cpu"]["device"])
    docs = {d: {"metrics": rec[d].get("metrics") or {}} for d in rec}
    if rec["cpu"]["kind"] == "evaluate":
        for d in docs:
            docs[d]["evaluation"] = json.loads(out(d, "cat", name, "metrics"))["sets"]
    a, b = dict(numbers(docs["cpu"])), dict(numbers(docs["cuda"]))
    assert a.keys() == b.keys(), (name, sorted(set(a) ^ set(b)))
    for path, x in a.items():
        y = b[path]
        if "loss" in path.rsplit("/", 1)[-1]:
            ok = abs(x - y) <= tol * max(abs(x), 1e-6)
        elif path.startswith("/evaluation/") and not path.endswith(("/items", "/unparsed")):
            items = a[path.rsplit("/", 1)[0] + "/items"]
            ok = abs(x - y) <= 2 / items + 1e-12
        else:
            ok = abs(x - y) <= 0.1 * max(abs(x), 1.0)
        assert ok, f"{name}{path}: cpu {x!r}, cuda {y!r}"
        compared += 1
assert compared > 200, compared
print(f"cuda_device: {m.rsplit('/', 1)[-1]}: {len(stages)} stages, {compared} numbers agree")
PY
}

expect_code 0 "$PP" --store "$T/cuda" run "$M" --device cuda
has "$T/out" "$N stages: $((N - 1)) computed, 1 cached, 0 failed, 0 skipped"
expect_code 0 "$PP" --store "$T/cpu" run "$M" --threads 2
has "$T/out" "$N stages: $N computed, 0 cached, 0 failed, 0 skipped"
compare "$M" cpu cuda 1e-4

# both PRECISION MANIFEST: the manifest on each device, every model stage in PRECISION
both() {
  for d in cuda cpu; do
    expect_code 0 "$PP" --store "$T/$d" run "$2" --device $d
    has "$T/out" "0 failed, 0 skipped"
    "$PP" --store "$T/$d" show vanilla --json |
      python3 -c "import json,sys; assert json.load(sys.stdin)['params']['precision'] == '$1'" ||
      fail "vanilla did not run in $1 on $d"
  done
}

# bf16: the world and the tower are reused (no precision there), the model stages are new keys (the report
# may be reused too: the micro model's evaluations can come out the same)
both bf16 "$T/micro_bf16.lua"
compare "$T/micro_bf16.lua" cpu cuda 5e-3

# bf16-act: activations in bf16 storage too, the CUDA kernels reading and writing it. A flip of one stored
# value moves the values it feeds and some of those flip in turn (tests/unit/test_engine_act16.c measures
# that noise at bf16's own level), so losses are held to 2e-2; the emulator sums as the CPU does and agrees
# far closer.
sed 's/"bf16"/"bf16-act"/' "$T/micro_bf16.lua" >"$T/micro_act.lua"
both bf16-act "$T/micro_act.lua"
compare "$T/micro_act.lua" cpu cuda 2e-2
passed
