#!/usr/bin/env bash
# protocol: the whole PULSE graph (manifests/protocol.lua) on a micro world (tests/cli/manifests/protocol):
# it runs and the report has its three views; the splits and evaluations have the shapes docs/protocol.md
# gives; fresh stores on 1 and 2 threads and on 3 jobs hold the same object ids for every output; a run
# killed with SIGKILL after `vanilla` resumes, reusing what was finished, to the same report; a second run
# computes nothing; a sweep over two seeds reports means and spreads, a method variant its own rows; bad
# settings and bad parameters of unlearn, select and evaluate fail with one clear line; the store verifies.
source "$(dirname "$0")/lib.bash"
M="$T/micro.lua"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"
N=35 # stages: world, tower, base, vanilla, 2 selects, 2 befores, 3 methods x 2 knowledge x 2, 3 x 2 rounds x 2, 2, report

# The run, on one thread.
export PULSE_STORE="$T/one"
start=$(date +%s%N)
expect_code 0 "$PP" run "$M" --threads 1
one_ms=$((($(date +%s%N) - start) / 1000000))
has "$T/out" "$N stages: $N computed, 0 cached, 0 failed, 0 skipped"
ids_of "$M" >"$T/one.ids"
[ "$(wc -l <"$T/one.ids")" -gt $((2 * N)) ] || fail "too few outputs: $(wc -l <"$T/one.ids")"

# The report: three views, each with the runs it should hold.
"$PP" cat report markdown >"$T/report.md"
has "$T/report.md" "# PULSE micro"
has "$T/report.md" "## Knowledge type x method"
has "$T/report.md" "## Sustainability"
has "$T/report.md" "## Ablation: update target"
for row in "| finetuned | none |" "| pretrained | npo |" "| finetuned | ga_klr | 2 |" "| ga | llm |"; do
  has "$T/report.md" "$row"
done
"$PP" cat report png >"$T/report.png"
[ "$(head -c 4 "$T/report.png" | tail -c 3)" = PNG ] || fail "report png is not a PNG"

# tools/breakdown.py reads an evaluation's answers: its general suite agrees with the stage's own metric.
python3 "$SRC/tools/breakdown.py" "$T/one" evaluate/pretrained/before "$PP" >"$T/breakdown.txt" ||
  fail "tools/breakdown.py failed"
has "$T/breakdown.txt" "portrait questions right per person"
want=$("$PP" cat evaluate/pretrained/before metrics |
  python3 -c 'import json,sys; m=json.load(sys.stdin); k="likelihood" if m["scoring"]=="likelihood" else "greedy"; print("%.2f" % (100 * m["sets"]["general"][k]))')
has "$T/breakdown.txt" "| all $want ("

# Splits and evaluations as docs/protocol.md describes them.
"$PP" cat select/finetuned split >"$T/split_f.json"
"$PP" cat select/pretrained split >"$T/split_p.json"
for s in before ga/round1 ga/round2 ga; do "$PP" cat "evaluate/finetuned/$s" metrics >"$T/ev_${s//\//_}.json"; done
for s in before ga; do "$PP" cat "evaluate/pretrained/$s" metrics >"$T/evp_$s.json"; done
"$PP" show evaluate/finetuned/npo/round2 --json >"$T/ev_npo2.rec"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
load = lambda n: json.load(open(f"{t}/{n}"))
f, p = load("split_f.json"), load("split_p.json")
assert len(f["forget"]) == 4 and len(f["retain"]) == 4 and not set(f["forget"]) & set(f["retain"]), f
assert [len(g) for g in f["groups"]] == [2, 2] and sum(f["groups"], []) == f["forget"], f
assert all(x.startswith("f") for x in f["forget"] + f["retain"]), f
assert len(p["forget"]) == 4 and len(p["retain"]) == 4 and p["groups"] == [], p
assert all(x.startswith("r") for x in p["forget"] + p["retain"]) and not set(p["forget"]) & set(p["retain"]), p
sets = {n: load(f"ev_{n}.json")["sets"] for n in ["before", "ga_round1", "ga_round2", "ga"]}
for n, s in sets.items():
    assert sorted(s) == ["forget_mm", "forget_text", "general", "retain_mm", "retain_text"], (n, s)
    assert s["general"]["items"] == 20, (n, s)
    assert s["retain_mm"]["items"] == sets["before"]["retain_mm"]["items"] > 0, (n, s)
# after round k the forget set is groups 1..k: half the people after round 1, all of them after round 2
for k in ["forget_mm", "forget_text"]:
    assert 2 * sets["ga_round1"][k]["items"] == sets["ga_round2"][k]["items"] == sets["before"][k]["items"], k
