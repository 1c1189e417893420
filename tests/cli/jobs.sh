#!/usr/bin/env bash
# jobs: `run --jobs N` runs stages whose inputs are done at the same time, in child processes. The chain graph
# on 3 jobs holds the objects a serial run holds; the two sources start together and split the threads, the
# chain after them gets them all; a failed branch skips its dependant and not the independent stage; a forced
# stage recomputes; the deepest ready stage starts first; a stage declared twice takes one slot; two --jobs runs at once compute each stage once; killing the run kills its jobs and leaves
# the store valid; bad values are refused with one line. (tests/cli/protocol.sh runs the protocol on jobs.)
source "$(dirname "$0")/lib.bash"
sed 's/bytes = 1000/bytes = 30000000/; s/bytes = 2000/bytes = 30000000/' "$SRC/tests/cli/manifests/chain.lua" >"$T/m.lua"
threads_of() { "$PP" show "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['threads'])"; }

export PULSE_STORE="$T/serial"
expect_code 0 "$PP" run "$T/m.lua" --threads 4
ids_of "$T/m.lua" >"$T/serial.ids"

export PULSE_STORE="$T/jobs"
expect_code 0 "$PP" run "$T/m.lua" --threads 4 --jobs 3
has "$T/out" "6 stages: 6 computed, 0 cached, 0 failed, 0 skipped"
ids_of "$T/m.lua" >"$T/jobs.ids"
diff "$T/serial.ids" "$T/jobs.ids" >&2 || fail "--jobs 3 gave other outputs than a serial run"
# a and b start in one pass and share the 4 threads (which no timing can change); the chain has them all
[ "$(threads_of a)" = 2 ] && [ "$(threads_of b)" = 2 ] || fail "a, b: $(threads_of a), $(threads_of b) threads, expected 2"
[ "$(threads_of round/3)" = 4 ] || fail "round/3 ran on $(threads_of round/3) threads, expected 4"
expect_code 0 "$PP" verify
expect_code 0 "$PP" run "$T/m.lua" --jobs 3
has "$T/out" "6 stages: 0 computed, 6 cached"
expect_code 0 "$PP" run "$T/m.lua" --jobs 2 --force round/2
has "$T/out" "round/2"
has "$T/out" "(outputs identical to its record)"
has "$T/out" "6 stages: 1 computed, 5 cached"

# Deepest first: of the six stages ready at the start, the heads of the two longest chains take the two slots
# (in one pass, so no timing changes it), though four short sources are declared before them.
cat >"$T/deep.lua" <<'LUA'
for k = 1, 4 do stage("short/" .. k) { kind = "random", seed = k, bytes = 100 } end
local c = stage "long/1" { kind = "random", seed = 9, bytes = 100 }
for k = 2, 3 do c = stage("long/" .. k) { kind = "concat", parts = { c.out.data } } end
local d = stage "mid/1" { kind = "random", seed = 8, bytes = 100 }
stage "mid/2" { kind = "concat", parts = { d.out.data } }
LUA
export PULSE_STORE="$T/deep"
expect_code 0 "$PP" run "$T/deep.lua" --jobs 2 --threads 2
order=$(sed -nE 's/^\[[0-9]+\/[0-9]+\] ([^ ]+) +running$/\1/p' "$T/out" | head -2 | tr '\n' ' ')
[ "$order" = "long/1 mid/1 " ] || { cat "$T/out" >&2; fail "first starts: $order"; }

# A stage declared twice (one key, two names) takes one slot: the other slot goes to the next stage, and the
# twin is reused once its first computation ends.
cat >"$T/twin.lua" <<'LUA'
stage "twin/1" { kind = "random", seed = 5, bytes = 100 }
stage "twin/2" { kind = "random", seed = 5, bytes = 100 }
stage "other" { kind = "random", seed = 6, bytes = 100 }
LUA
export PULSE_STORE="$T/twin"
expect_code 0 "$PP" run "$T/twin.lua" --jobs 2 --threads 2
order=$(sed -nE 's/^(\[[0-9]+\/[0-9]+\] [^ ]+) +running$/\1/p' "$T/out" | tr '\n' ' ')
[ "$order" = "[1/3] twin/1 [2/3] other " ] || { cat "$T/out" >&2; fail "started: $order"; }
lacks "$T/out" "concurrent run" # the twin never waited on the lock of its first
has "$T/out" "3 stages: 2 computed, 1 cached"

# A failing branch: its dependant is skipped, the independent stage still computes, the run exits 1.
export PULSE_STORE="$T/failing"
expect_code 1 "$PP" run "$SRC/tests/cli/manifests/failing.lua" --jobs 4
has "$T/out" "4 stages: 2 computed, 0 cached, 1 failed, 1 skipped"
has "$T/out" "after-bad                    skipped: needs 'bad', which did not finish"
[ "$(grep -c "stage 'bad' failed" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "not one failure line for bad"; }
expect_code 0 "$PP" verify

# Two --jobs runs of one manifest on one store at once: each stage computed once.
export PULSE_STORE="$T/both"
"$PP" run "$T/m.lua" --jobs 2 >"$T/one" 2>&1 &
p1=$!
"$PP" run "$T/m.lua" --jobs 3 >"$T/two" 2>&1 &
p2=$!
wait $p1 || { cat "$T/one" "$T/two" >&2; fail "first concurrent run failed"; }
wait $p2 || { cat "$T/one" "$T/two" >&2; fail "second concurrent run failed"; }
[ "$(cat "$T/one" "$T/two" | grep -c ' done in ')" -eq 6 ] || { cat "$T/one" "$T/two" >&2; fail "not 6 computations"; }
ids_of "$T/m.lua" >"$T/both.ids"
diff "$T/serial.ids" "$T/both.ids" >&2 || fail "concurrent --jobs runs gave other outputs"

# Killed while its jobs run: they die with it, and the store verifies.
sed 's/bytes = 30000000/bytes = 3000000000/' "$T/m.lua" >"$T/big.lua"
export PULSE_STORE="$T/killed"
"$PP" run "$T/big.lua" --jobs 2 >"$T/killed.out" 2>&1 &
pid=$!
for _ in $(seq 1 400); do
  [ "$(grep -c ' running$' "$T/killed.out" || true)" -ge 2 ] && break
  sleep 0.05
done
kids=$(pgrep -P "$pid" || true)
[ -n "$kids" ] || { cat "$T/killed.out" >&2; fail "no job was running"; }
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
  alive=0
  for k in $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.05
done
[ $alive -eq 0 ] || fail "jobs outlived their killed run"
expect_code 0 "$PP" verify

# Bad values: one line, exit 2.
for v in 0 65 x -1; do
  expect_code 2 "$PP" run "$T/m.lua" --jobs "$v"
  one_line "$T/err"
  has "$T/err" "--jobs: expected a number from 1 to 64, got '$v'"
done
expect_code 2 "$PP" run "$T/m.lua" --jobs 2 --device cuda
one_line "$T/err"
has "$T/err" "--jobs: with --device cuda stages run one at a time"
passed
