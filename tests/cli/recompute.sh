#!/usr/bin/env bash
# recompute: the `recompute` parameter of pretrain, finetune and unlearn (activation recomputation,
# docs/engine.md) changes how a stage computes, never what: on the micro protocol with models of several
# layers (so that layers share their recomputed intermediates), switching it on for every training stage keeps
# every key (all cached), and recomputing the pretraining (its tower frozen; test_engine_recompute.c covers a
# training tower), the fine-tuning and the unlearning runs of each method (GA+KLR and NPO with their reference
# model) with it on gives outputs identical to their records. `status` says nothing about the switch.
source "$(dirname "$0")/lib.bash"
M="$T/micro.lua"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"
sed -i 's/intermediate = 64, layers = 1,/intermediate = 64, layers = 3,/; s/vision_layers = 1,/vision_layers = 2,/' \
  "$T/micro_settings.lua"
grep -q "layers = 3," "$T/micro_settings.lua" || fail "micro_settings.lua changed: no decoder layers to set"
expect_code 0 "$PP" run "$M" --threads 2
has "$T/out" "0 cached, 0 failed"

for kind in pretrain finetune unlearn; do
  sed -i "s/^  $kind = { /  $kind = { recompute = true, /" "$T/micro_settings.lua"
  grep -q "^  $kind = { recompute = true," "$T/micro_settings.lua" || fail "could not switch $kind"
done
expect_code 0 "$PP" run "$M" --threads 2
has "$T/out" "0 computed, 35 cached"
expect_code 0 "$PP" status "$M"
lacks "$T/out" "recompute"

force=()
for st in base vanilla unlearn/finetuned/ga unlearn/finetuned/ga_klr unlearn/finetuned/npo \
  unlearn/finetuned/ga_klr/round1; do
  force+=(--force "$st")
done
expect_code 0 "$PP" run "$M" --threads 2 "${force[@]}"
has "$T/out" "6 computed, 29 cached"
same=$(grep -c "(outputs identical to its record)" "$T/out")
[ "$same" -eq 6 ] || { cat "$T/out"; fail "recompute changed outputs ($same of 6 identical)"; }
"$PP" show base --json | python3 -c "import json,sys; assert json.load(sys.stdin)['params']['recompute'] is False" ||
  fail "the record lost its recompute parameter"
expect_code 0 "$PP" verify
passed
