#!/usr/bin/env bash
# generate: evaluate's `generate` parameter on the micro world (tests/cli/manifests/protocol). With generate = 4
# every item of the per-item output `answers` carries `generated_ids` (1 to 4 new ids, ending at </s> when
# fewer) and `generated`, their text: non-empty wherever a token other than </s> came (the one-epoch micro
# model answers some items with </s> at once: the text is then empty), its first character the greedy letter
# wherever that letter parsed (both are the argmax after the same prompt). With generate = 0 (the default) no
# item has either field and the rest is the same; the metrics do not change; the parameter is part of the key
# (only the evaluation reruns) and the record keeps it; a negative value fails with one line; the generating
# run repeats bit for bit on 2 threads.
source "$(dirname "$0")/lib.bash"
cp "$SRC"/tests/cli/manifests/protocol/micro_*.lua "$T/"
# manifest FILE GENERATE: micro.lua's world and base, a select for the split, one evaluation
manifest() {
    cat >"$1" <<LUA
local b = require "micro_base"
local with, model, data = b.with, b.model, b.data
local sel = stage "select" (with({ kind = "select", group = "real", top = 8, forget = 4 }, model, data))
stage "evaluate" (with({ kind = "evaluate", split = sel.out.split, generate = $2 }, model, data))
LUA
}

manifest "$T/g4.lua" 4
expect_code 0 "$PP" run "$T/g4.lua" --threads 1
has "$T/out" "5 stages: 5 computed"
"$PP" cat evaluate answers >"$T/g4.json"
"$PP" cat evaluate metrics >"$T/g4_metrics.json"
g4=$(output_id evaluate answers)
"$PP" cat world tokenizer >"$T/tokenizer.json"
"$PP" show evaluate --json | python3 -c "import json,sys; assert json.load(sys.stdin)['params']['generate'] == 4" ||
    fail "the record does not keep generate"

manifest "$T/g0.lua" 0
expect_code 0 "$PP" run "$T/g0.lua"
has "$T/out" "5 stages: 1 computed, 4 cached"
"$PP" cat evaluate answers >"$T/g0.json"
"$PP" cat evaluate metrics >"$T/g0_metrics.json"
cmp -s "$T/g4_metrics.json" "$T/g0_metrics.json" || fail "generating changed the metrics"

python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
g4 = json.load(open(f"{t}/g4.json"))["items"]
g0 = json.load(open(f"{t}/g0.json"))["items"]
vocab = json.load(open(f"{t}/tokenizer.json"))["model"]["vocab"]
eos = vocab["</s>"]
assert len(g4) == len(g0) > 0, (len(g4), len(g0))
sets, spoke = set(), 0
for a, b in zip(g4, g0):
    assert {k: v for k, v in a.items() if k not in ("generated", "generated_ids")} == b, (a, b)
    assert "generated" not in b and "generated_ids" not in b, b
    ids, gen = a["generated_ids"], a["generated"]
    assert 1 <= len(ids) <= 4 and (len(ids) == 4 or ids[-1] == eos) and eos not in ids[:-1], a
    assert isinstance(gen, str) and len(gen.split()) <= len(ids), a
    assert bool(gen.strip()) == (ids[0] != eos), a
    spoke += ids[0] != eos
    if a["greedy"] is not None:  # MLLMU-Bench's parse: the first non-space character of the first token
        assert gen.lstrip()[0] == a["greedy"], a
    else:
        assert not gen.strip() or gen.lstrip()[0] not in "ABCD", a
    sets.add(a["set"])
assert {"forget_mm", "forget_text", "retain_mm", "retain_text", "general"} <= sets, sets
assert spoke > len(g4) // 2, spoke
print(len(g4), "items,", spoke, "with text, e.g.", sorted({a["generated"] for a in g4})[:3])
PY

# the same bits on two threads, from a fresh store
PULSE_STORE="$T/two" expect_code 0 "$PP" run "$T/g4.lua" --threads 2
[ "$(PULSE_STORE="$T/two" output_id evaluate answers)" = "$g4" ] || fail "generation differs on 2 threads"

manifest "$T/bad.lua" -1
expect_code 1 "$PP" run "$T/bad.lua"
[ "$(grep -c "stage 'evaluate' failed" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "not one failure line"; }
grep -qxF "pulse-pipe: stage 'evaluate' failed: evaluate: generate must be 0 to 4096, got -1" "$T/err" ||
    { cat "$T/err" >&2; fail "not the failure line expected"; }
expect_code 0 "$PP" verify
passed
