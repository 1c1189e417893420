#!/usr/bin/env bash
# Crash safety: pulse-pipe run is killed with SIGKILL at every durability point (PULSE_CRASH_AT, the fsio seam)
# and at random times. After each kill the store must verify, the rerun must reuse every stage the audit log
# had finished, and the final outputs must be bit-identical to an uninterrupted run.
source "$(dirname "$0")/lib.bash"
[ "${PULSE_FAULTS:-0}" = 1 ] || { echo "SKIP: built without PULSE_FAULT_INJECTION"; exit 0; }
M="$SRC/tests/cli/manifests/chain.lua"
stages="a b ab round/1 round/2 round/3"

ids() { for s in $stages; do printf '%s=%s\n' "$s" "$(output_id "$s" data)"; done; }

export PULSE_STORE="$T/ref"
expect_code 0 "$PP" run "$M"
ids >"$T/ref.ids"

export PULSE_STORE="$T/count"
PULSE_FAULT_LOG="$T/points" "$PP" run "$M" >/dev/null
points=$(wc -l <"$T/points")
[ "$points" -gt 20 ] || fail "only $points durability points in a whole run"
echo "crash.sh: $points durability points"

# finished STORE: the stage names the audit log holds.
finished() { { PULSE_STORE="$1" "$PP" log 2>/dev/null || true; } | awk '{print $(NF-2)}' | sort -u; }

for k in $(seq 1 "$points"); do
  export PULSE_STORE="$T/k$k"
  set +e; PULSE_CRASH_AT=$k "$PP" run "$M" >"$T/out" 2>&1; code=$?; set -e
  [ "$code" -eq 137 ] || fail "crash point $k: run exited $code, not killed"
  # A run killed before the store's FORMAT file existed left no store to verify (the rerun creates it).
  [ ! -e "$PULSE_STORE/FORMAT" ] || expect_code 0 "$PP" verify
  finished "$PULSE_STORE" >"$T/done"
  expect_code 0 "$PP" run "$M"
  while read -r s; do
    [ -z "$s" ] || grep -qE "^\[[0-9]+/6\] $s +cached$" "$T/out" || fail "crash point $k: '$s' was finished but recomputed"
  done <"$T/done"
  ids | cmp -s - "$T/ref.ids" || fail "crash point $k: outputs differ from the uninterrupted run"
  expect_code 0 "$PP" verify
  rm -rf "$PULSE_STORE"
done

# Random-time kills on one store until a run completes, with stages large enough to be caught mid-write. The
# window grows with each attempt, so that a slow or busy machine (where no stage fits 0.4 s) still gets a run
# through before the attempts run out.
sed 's/bytes = 1000/bytes = 6000000/; s/bytes = 2000/bytes = 5000000/' "$M" >"$T/big.lua"
export PULSE_STORE="$T/ref-big"
"$PP" run "$T/big.lua" >/dev/null
ids >"$T/ref-big.ids"
export PULSE_STORE="$T/random"
kills=0
for attempt in $(seq 1 60); do
  "$PP" run "$T/big.lua" >/dev/null 2>&1 &
  pid=$!
  ms=$((RANDOM % 400 + attempt * 50))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  [ ! -e "$PULSE_STORE/FORMAT" ] || expect_code 0 "$PP" verify
  # No store yet (killed before it was created) or stages left: kill again.
  st=$("$PP" status "$T/big.lua" 2>&1) || continue
  if echo "$st" | grep -q '^todo'; then continue; fi
  break
done
expect_code 0 "$PP" run "$T/big.lua"
has "$T/out" "0 computed, 6 cached"
ids | cmp -s - "$T/ref-big.ids" || fail "random kills: outputs differ from the uninterrupted run"
echo "crash.sh: $kills random kills"
passed