labels = load("ev_ga_round2.json")["labels"]
assert labels == {"knowledge": "finetuned", "method": "ga", "round": 2, "setting": "sequential",
                  "target": "proj+llm"}, labels
rec = load("ev_npo2.rec")
assert len(rec["inputs"]["adapters"]) == 2 and len(rec["inputs"]["adapter_configs"]) == 2, rec["inputs"]
assert rec["inputs"]["projector"], rec["inputs"]
# unlearning did something: GA moved the pretrained forget set's answers
assert load("evp_before.json")["sets"] != load("evp_ga.json")["sets"], "unlearn/pretrained/ga changed nothing"
PY

# A second run computes nothing.
expect_code 0 "$PP" run "$M" --threads 2
has "$T/out" "$N stages: 0 computed, $N cached"

# Determinism: a fresh store on two threads holds the same objects.
export PULSE_STORE="$T/two"
start=$(date +%s%N)
expect_code 0 "$PP" run "$M" --threads 2
two_ms=$((($(date +%s%N) - start) / 1000000))
ids_of "$M" >"$T/two.ids"
diff "$T/one.ids" "$T/two.ids" >&2 || fail "1 and 2 threads gave different outputs"

# Jobs: a fresh store, stages three at a time, holds the same objects too.
export PULSE_STORE="$T/jobs"
expect_code 0 "$PP" run "$M" --threads 2 --jobs 3
has "$T/out" "$N stages: $N computed, 0 cached, 0 failed, 0 skipped"
ids_of "$M" >"$T/jobs.ids"
diff "$T/one.ids" "$T/jobs.ids" >&2 || fail "--jobs 3 gave different outputs"

# Resume: killed once vanilla is done; the rerun reuses every finished stage and ends at the same report.
export PULSE_STORE="$T/killed"
"$PP" run "$M" --threads 2 >"$T/killed.out" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  grep -qE '^\[[0-9]+/[0-9]+\] vanilla +done' "$T/killed.out" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
grep -qE '^\[[0-9]+/[0-9]+\] vanilla +done' "$T/killed.out" || { cat "$T/killed.out" >&2; fail "vanilla never finished"; }
lacks "$T/killed.out" "$N stages:"
expect_code 0 "$PP" verify
expect_code 0 "$PP" run "$M" --threads 1
finished=$(sed -nE 's/^\[[0-9]+\/[0-9]+\] ([^ ]+) +done in .*/\1/p' "$T/killed.out")
for s in $finished; do
  grep -qE "^\[[0-9]+/$N\] $s +cached$" "$T/out" || fail "'$s' was finished before the kill but not reused"
done
cached=$(sed -nE "s/.*$N stages: [0-9]+ computed, ([0-9]+) cached, 0 failed.*/\1/p" "$T/out")
# (a stage may finish between its record and its "done" line: the rerun may reuse one more than were shown)
[ -n "$cached" ] && [ "$cached" -ge 3 ] && [ "$cached" -ge "$(echo "$finished" | wc -w)" ] ||
  { cat "$T/out" >&2; fail "the rerun reused $cached stages, $(echo "$finished" | wc -w) were finished"; }
ids_of "$M" >"$T/killed.ids"
diff "$T/one.ids" "$T/killed.ids" >&2 || fail "the resumed run's outputs differ from the uninterrupted run's"
expect_code 0 "$PP" verify

# A sweep over seeds (settings.seeds): seed 1's training is the run above (the defaults seed it 1), seed 2's
# is new; the report's cells are means with their spread, its CSV one row per run and seed, and the pretrained
# model's selection and evaluation before unlearning are made once.
export PULSE_STORE="$T/one"
cat >"$T/sweep.lua" <<'LUA'
local s = require "micro_settings"
s.seeds = { 1, 2 }
require "protocol" (s)
LUA
S=$((6 + 2 * (N - 6))) # world, tower, base, select/pretrained, evaluate/pretrained/before, report once
expect_code 0 "$PP" run "$T/sweep.lua" --threads 2
has "$T/out" "$S stages: "
for st in vanilla unlearn/finetuned/ga/round2; do
  grep -qE "^\[[0-9]+/$S\] seed1/$st +cached$" "$T/out" || fail "seed1/$st was not reused from the plain run"
  grep -qE "^\[[0-9]+/$S\] seed2/$st +running$" "$T/out" || fail "seed2/$st was not computed"
