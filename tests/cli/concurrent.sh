#!/usr/bin/env bash
# Two runs of one manifest on one store at once: both succeed and every stage is computed exactly once.
source "$(dirname "$0")/lib.bash"
sed 's/bytes = 1000/bytes = 3000000/; s/bytes = 2000/bytes = 3000000/' "$SRC/tests/cli/manifests/chain.lua" >"$T/m.lua"
for trial in 1 2 3; do
  rm -rf "$PULSE_STORE"
  "$PP" run "$T/m.lua" >"$T/one" 2>&1 &
  p1=$!
  "$PP" run "$T/m.lua" >"$T/two" 2>&1 &
  p2=$!
  wait $p1 || { cat "$T/one" "$T/two"; fail "trial $trial: first run failed"; }
  wait $p2 || { cat "$T/one" "$T/two"; fail "trial $trial: second run failed"; }
  n=$(cat "$T/one" "$T/two" | grep -c ' done in ')
  [ "$n" -eq 6 ] || { cat "$T/one" "$T/two"; fail "trial $trial: $n stage computations, expected 6"; }
  expect_code 0 "$PP" verify
  "$PP" log >"$T/log"
  [ "$(wc -l <"$T/log")" -eq 6 ] || { cat "$T/log" "$T/one" "$T/two"; fail "trial $trial: audit log does not have 6 commits"; }
done
passed
