#!/usr/bin/env bash
# dry_run_plan: `run --dry-run` prints, under each model stage that would run, its memory plan (one line per
# block and the total, engine/llava_plan.h) when its model's config is known without running anything: from
# the store once the model's producer has run (the sequence then the corpus's longest), or from the directory
# an import-model stage would read (the sequence then max_positions); `recompute` shrinks the activations,
# and so does precision "bf16-act" (2 bytes a value).
# select and evaluate, which only score, plan forwards in the shared layout. Nothing is run by a dry run, and
# the store stays valid.
source "$(dirname "$0")/lib.bash"
cp "$SRC"/tests/cli/manifests/protocol/micro_settings.lua "$T/"
M="$T/plan.lua"
cat >"$M" <<LUA
local s = require "micro_settings"
local function with(...)
  local t = {}
  for _, part in ipairs({ ... }) do for k, v in pairs(part) do t[k] = v end end
  return t
end
local w = stage "world" (with({ kind = "synth", seed = s.seed }, s.world))
-- two decoder layers: with one, recomputation has no other layer to share that layer's intermediates with
local base = stage "base" (with({ kind = "pretrain", examples = w.out.pretrain, images = w.out.images,
  tokenizer = w.out.tokenizer }, s.pretrain, { layers = 2 }))
local data = { examples = w.out.finetune, images = w.out.images }
local model = { model = base.out.model, config = base.out.config, tokenizer = base.out.tokenizer }
stage "ft" (with({ kind = "finetune" }, s.finetune, data, model))
stage "ft_rc" (with({ kind = "finetune", recompute = true }, s.finetune, data, model))
local imp = stage "imported" { kind = "import-model", path = "$SRC/tests/data/llava_tiny" }
stage "ft_imported" (with({ kind = "finetune" }, s.finetune, data,
  { model = imp.out.model, config = imp.out.config, tokenizer = imp.out.tokenizer, batch = 4 }))
stage "ft_act" (with({ kind = "finetune", precision = "bf16-act" }, s.finetune, data, model))
local world = { people = w.out.people, items = w.out.items, images = w.out.images }
local sel = stage "sel" (with({ kind = "select", group = "real", top = 2, forget = 1 }, model, world))
stage "ev" (with({ kind = "evaluate", split = sel.out.split, scoring = "likelihood" }, model, world))
stage "ev_gen" (with({ kind = "evaluate", split = sel.out.split, generate = 8 }, model, world))
LUA

# Nothing in the store: the pretrained model's config is unknown, the imported one's is on disk.
expect_code 0 "$PP" run "$M" --dry-run
has "$T/out" "memory plan: once 'base' has run"
has "$T/out" "memory plan: batch 4 x 64 tokens (max_positions: the corpus is not in the store yet), fp32, \
recompute off"
sed -n '/ft_imported/,$p' "$T/out" >"$T/imported"
for line in "weights (fp32)" "activations (kept for every layer)" "LoRA adapter (A, B)" "LoRA activations" \
  "gradients" "backward scratch" "AdamW moments" "loss buffers (during a step)" "total"; do
  has "$T/imported" "        $line"
done
lacks "$T/out" "reference model"

# The base model in the store: its config and the corpus are known, for both finetunes.
expect_code 0 "$PP" run "$M" --only base
expect_code 0 "$PP" run "$M" --dry-run
sed -n '/\] ft  /,/\] ft_rc/p' "$T/out" >"$T/ft"
sed -n '/\] ft_rc/,/\] imported/p' "$T/out" >"$T/ft_rc"
has "$T/ft" "tokens (its inputs' longest sequence), fp32, recompute off"
has "$T/ft" "activations (kept for every layer)"
has "$T/ft_rc" "tokens (its inputs' longest sequence), fp32, recompute on"
has "$T/ft_rc" "activations (recomputed per layer)"
# the same batch and sequence; the activations and the total are smaller with recompute
python3 - "$T/ft" "$T/ft_rc" <<'PY'
import re, sys
def plan(path):
    text = open(path).read()
    unit = {"KiB": 1, "MiB": 1024, "GiB": 1 << 20}
    sizes = {m[0].split(" (")[0]: float(m[1]) * unit[m[2]]
             for m in re.findall(r"^ +(\S.*?) {2,}([0-9.]+) (KiB|MiB|GiB)$", text, re.M)}
    return re.search(r"batch (\d+) x (\d+) tokens", text).groups(), sizes
(shape_a, a), (shape_b, b) = plan(sys.argv[1]), plan(sys.argv[2])
assert shape_a == shape_b and int(shape_a[1]) > 0, (shape_a, shape_b)
assert b["activations"] < a["activations"] and b["total"] < a["total"], (a, b)
assert b["weights"] == a["weights"] and b["gradients"] == a["gradients"], (a, b)
PY
# bf16 activations (precision "bf16-act"): the activations and the backward's scratch at 2 bytes a value
sed -n '/\] ft_act/,/\] sel/p' "$T/out" >"$T/ft_act"
has "$T/ft_act" "tokens (its inputs' longest sequence), bf16-act, recompute off"
has "$T/ft_act" "activations (bf16, kept for every layer)"
has "$T/ft_act" "backward scratch (bf16 but logits)"
python3 - "$T/ft" "$T/ft_act" <<'PY'
import re, sys
unit = {"KiB": 1, "MiB": 1024, "GiB": 1 << 20}
def sizes(path):
    return {m[0].split(" (")[0]: float(m[1]) * unit[m[2]]
            for m in re.findall(r"^ +(\S.*?) {2,}([0-9.]+) (KiB|MiB|GiB)$", open(path).read(), re.M)}
a, b = sizes(sys.argv[1]), sizes(sys.argv[2])
# the rows that stay fp32 (norm statistics, logits, ...) keep the bf16 block above half
assert 0.5 * a["activations"] < b["activations"] < 0.75 * a["activations"], (a, b)
assert b["total"] < a["total"], (a, b)
PY

# Scoring stages (select, evaluate): forwards only, 16 sequences, the layers' intermediates shared (the
# recomputation layout stages/quiz.c chooses), no training blocks. select's sequence is its questions'
# longest; evaluate's (its options by likelihood: the cloze prompt and an answer) is max_positions until its
# split is in the store.
sed -n '/\] sel/,/\] ev /p' "$T/out" >"$T/sel"
sed -n '/\] ev /,/\] ev_gen/p' "$T/out" >"$T/ev"
has "$T/sel" "tokens (its inputs' longest sequence), fp32, recompute on"
has "$T/ev" "tokens (max_positions: the corpus is not in the store yet), fp32, recompute on"
expect_code 0 "$PP" run "$M" --only sel
expect_code 0 "$PP" run "$M" --dry-run --only ev --only ev_gen
sed -n '/\] ev /,/\] ev_gen/p' "$T/out" >"$T/ev"
sed -n '/\] ev_gen/,$p' "$T/out" >"$T/ev_gen"
has "$T/ev" "tokens (its inputs' longest sequence), fp32, recompute on"
lacks "$T/ev" "K/V cache"
# generating (evaluate's generate = 8): the K/V cache of 16 sequences of the longest prompt + 8 positions
has "$T/ev_gen" "        K/V cache (generation, per batch)"
for f in sel ev ev_gen; do
  has "$T/$f" "memory plan: batch 16 x "
  has "$T/$f" "activations (recomputed per layer)"
  lacks "$T/$f" "gradients"
  lacks "$T/$f" "AdamW"
done

expect_code 0 "$PP" verify
passed
