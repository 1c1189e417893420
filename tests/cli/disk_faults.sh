#!/usr/bin/env bash
# ENOSPC and EIO at every write, fsync and rename of a run: one clear error, a non-zero exit, a store that
# verifies, and a rerun that completes with the same outputs.
source "$(dirname "$0")/lib.bash"
[ "${PULSE_FAULTS:-0}" = 1 ] || { echo "SKIP: built without PULSE_FAULT_INJECTION"; exit 0; }
M="$SRC/tests/cli/manifests/chain.lua"
export PULSE_STORE="$T/ref"
"$PP" run "$M" >/dev/null
ref=$(output_id round/3 data)
for op in write fsync rename; do
  # Fail the n-th call of op, for n = 1, 2, ... until n is past the last call and the run succeeds.
  for n in $(seq 1 400); do
    for e in ENOSPC EIO; do
      export PULSE_STORE="$T/f"
      rm -rf "$PULSE_STORE"
      set +e; PULSE_FAULT="$op:$n:$e" "$PP" run "$M" >"$T/out" 2>"$T/err"; code=$?; set -e
      if [ "$code" -eq 0 ]; then break 2; fi
      [ "$code" -eq 1 ] || { cat "$T/err"; fail "$op:$n:$e: exit $code"; }
      msg=$([ "$e" = ENOSPC ] && echo "No space left on device" || echo "Input/output error")
      grep -q "$msg" "$T/err" || { cat "$T/err"; fail "$op:$n:$e: no clear error"; }
      [ ! -e "$PULSE_STORE/FORMAT" ] || expect_code 0 "$PP" verify
      expect_code 0 "$PP" run "$M"
      [ "$(output_id round/3 data)" = "$ref" ] || fail "$op:$n:$e: rerun output differs"
    done
  done
  echo "disk_faults.sh: $op: a run survives faults at each of its first $((n - 1)) calls"
done
passed
