#!/usr/bin/env bash
# prune: `gc --keep MANIFEST` keeps what the manifests use now and prunes every other record: dropped from the
# audit log's head in one commit, then its record file and the objects only it referenced. A dry run changes
# nothing; the kept manifest stays fully cached; a pruned stage computes again; the store verifies throughout;
# a bad --keep changes nothing.
source "$(dirname "$0")/lib.bash"
M="$T/chain.lua"
O="$T/other.lua"
cp "$SRC/tests/cli/manifests/chain.lua" "$M"
# a and b shared; ab and the rounds differ; extra is other.lua's alone
extra='stage "extra" { kind = "concat", parts = { ab.out.data }, separator = "!" }'
{ sed 's/separator = "|"/separator = "+"/' "$M"; echo "$extra"; } >"$O"
expect_code 0 "$PP" run "$M"
expect_code 0 "$PP" run "$O"
objects() { find "$PULSE_STORE/objects" -type f | wc -l; }
before=$(objects)
other_ab=$("$PP" show ab --manifest "$O" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['key'])")

expect_code 0 "$PP" gc --keep "$M" --grace 0
has "$T/out" "would prune record $other_ab ab"
has "$T/out" "would prune 5 records, kept 6"
[ "$(objects)" = "$before" ] || fail "a dry run removed objects"
expect_code 0 "$PP" show ab --manifest "$O"

expect_code 0 "$PP" gc --keep "$M" --grace 3600 --yes
has "$T/out" "pruned 0 records, kept 11" # everything is younger than an hour

expect_code 0 "$PP" gc --keep "$M" --grace 0 --yes
has "$T/out" "prune record $other_ab ab"
has "$T/out" "pruned 5 records, kept 6"
# the 5 record files and the 3 objects only they referenced (round/1 and extra, one part each, repeat ab's
# bytes), and the stage locks nobody holds
[ "$(grep -c '^remove record ' "$T/out")" = 5 ] && [ "$(grep -c '^remove object ' "$T/out")" = 3 ] ||
  { cat "$T/out" >&2; fail "not 5 records and 3 objects removed"; }
[ "$(objects)" = $((before - 3)) ] || fail "expected 3 objects fewer than $before, have $(objects)"
expect_code 0 "$PP" verify
expect_code 0 "$PP" log
has "$T/out" "prune 5 records"
expect_code 1 "$PP" show ab --manifest "$O"
expect_code 0 "$PP" status "$O"
has "$T/out" "todo  extra                        its last record is gone (gc --keep prunes; verify finds damage)"
expect_code 0 "$PP" show ab # the name pointed at other.lua's ab, run last; now at chain.lua's, which was kept
has "$T/out" 'separator            "|"'
expect_code 0 "$PP" run "$M"
has "$T/out" "0 computed, 6 cached"
expect_code 0 "$PP" run "$O"
has "$T/out" "5 computed, 2 cached"
expect_code 0 "$PP" verify

# Keeping both prunes nothing; a missing manifest, a missing value or a stray argument change nothing.
expect_code 0 "$PP" gc --keep "$M" --keep "$O" --grace 0 --yes
has "$T/out" "pruned 0 records, kept 11"
echo 'stage "lonely" { kind = "random", seed = 99, bytes = 5 }' >"$T/lonely.lua"
expect_code 2 "$PP" gc --keep "$M" --keep "$T/lonely.lua" --grace 0 --yes # nothing of it done: wrong store?
has "$T/err" "gc: --keep: $T/lonely.lua: none of its stages is done in this store"
one_line "$T/err"
expect_code 2 "$PP" gc --keep "$T/missing.lua" --grace 0 --yes
has "$T/err" "gc: --keep: "
one_line "$T/err"
expect_code 2 "$PP" gc --keep
one_line "$T/err"
expect_code 2 "$PP" gc --frobnicate
one_line "$T/err"
expect_code 0 "$PP" run "$O"
has "$T/out" "0 computed, 7 cached"
expect_code 0 "$PP" gc --help
has "$T/out" "--keep MANIFEST"

# A kept stage whose object is missing (damage verify reports) is still kept, and so is what follows it: a run
# recomputes the stage to the same key, and everything after it is a cache hit.
main=$PULSE_STORE
export PULSE_STORE="$T/damaged"
expect_code 0 "$PP" run "$M"
a_data=$(output_id a data)
rm "$PULSE_STORE/objects/sha256/${a_data:7:2}/${a_data:9}"
expect_code 3 "$PP" verify
expect_code 0 "$PP" gc --keep "$M" --grace 0 --yes
has "$T/out" "pruned 0 records, kept 6"
expect_code 0 "$PP" run "$M"
has "$T/out" "1 computed, 5 cached"
expect_code 0 "$PP" verify
export PULSE_STORE=$main

# Killed at every durability point of a prune: the store verifies, the kept manifest is still all cached, and
# a second prune finishes the work.
[ "${PULSE_FAULTS:-0}" = 1 ] || { echo "SKIP: crash points (built without PULSE_FAULT_INJECTION)"; passed; exit 0; }
cp -a "$PULSE_STORE" "$T/template"
export PULSE_STORE="$T/count"
cp -a "$T/template" "$PULSE_STORE"
PULSE_FAULT_LOG="$T/points" "$PP" gc --keep "$M" --grace 0 --yes >/dev/null
points=$(wc -l <"$T/points")
[ "$points" -ge 8 ] || fail "only $points durability points in a prune"
for k in $(seq 1 "$points"); do
  export PULSE_STORE="$T/k$k"
  cp -a "$T/template" "$PULSE_STORE"
  set +e; PULSE_CRASH_AT=$k "$PP" gc --keep "$M" --grace 0 --yes >"$T/out" 2>&1; code=$?; set -e
  [ "$code" -eq 137 ] || fail "crash point $k: gc exited $code, not killed"
  expect_code 0 "$PP" verify
  expect_code 0 "$PP" gc --keep "$M" --grace 0 --yes
  expect_code 0 "$PP" verify
  lacks "$T/out" "note"
  expect_code 0 "$PP" run "$M"
  has "$T/out" "0 computed, 6 cached"
  rm -rf "$PULSE_STORE"
done
echo "prune.sh: $points crash points"
passed
