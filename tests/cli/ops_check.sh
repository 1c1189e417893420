#!/usr/bin/env bash
# ops_check: the whole PULSE graph on the micro world (tests/cli/manifests/protocol, as protocol.sh runs it)
# with PULSE_CHECK_OPS=1, which wraps the operation table in engine/ops_check.c: every pointer an operation is
# handed must lie inside memory from mem_alloc for the extent it reads or writes, or the run aborts with one
# line (a malloc'd buffer passes on the CPU but is an illegal address on the GPU). The checked run succeeds,
# prints no check line, and its outputs have the same object ids as an unchecked run: the wrapper only looks.
# An audit (re-execution from stored inputs) of an unlearning stage and a few stages with parameters the
# protocol leaves at their defaults run checked too.
source "$(dirname "$0")/lib.bash"
M="$T/micro.lua"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"
N=35

export PULSE_STORE="$T/checked"
start=$(date +%s%N)
PULSE_CHECK_OPS=1 expect_code 0 "$PP" run "$M" --threads 2
ms=$((($(date +%s%N) - start) / 1000000))
has "$T/out" "$N stages: $N computed, 0 cached, 0 failed, 0 skipped"
lacks "$T/err" "ops check"
ids_of "$M" >"$T/checked.ids"
PULSE_CHECK_OPS=1 expect_code 0 "$PP" audit unlearn/finetuned/ga_klr/round2 --threads 1
lacks "$T/err" "ops check"
has "$T/out" "same "
lacks "$T/out" "different"

# Parameters the protocol leaves at their defaults, which take other paths through the model: no adapter
# dropout, fewer LoRA targets, weight decay, captions as well as facts, a second round against the original
# model with the projector frozen.
cat >"$T/extra.lua" <<'LUA'
local s = require "micro_settings"
local b = require "micro_base"
local with, w, model, data = b.with, b.w, b.model, b.data
stage "extra/finetune" (with({ kind = "finetune", examples = w.out.finetune, images = w.out.images },
  s.finetune, model, { lora_dropout = 0.0, lora_targets = { "q_proj", "down_proj" }, weight_decay = 0.01 }))
local two = stage "extra/select" (with({ kind = "select", group = "real", top = 8, forget = 4, rounds = 2 },
  model, data))
local u = { kind = "unlearn", split = two.out.split, examples = w.out.pretrain, people = w.out.people,
  images = w.out.images }
local r1 = stage "extra/round1" (with(u, s.unlearn, model, { method = "npo", round = 1,
  sources = { "fact", "caption" } }))
stage "extra/round2" (with(u, s.unlearn, model, { method = "ga_klr", round = 2, reference = "original",
  target = "llm", lora_dropout = 0.0, adapters = { r1.out.adapter },
  adapter_configs = { r1.out.adapter_config }, projector = r1.out.projector }))
LUA
PULSE_CHECK_OPS=1 expect_code 0 "$PP" run "$T/extra.lua" --threads 2
has "$T/out" "7 stages: 4 computed, 3 cached, 0 failed"
lacks "$T/err" "ops check"

export PULSE_STORE="$T/plain"
expect_code 0 "$PP" run "$M" --threads 2
ids_of "$M" >"$T/plain.ids"
diff "$T/plain.ids" "$T/checked.ids" >&2 || fail "the checked run's outputs differ from the unchecked run's"

echo "ops_check.sh: $N stages checked in ${ms} ms"
passed
