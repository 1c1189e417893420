#!/usr/bin/env bash
# precision: the model stages' `precision` parameter reaches the engine: a micro pretraining and its evaluation
# with precision "bf16" compute other weights than with "fp32" (the bf16 twin of the CPU table, engine/ops.h),
# and "bf16-act" (activations in bf16 storage too) others again, each repeats bit for bit, the record keeps the parameter, and an unknown precision fails with one line and
# leaves the store valid.
source "$(dirname "$0")/lib.bash"
cp "$SRC"/tests/cli/manifests/protocol/micro_settings.lua "$T/"
# manifest FILE PRECISION: the micro world, its pretraining and the pretrained evaluation split's scoring
manifest() {
    cat >"$1" <<LUA
local s = require "micro_settings"
local w = stage "world" { kind = "synth", seed = 1, real = 12, fictitious = 10, general_eval = 20,
  general_train = 40, image_size = 16, real_photos = 3, fictitious_photos = 2, test_photos = 1 }
local p = { kind = "pretrain", examples = w.out.pretrain, images = w.out.images, tokenizer = w.out.tokenizer,
  precision = "$2" }
for k, v in pairs(s.pretrain) do p[k] = v end
stage "base" (p)
LUA
}
id_of() { "$PP" show base --json | python3 -c "import json,sys; print(json.load(sys.stdin)['outputs']['model']['id'])"; }

manifest "$T/f.lua" fp32
expect_code 0 "$PP" run "$T/f.lua"
fp32=$(id_of)
manifest "$T/b.lua" bf16
expect_code 0 "$PP" run "$T/b.lua"
has "$T/out" "1 computed" # the world is cached; the base is a new stage key
bf16=$(id_of)
[ "$fp32" != "$bf16" ] || fail "bf16 products gave the fp32 weights"
"$PP" show base --json | python3 -c "import json,sys; assert json.load(sys.stdin)['params']['precision'] == 'bf16'" ||
    fail "the record does not keep precision"
# the same bits again, from a fresh store
PULSE_STORE="$T/again" expect_code 0 "$PP" run "$T/b.lua"
[ "$(PULSE_STORE="$T/again" id_of)" = "$bf16" ] || fail "bf16 pretraining is not deterministic"
# bf16 activations too: other weights again, the same bits from a fresh store, and with every operation's
# pointers checked (PULSE_CHECK_OPS: bf16 ranges are checked as the float arrays they stand for)
manifest "$T/a.lua" bf16-act
expect_code 0 "$PP" run "$T/a.lua"
act=$(id_of)
[ "$act" != "$bf16" ] && [ "$act" != "$fp32" ] || fail "bf16 activations gave the weights of another precision"
PULSE_STORE="$T/again" expect_code 0 "$PP" run "$T/a.lua"
[ "$(PULSE_STORE="$T/again" id_of)" = "$act" ] || fail "bf16-act pretraining is not deterministic"
PULSE_CHECK_OPS=1 PULSE_STORE="$T/checked" expect_code 0 "$PP" run "$T/a.lua"
[ "$(PULSE_STORE="$T/checked" id_of)" = "$act" ] || fail "bf16-act under PULSE_CHECK_OPS gave other weights"
# the benchmark's profiler wraps the step's table (bench/prof_ops.c) and must carry bf16-act over
BT=$(dirname "$PP")/bench/bench_train
if [ -x "$BT" ]; then
    "$BT" --shape tiny --dtype bf16-act --steps 1 --warmup 1 --threads 1 --profile >"$T/prof" 2>&1 ||
        { cat "$T/prof" >&2; fail "bench_train --dtype bf16-act --profile failed"; }
    has "$T/prof" '"dtype": "bf16-act"'
fi
manifest "$T/x.lua" fp16
expect_code 1 "$PP" run "$T/x.lua"
has "$T/err" "precision: unknown 'fp16' (fp32, bf16 or bf16-act)"
expect_code 0 "$PP" verify
passed