done
"$PP" cat report markdown >"$T/sweep.md"
has "$T/sweep.md" "| knowledge | method | forget MM | forget text | retain MM | retain text | general | seeds |"
grep -qE '^\| finetuned \| ga \| [0-9.]+ ± [0-9.]+ \|.* \| 2 \|$' "$T/sweep.md" || fail "no mean ± spread row"
has "$T/sweep.md" "| pretrained | none | "
grep -qE '^\| pretrained \| none \| [0-9.]+ \|.* \| 1 \|$' "$T/sweep.md" || fail "pretrained/before is not one run"
"$PP" cat report csv >"$T/sweep.csv"
[ "$(grep -c '^finetuned,ga,sequential,2,proj+llm,letter,forget_mm,' "$T/sweep.csv")" -eq 2 ] ||
  fail "the CSV does not keep one row per seed"
"$PP" cat seed2/evaluate/finetuned/ga metrics | grep -q '"seed":2' || fail "seed 2's metrics lack their label"
bad_settings() { # a line of Lua changing s, and the manifest error it must give
  printf 'local s = require "micro_settings"\n%s\nrequire "protocol" (s)\n' "$1" >"$T/bad_settings.lua"
  expect_code 2 "$PP" run "$T/bad_settings.lua"
  has "$T/err" "$2"
}
# Method variants (settings.methods): a variant's stages and rows carry its own name and its parameters win;
# the plain methods' stages keep their keys (cached from the first run); grad_diff runs the protocol too.
cat >"$T/variant.lua" <<'LUA'
local s = require "micro_settings"
s.methods = { "ga", "grad_diff", { name = "npo_b1", method = "npo", beta = 1.0 } }
require "protocol" (s)
LUA
expect_code 0 "$PP" run "$T/variant.lua" --threads 2
grep -qE '^\[[0-9]+/[0-9]+\] unlearn/finetuned/ga/round2 +cached$' "$T/out" || fail "the plain ga stages changed keys"
"$PP" show unlearn/finetuned/npo_b1/round2 --json >"$T/variant.rec"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["params"]; assert p["method"]=="npo" and p["beta"]==1.0 and p["round"]==2, p' \
  "$T/variant.rec" || fail "the variant's parameters"
"$PP" cat report markdown >"$T/variant.md"
has "$T/variant.md" "| finetuned | npo_b1 | 2 | "
has "$T/variant.md" "| finetuned | grad_diff | 2 | "
lacks "$T/variant.md" "| finetuned | npo |"
bad_settings 's.methods = { "ga", { name = "a b", method = "ga" } }' "settings.methods[2]: 'a b' is not a name"
bad_settings 's.methods = { "none" }' "settings.methods[1]: 'none' is not a name"
bad_settings 's.methods = { { name = "x" } }' "settings.methods[1]: a method's name, or { name"

# manifests/pulse-seeds.lua builds its graph: 5 shared stages and the report, 47 per seed
export PULSE_STORE="$T/empty"
expect_code 0 "$PP" status "$SRC/manifests/pulse-seeds.lua"
[ "$(grep -c '^todo ' "$T/out")" -eq $((6 + 3 * 47)) ] || fail "pulse-seeds.lua: $(grep -c '^todo ' "$T/out") stages"
export PULSE_STORE="$T/one"
bad_settings 's.seeds = { 1, 1.5 }' "settings.seeds: each seed must be an integer > 0"
bad_settings 's.seeds = {}' "settings.seeds must be a list of seeds"
expect_code 0 "$PP" verify

# Bad parameters: the stage fails with one clear line, nothing is recorded for it, the store verifies.
export PULSE_STORE="$T/one"
bad() {
  sed "s/^local CASE = .*/local CASE = \"$1\"/" "$T/bad.lua" >"$T/bad_$1.lua"
  expect_code 1 "$PP" run "$T/bad_$1.lua"
  [ "$(grep -c "stage 'bad' failed" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "$1: not one failure line"; }
  grep "stage 'bad' failed" "$T/err" | grep -qxF "pulse-pipe: stage 'bad' failed: bad: $2" ||
    { cat "$T/err" >&2; fail "$1: the failure line is not 'bad: $2'"; }
  has "$T/out" "1 failed"
  expect_code 1 "$PP" show bad
  expect_code 0 "$PP" verify
}
bad method "method must be ga, ga_klr, npo or grad_diff, got 'foo'"
bad forget "forget must be between 1 and top (4), got 5"
bad rounds "rounds is 3 but the split has 2 groups"
bad round "round is 3 but the split has 2 groups"
echo '{"forget":["r0001"],"groups":[],"retain":["r0002","r0001"]}' >"$T/overlap.json"
bad overlap "split: r0001 is both forgotten and retained"
bad tokenizer "tokenizer: json: line 2 col 1: unexpected text after the value"
expect_code 0 "$PP" run "$M"
has "$T/out" "$N stages: 0 computed, $N cached"

echo "protocol.sh: $N stages in ${one_ms} ms on 1 thread, ${two_ms} ms on 2"
passed
