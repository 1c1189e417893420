#!/usr/bin/env bash
# cuda_device: the whole PULSE graph on the micro world (tests/cli/manifests/protocol) with --device cuda and
# with --device cpu, from fresh stores: every stage's record names its device, and every number the stages
# report (training losses, the tower's accuracies, each evaluation's sets) agrees: losses within 1e-4
# relative (the kernels agree to 1e-5: tests/unit/test_engine_cuda.c), accuracies within two items of their
# sets. Skipped (77) by a build without the CUDA backend or on a machine without a GPU; the CUDA emulator
# build (-DPULSE_CUDA=EMU, tests/cudaemu) runs it on any machine, about 250 times slower than the CPU.
source "$(dirname "$0")/lib.bash"
M="$T/micro.lua"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"
N=35

set +e
"$PP" --store "$T/cuda" run "$M" --device cuda --only world >"$T/out" 2>"$T/err"
rc=$?
set -e
if [ $rc -eq 2 ] && grep -qF -- "--device cuda:" "$T/err"; then
  echo "SKIP: $(cat "$T/err")"
  exit 77
fi
[ $rc -eq 0 ] || { cat "$T/out" "$T/err" >&2; fail "run --device cuda --only world exited $rc"; }

expect_code 0 "$PP" --store "$T/cuda" run "$M" --device cuda
has "$T/out" "$N stages: $((N - 1)) computed, 1 cached, 0 failed, 0 skipped"
expect_code 0 "$PP" --store "$T/cpu" run "$M" --threads 2
has "$T/out" "$N stages: $N computed, 0 cached, 0 failed, 0 skipped"

python3 - "$PP" "$M" "$T" <<'PY'
import json, subprocess, sys
pp, m, t = sys.argv[1:4]

def out(store, *args):
    return subprocess.check_output([pp, "--store", f"{t}/{store}", *args], text=True)

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
            ok = abs(x - y) <= 1e-4 * max(abs(x), 1e-6)
        elif path.startswith("/evaluation/") and not path.endswith(("/items", "/unparsed")):
            items = a[path.rsplit("/", 1)[0] + "/items"]
            ok = abs(x - y) <= 2 / items + 1e-12
        else:
            ok = abs(x - y) <= 0.1 * max(abs(x), 1.0)
        assert ok, f"{name}{path}: cpu {x!r}, cuda {y!r}"
        compared += 1
assert compared > 200, compared
print(f"cuda_device: {len(stages)} stages, {compared} numbers agree")
PY
passed
