# Shared by the command-line tests: the binary, a scratch directory removed on exit, and assertions that say
# what they expected.
set -euo pipefail
PP="${PULSE_BIN:?PULSE_BIN must point at the pulse-pipe binary}"
SRC="${PULSE_SRC:?PULSE_SRC must point at the source tree}"
T=$(mktemp -d /tmp/pulse-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
export PULSE_STORE="$T/store"
unset PULSE_FAULT PULSE_CRASH_AT PULSE_FAULT_LOG

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_code CODE cmd...: runs cmd, fails unless it exits with CODE; output in $T/out, $T/err.
expect_code() {
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local got=$?; set -e
  [ "$got" -eq "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, expected $want"; }
}
has() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks: $2"; }; }
lacks() { ! grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "$1 should not contain: $2"; }; }
# one_line FILE: stderr must be exactly one line (the one clear error line).
one_line() { [ "$(wc -l <"$1")" -eq 1 ] || { cat "$1" >&2; fail "$1 is not one line"; }; }
# output_id STAGE OUTPUT: the object id a stage's record gives an output.
output_id() { "$PP" show "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['outputs']['$2']['id'])"; }
# ids_of MANIFEST: every stage's outputs in the current store, "stage output id" per line (all must be done).
ids_of() {
  python3 - "$PP" "$1" <<'PY'
import json, subprocess, sys
pp, m = sys.argv[1:3]
for s in json.loads(subprocess.check_output([pp, "status", m, "--json"]))["stages"]:
    assert s["state"] == "done", s
    r = json.loads(subprocess.check_output([pp, "show", s["name"], "--json"]))
    for o, v in sorted(r["outputs"].items()):
        print(s["name"], o, v["id"])
PY
}
passed() { echo "PASS: $(basename "$0")"; }
