#!/usr/bin/env bash
# bench/protocol.sh: times a protocol manifest end to end from an empty store, then its cached rerun, and
# prints the per-stage wall times from the stage records and their sums per kind (docs/results.md keeps them).
#   bench/protocol.sh                          # manifests/pulse.lua, threads = nproc
#   MANIFEST=manifests/quick.lua THREADS=2 bench/protocol.sh
#   JOBS=2 bench/protocol.sh                   # run --jobs 2: independent stages side by side
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PP=${PP:-$ROOT/build/pulse-pipe}
MANIFEST=${MANIFEST:-$ROOT/manifests/pulse.lua}
THREADS=${THREADS:-$(nproc)}
JOBS=${JOBS:-1}
STORE=${STORE:-$(mktemp -d)/store}

now() { date +%s.%N; }
t0=$(now)
"$PP" --store "$STORE" run "$MANIFEST" --threads "$THREADS" --jobs "$JOBS" >"$STORE.log" 2>&1 ||
  { tail -5 "$STORE.log"; exit 1; }
t1=$(now)
"$PP" --store "$STORE" run "$MANIFEST" --threads "$THREADS" >"$STORE.rerun.log" 2>&1
t2=$(now)
grep -q ' 0 computed, ' "$STORE.rerun.log" || { echo "bench: the rerun computed something" >&2; exit 1; }

echo "manifest: $MANIFEST  threads: $THREADS  jobs: $JOBS  commit: $(git -C "$ROOT" rev-parse --short HEAD)  store: $STORE"
python3 -c "print('full run: %.1f s   cached rerun: %.2f s\n' % ($t1 - $t0, $t2 - $t1))"
# One line per stage, then the sums per kind (the table docs/results.md keeps).
names=$("$PP" --store "$STORE" status "$MANIFEST" --json |
  python3 -c 'import json,sys; [print(s["name"]) for s in json.load(sys.stdin)["stages"]]')
sep=""
{
  echo "["
  for name in $names; do printf '%s' "$sep"; "$PP" --store "$STORE" show "$name" --json; sep=","; done
  echo "]"
} | python3 -c '
import json, sys
recs = json.load(sys.stdin)
print("| stage | kind | wall s |\n|---|---|---:|")
for r in recs:
    print("| %s | %s | %.1f |" % (r["name"], r["kind"], r["wall_s"]))
kinds = {}
for r in recs:
    n, t = kinds.get(r["kind"], (0, 0.0))
    kinds[r["kind"]] = (n + 1, t + r["wall_s"])
print("\n| kind | stages | wall s |\n|---|---:|---:|")
for k, (n, t) in kinds.items():
    print("| %s | %d | %.1f |" % (k, n, t))
print("| all | %d | %.1f |" % (len(recs), sum(t for _, t in kinds.values())))'
