#!/usr/bin/env bash
# unlearn_reference: GA+KLR's and NPO's reference in the unlearn stage (docs/stages.md). With reference =
# "round_start" the trained model is its own reference (adapter bypassed, projector at its start values:
# engine/unlearn_loss.h's struct unlearn_ref); with "original" the stage builds a second model. In round 1
# there is no earlier round, so the two references are the same model: on the micro world, both methods with
# the projector training, dropout on and several steps give the same output ids and metrics either way, run
# with PULSE_CHECK_OPS=1. The dry run's memory plan shows the shared reference's blocks (its logits, and the
# projector's start values only when the projector trains) or the second model's.
source "$(dirname "$0")/lib.bash"
cp "$SRC"/tests/cli/manifests/protocol/micro_settings.lua "$SRC"/tests/cli/manifests/protocol/micro_base.lua "$T/"
M="$T/ref.lua"
cat >"$M" <<'LUA'
local s = require "micro_settings"
local b = require "micro_base"
local with, w = b.with, b.w
local two = stage "select" (with({ kind = "select", group = "real", top = 8, forget = 4, rounds = 2 }, b.model,
  b.data))
local u = with(s.unlearn, b.model, { kind = "unlearn", split = two.out.split, examples = w.out.pretrain,
  people = w.out.people, images = w.out.images, lr = 0.002, batch = 3, epochs = 2, lora_dropout = 0.1 })
local S = {}
for _, method in ipairs({ "ga_klr", "npo" }) do
  for _, ref in ipairs({ "round_start", "original" }) do
    S[method .. "/" .. ref] = stage(method .. "/" .. ref) (with(u, { method = method, round = 1, reference = ref }))
  end
end
-- round 2 from round 1's outputs, the projector frozen: the shared reference without a projector copy
local r1 = S["ga_klr/round_start"]
stage "round2/llm" (with(u, { method = "ga_klr", round = 2, target = "llm", adapters = { r1.out.adapter },
  adapter_configs = { r1.out.adapter_config }, projector = r1.out.projector }))
LUA

# The plans: the shared reference's blocks, or a second model.
expect_code 0 "$PP" run "$M" --only select
expect_code 0 "$PP" run "$M" --dry-run
plan() { sed -n "\\|] $1 |,\\|total|p" "$T/out" >"$T/plan"; }
plan ga_klr/round_start
has "$T/plan" "reference logits (KL / NPO)"
has "$T/plan" "reference start values (trained tensors)"
lacks "$T/plan" "reference model"
plan npo/original
has "$T/plan" "reference model (KL / NPO)"
lacks "$T/plan" "reference logits"
plan round2/llm
has "$T/plan" "reference logits (KL / NPO)"
lacks "$T/plan" "reference start values"

# Round 1: the shared reference and the second model give the same bits.
PULSE_CHECK_OPS=1 expect_code 0 "$PP" run "$M" --threads 2
has "$T/out" "9 stages: 5 computed, 4 cached, 0 failed"
lacks "$T/err" "ops check"
ids() { "$PP" show "$1" --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(sorted((k, v["id"]) for k, v in r["outputs"].items()), sorted(r["metrics"].items()))'; }
for method in ga_klr npo; do
  ids "$method/round_start" >"$T/shared"
  ids "$method/original" >"$T/separate"
  diff "$T/shared" "$T/separate" >&2 || fail "$method: the shared reference's outputs differ from the second model's"
  has "$T/shared" "loss_first_epoch"
done
# the runs trained: their loss moved from the first epoch to the last; a frozen projector stays as it was
"$PP" show ga_klr/round_start --json | python3 -c '
import json, sys
m = json.load(sys.stdin)["metrics"]
assert m["loss_first_epoch"] != m["loss_last_epoch"], m'
[ "$(output_id ga_klr/round_start projector)" = "$(output_id round2/llm projector)" ] ||
  fail "round 2 with target llm changed the projector"
expect_code 0 "$PP" verify
passed
