#!/usr/bin/env bash
# run: fuzzes every parser harness (or those named) for SECONDS each with libFuzzer, ASan and UBSan, starting
# from the committed corpus. A crash or a failed property stops with the input saved under
# build-fuzz/findings/<name>/ and a non-zero exit; reproduce it with `build-fuzz/tests/fuzz/fuzz_<name> FILE`,
# fix the parser, and commit the input as tests/fuzz/corpus/<name>/crash-<what> so that every build replays it.
#   usage: tests/fuzz/run.sh [SECONDS] [NAME...]      (default 60 seconds, every harness)
#   env:   BUILD (default build-fuzz), JOBS (harnesses at once, default 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
B=${BUILD:-build-fuzz}
all=(json safetensors gguf config tokenizer dataset tar image mmbench peft bundle manifest)
if [ $# -gt 0 ]; then names=("$@"); else names=("${all[@]}"); fi
CC=clang cmake -S . -B "$B" -DPULSE_FUZZ=ON -DPULSE_CUDA=OFF -DPULSE_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j "$(nproc)" --target "${names[@]/#/fuzz_}" >/dev/null
fuzz_one() {
  local n=$1 work="$B/findings/$1"
  mkdir -p "$work/corpus"
  # the committed corpus is read, never written: new inputs go to the work corpus
  (cd "$work" && UBSAN_OPTIONS=print_stacktrace=1 "../../tests/fuzz/fuzz_$n" -max_total_time="$secs" \
    -rss_limit_mb=4096 -timeout=20 -max_len=65536 -print_final_stats=1 corpus "$OLDPWD/tests/fuzz/corpus/$n" \
    >log 2>&1) && echo "$n: ok, $(grep -a -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$') runs" ||
    { echo "$n: FAILED (log $work/log)"; grep -a -m3 -E 'ERROR|property failed|SUMMARY' "$work/log" || true; return 1; }
}
export -f fuzz_one
export B secs
printf '%s\n' "${names[@]}" | xargs -P "${JOBS:-1}" -I{} bash -c 'fuzz_one {}'
