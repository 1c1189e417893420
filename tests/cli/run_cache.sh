#!/usr/bin/env bash
# run: computes everything once, then nothing; status explains changes; --only, --force, --dry-run; a failing
# stage leaves no record, its dependants are skipped, independent stages still run.
source "$(dirname "$0")/lib.bash"
M="$T/chain.lua"
cp "$SRC/tests/cli/manifests/chain.lua" "$M"

expect_code 0 "$PP" status "$M"
has "$T/out" "todo  a"
has "$T/out" "new stage"

expect_code 0 "$PP" run "$M" --dry-run
has "$T/out" "would run"
has "$T/out" "0 computed"
[ ! -e "$PULSE_STORE/records" ] || [ -z "$(find "$PULSE_STORE/records" -name '*.json')" ] || fail "dry run wrote records"

expect_code 0 "$PP" run "$M"
has "$T/out" "6 stages: 6 computed, 0 cached, 0 failed, 0 skipped"
first=$(output_id round/3 data)

expect_code 0 "$PP" run "$M"
has "$T/out" "6 stages: 0 computed, 6 cached"
expect_code 0 "$PP" status "$M" --json
python3 - "$T/out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["stages"]
assert [x["name"] for x in s] == ["a", "b", "ab", "round/1", "round/2", "round/3"], s
assert all(x["state"] == "done" and x["kind"] for x in s), s
PY

# A parameter change invalidates exactly the stage and what depends on it, and status says why.
sed -i 's/seed = 2, bytes = 2000/seed = 2, bytes = 2001/' "$M"
expect_code 0 "$PP" status "$M"
has "$T/out" "done  a"
has "$T/out" "param bytes: 2000 -> 2001"
has "$T/out" "input parts: waits for 'b'"
expect_code 0 "$PP" run "$M"
has "$T/out" "6 stages: 5 computed, 1 cached"
expect_code 0 "$PP" status "$M"
lacks "$T/out" "todo"
[ "$(output_id round/3 data)" != "$first" ] || fail "round/3 did not change"

# Going back reuses the first results without computing.
sed -i 's/bytes = 2001/bytes = 2000/' "$M"
expect_code 0 "$PP" run "$M"
has "$T/out" "0 computed, 6 cached"
[ "$(output_id round/3 data)" = "$first" ] || fail "show does not follow the record the manifest uses now"

# --only runs a stage and its dependencies; --force recomputes one stage with identical output.
rm -rf "$PULSE_STORE"
expect_code 0 "$PP" run "$M" --only ab
has "$T/out" "3 stages: 3 computed"
expect_code 0 "$PP" run "$M" --force ab --only ab
has "$T/out" "3 stages: 1 computed, 2 cached"
expect_code 2 "$PP" run "$M" --only nosuch
has "$T/err" "no stage named 'nosuch'"
one_line "$T/err"

# show and log.
expect_code 0 "$PP" show ab
has "$T/out" "kind     concat"
has "$T/out" "separator"
expect_code 0 "$PP" show ab --json
python3 - "$T/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for f in ["key", "name", "kind", "kind_version", "params", "inputs", "outputs", "metrics", "wall_s", "device",
          "threads", "seed", "engine_version", "manifest", "created"]:
    assert f in r, f
assert r["outputs"]["data"]["size"] == 3001 and r["outputs"]["data"]["id"].startswith("sha256:")
assert len(r["inputs"]["parts"]) == 2
PY
"$PP" cat ab data >"$T/ab.bin"
[ "$(stat -c %s "$T/ab.bin")" -eq 3001 ] || fail "cat ab data: wrong size"
[ "$(sha256sum <"$T/ab.bin" | sed 's/ .*//')" = "$(output_id ab data | sed 's/sha256://')" ] || fail "cat: wrong bytes"
expect_code 1 "$PP" cat ab nosuch
one_line "$T/err"
expect_code 1 "$PP" show nosuch
has "$T/err" "no record of a stage named 'nosuch'"
expect_code 0 "$PP" log
has "$T/out" "ab concat sha256:"

# Two manifests sharing the store and a stage name: the name shows whichever ran last, --manifest names each
# one's own record (as its inputs resolve now), and a cache key names a record outright.
O="$T/other.lua"
sed 's/separator = "|"/separator = "+"/' "$M" >"$O"
expect_code 0 "$PP" status "$O"
has "$T/out" "todo  ab"
expect_code 1 "$PP" show ab --manifest "$O"
has "$T/err" "stage 'ab' of $O is not done in this store (pulse-pipe status $O says why)"
one_line "$T/err"
expect_code 0 "$PP" run "$O"
mine=$(output_id ab data)
expect_code 0 "$PP" show ab --manifest "$O" --json
[ "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['outputs']['data']['id'])" "$T/out")" = "$mine" ] ||
  fail "show --manifest other.lua: not other's record"
expect_code 0 "$PP" show ab --manifest "$M"
has "$T/out" 'separator            "|"'
key=$(sed -n 's/^key *//p' "$T/out")
"$PP" cat ab data --manifest "$M" >"$T/ab2.bin"
cmp -s "$T/ab.bin" "$T/ab2.bin" || fail "cat --manifest chain.lua: not chain's bytes"
"$PP" cat ab data >"$T/ab3.bin"
! cmp -s "$T/ab.bin" "$T/ab3.bin" || fail "cat without --manifest should give the last run's record"
expect_code 0 "$PP" show "$key"
has "$T/out" 'separator            "|"'
expect_code 0 "$PP" audit ab --manifest "$M"
has "$T/out" "same"
expect_code 2 "$PP" show nosuch --manifest "$M"
has "$T/err" "has no stage named 'nosuch'"
one_line "$T/err"
expect_code 2 "$PP" cat ab --manifest "$M"
one_line "$T/err"
expect_code 2 "$PP" show ab --manifest
one_line "$T/err"
expect_code 2 "$PP" show ab --manifest "$T/missing.lua"
one_line "$T/err"
expect_code 0 "$PP" run "$M"

# A failing stage: no record; its dependant skipped; the independent stage still runs; exit 1.
expect_code 1 "$PP" run "$SRC/tests/cli/manifests/failing.lua"
has "$T/out" "4 stages: 1 computed, 1 cached, 1 failed, 1 skipped"
has "$T/err" "stage 'bad' failed: input is sha256:"
has "$T/out" "skipped: needs 'bad'"
expect_code 1 "$PP" show bad
expect_code 0 "$PP" show independent
expect_code 0 "$PP" verify

# Every command has --help; usage errors exit 2 with one line.
for c in run status show cat log verify gc audit export import kinds; do
  expect_code 0 "$PP" "$c" --help
  has "$T/out" "usage: pulse-pipe $c"
done
expect_code 0 "$PP" kinds concat
has "$T/out" "concat (version 1)"
expect_code 2 "$PP" kinds nosuch
one_line "$T/err"
expect_code 2 "$PP" run
one_line "$T/err"
expect_code 2 "$PP" frobnicate
one_line "$T/err"
expect_code 2 "$PP" run "$M" --threads zero
one_line "$T/err"
expect_code 2 "$PP" run "$T/missing.lua"
one_line "$T/err"
has "$T/err" "missing.lua"
passed
