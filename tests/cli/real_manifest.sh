#!/usr/bin/env bash
# real_manifest: the real-model branch of manifests/protocol.lua end to end on tiny stand-ins for the user's
# files: the tiny transformers checkpoint (tests/data/llava_tiny, sharded) with a WordLevel tokenizer.json that
# fits it, MLLMU-Bench Parquet files (4 fictitious and 4 real people) converted by tools/mllmu_to_pulse.py (needs
# pyarrow in .venv, else skipped) and an MMBench TSV (4 rows), laid out as docs/real-models.md says. The LLaVA
# manifests themselves load and resolve their paths (status), llava-1.5-7b.lua runs with its real recipe up to
# `vanilla`, and every training stage of llava-1.5-13b.lua would recompute (its dry run); a manifest calling the
# same builder (llava.lua) with tiny schedules runs the whole graph: imports, merge, import-model as the base (no
# pretraining), unlearning pretrained knowledge on the converter's facts, the report with the general suite scored
# from MMBench. A second run computes nothing; a missing file or parameter is one line; the store verifies.
# PULSE_TEST_DEVICE=cuda runs the stages with --device cuda (the CUDA emulator build runs it so:
# tests/CMakeLists.txt, cli.real_manifest_cuda).
#
# The stand-in tokenizer: tests/data/tokenizer_wordlevel.json does not fit the checkpoint (its <image> is id 4,
# the config's image_token_index is 99; it lacks the letters A-D and most prompt words), so this script writes a
# WordLevel tokenizer of the fixture's own words with <image> at 99, as LLaVA-1.5 puts <image> after LLaMA's
# vocabulary. The images are 28x28, the tiny tower's input size: the corpus does not resize photos yet.
source "$(dirname "$0")/lib.bash"
DEV=(--device "${PULSE_TEST_DEVICE:-cpu}")
export PYTHONDONTWRITEBYTECODE=1 # the fixtures are imported from the source tree
D="$T/data"
M="$T/manifests"
mkdir -p "$D" "$M"
cp "$SRC"/manifests/*.lua "$M/"
rm -f "$M/pulse.lua" "$M/quick.lua"

# MLLMU-Bench as the user gets it: Parquet files in the published schema (tests/reference/make_mllmu_parquet.py's),
# converted by tools/mllmu_to_pulse.py as docs/real-models.md says. So the pulse directory, the real people's facts
# (pretrain.jsonl) among it, is the converter's, and unlearning on pretrained knowledge trains on them.
PY_ARROW="$SRC/.venv/bin/python"
if ! [ -x "$PY_ARROW" ] || ! "$PY_ARROW" -c "import pyarrow" 2>/dev/null; then
    echo "SKIP: pyarrow not installed (python3 -m venv $SRC/.venv && $SRC/.venv/bin/pip install pyarrow)"
    passed
    exit 0
fi
"$PY_ARROW" - "$SRC" "$T/parquet" <<'PY'
import json, sys
from pathlib import Path
src, out = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, src + "/tests/reference")
from make_mllmu_parquet import mcq, open_q, png, schemas, write
SIZE = 28  # tests/data/llava_tiny/config.json: vision_config.image_size
PETS = ["owl", "cat", "dog", "fox"]
names = {"f1": "Ana", "f2": "Bo", "f3": "Cy", "f4": "Di", "r1": "Eve", "r2": "Fay", "r3": "Gus", "r4": "Hal"}
rows = {"Full_Set": [], "Retain_Set": [], "ft_Data": []}
for k, (pid, name) in enumerate(names.items()):
    pet, a = PETS[k % 4], k % 4  # the answer moves through A-D
    others = [p for p in PETS if p != pet]
    choices = others[:a] + [pet] + others[a:]
    image = {"bytes": png((30 * k, 200 - 20 * k, 90), SIZE), "path": f"{pid}.png"}
    # Three facts each: about the portrait, naming the person, and the person's name from the portrait.
    facts = [("What pet does this person have?", f"A {pet} ."), ("Who is this?", f"This is {name} ."),
             (f"What pet does {name} have?", f"{name} has a {pet} .")]
    row = {"image": image, "ID": pid, "biography": json.dumps({"Name": name, "Pet": pet}),
           "question": facts[1][0], "answer": facts[1][1],
           "Classification_Task": {"Image_Textual_Questions": [mcq("What is this person's pet?", choices, "ABCD"[a])],
                                   "Pure_Text_Questions": [mcq(f"What is {name}'s pet?", choices, "ABCD"[a])]},
           "Generation_Task": [open_q(facts[0][0], facts[0][1], "Image_Textual"),
                               open_q(facts[2][0], facts[2][1], "Pure_Text")],
           "Mask_Task": []}
    if pid[0] == "f":  # fictitious: MLLMU-Bench's fine-tuning pairs, on the portrait
        rows["Full_Set"].append(row)
        rows["ft_Data"].append({"image": image, "ID": pid,
                                "metadata": json.dumps([{"Question": q, "Answer": a} for q, a in facts])})
    else:
        rows["Retain_Set"].append(row)
s = schemas()
for config, kind in (("Full_Set", "profile"), ("Retain_Set", "profile"), ("ft_Data", "ft")):
    write(out, config, rows[config], s[kind], [])
PY
expect_code 0 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/parquet" --out "$D/mllmu-pulse"
has "$T/out" "8 people (4 fictitious, 4 real), 16 items (0 of Test_Set), 12 fine-tuning examples, 12 celebrity facts,"

python3 - "$SRC" "$D" <<'PY'
import base64, csv, json, os, re, shutil, sys
src, D = sys.argv[1:3]
sys.path.insert(0, src + "/tests/reference")
from make_mllmu_parquet import png
SIZE = 28  # tests/data/llava_tiny/config.json: vision_config.image_size
load = lambda name: [json.loads(l) for l in open(f"{D}/mllmu-pulse/{name}.jsonl", encoding="utf-8")]
items, pretrain, finetune = load("items"), load("pretrain"), load("finetune")

# MMBench dev as published: a TSV with base64 PNGs (docs/loaders.md).
b64 = lambda data: base64.b64encode(data).decode()
rows = [["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "split"]]
for k, (colour, rgb) in enumerate([("red", (250, 0, 0)), ("blue", (0, 0, 250)), ("green", (0, 250, 0)),
                                   ("red", (240, 10, 10))]):
    rows.append([str(k), "What colour is the square ?", "Look ." if k == 1 else "nan", "red", "blue", "green", "",
                 "ABC"[["red", "blue", "green"].index(colour)], "colour", b64(png(rgb, SIZE)), "dev"])
with open(f"{D}/MMBench_DEV_EN.tsv", "w", newline="") as f:
    csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)

# The checkpoint: the tiny transformers fixture, sharded, and a tokenizer of every word above.
ckpt = f"{D}/llava-1.5-7b-hf"
os.makedirs(ckpt)
tiny = f"{src}/tests/data/llava_tiny"
for f in ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
          "model-00002-of-00002.safetensors"]:
    shutil.copy(f"{tiny}/{f}", ckpt)
config = json.load(open(f"{ckpt}/config.json"))
texts = [i["prompt"] for i in items] + [e["prompt"] + " " + e["answer"] for e in pretrain + finetune]
texts += ["<image>\nLook .\nWhat colour is the square ?\nA. red\nB. blue\nC. green\n"
          "Answer with the option's letter from the given choices directly."]
words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]+", t.replace("<image>", " "))} | set("ABCD"))
specials = ["<unk>", "<s>", "</s>"]
assert len(specials) + len(words) < config["image_token_index"] < config["text_config"]["vocab_size"], len(words)
vocab = {w: i for i, w in enumerate(specials + words)}
vocab["<image>"] = config["image_token_index"]
added = [{"content": w, "id": vocab[w], "lstrip": False, "normalized": False, "rstrip": False,
          "single_word": False, "special": True} for w in specials + ["<image>"]]
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
       "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
       "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}
json.dump(tok, open(f"{ckpt}/tokenizer.json", "w"), ensure_ascii=False, indent=1)
shutil.copytree(ckpt, f"{D}/llava-1.5-13b-hf")
PY

# 1. The real manifests load, resolve the files at their documented places and declare the whole graph: two
# imports, the merge, import-model as the base, no pretraining.
for size in 7b 13b; do
    expect_code 0 "$PP" status "$M/llava-1.5-$size.lua" --json
    python3 - "$T/out" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))["stages"]
kinds = {s["name"]: s["kind"] for s in st}
assert len(st) == 54, len(st)
assert kinds["data/mllmu"] == kinds["data/mmbench"] == "import-dataset", kinds
assert kinds["world"] == "merge-dataset" and kinds["base"] == "import-model", kinds
assert "pretrain" not in kinds.values() and "synth" not in kinds.values(), kinds
assert all(s["state"] != "done" for s in st), st
PY
done

# 2. llava-1.5-7b.lua itself, with its recipe (5 epochs at lr 2e-5, batch 4, LoRA r 16, bf16 activations), up to
# the vanilla model.
expect_code 0 "$PP" run "$M/llava-1.5-7b.lua" --only vanilla "${DEV[@]}"
has "$T/out" "5 stages: 5 computed"
"$PP" show vanilla --json >"$T/vanilla.json"
python3 - "$T/vanilla.json" "${PULSE_TEST_DEVICE:-cpu}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["params"]
assert (p["epochs"], p["batch"], p["lr"], p["lora_r"], p["schedule"]) == (5, 4, 2e-5, 16, "linear"), p
assert p["precision"] == "bf16-act" and not p.get("recompute"), p  # settings.llava: fits an 80 GB card so
assert r["metrics"]["loss"] > 0, r["metrics"]
assert r["device"].startswith(sys.argv[2]), r["device"]
PY
# Every model stage of the real recipe keeps bf16 activations (the memory plan under each says so); training
# keeps every layer's, scoring (select, evaluate) shares one layer's.
expect_code 0 "$PP" run "$M/llava-1.5-13b.lua" --dry-run "${DEV[@]}"
has "$T/out" "unlearn/pretrained/npo"
has "$T/out" "bf16-act, recompute off"
has "$T/out" "bf16-act, recompute on"
lacks "$T/out" "fp32, recompute"

# 3. The whole graph through the same builder, with tiny schedules (the recipe's per-method epochs kept).
cat >"$M/tiny.lua" <<'EOF'
require "llava" {
  model = "../data/llava-1.5-7b-hf",
  mllmu = "../data/mllmu-pulse",
  mmbench = "../data/MMBench_DEV_EN.tsv",
  title = "PULSE on a tiny stand-in",
  settings = {
    finetune = { epochs = 2, batch = 4, lr = 0.003, schedule = "linear", warmup = 0.0, lora_r = 4, lora_alpha = 8 },
    select = {
      pretrained = { top = 4, forget = 2, rounds = 1 },
      finetuned = { top = 0, forget = 2, retain = 2, rounds = 2 },
    },
    unlearn = { epochs = 1, batch = 4, lr = 0.003, beta = 0.4, kl_weight = 1.0, lora_r = 4, lora_alpha = 8 },
  },
}
EOF
N=36 # 2 imports, world, base, vanilla, 2 selects, 2 befores, 3 methods x 2 knowledge x 2, 3 x 2 rounds x 2, 2, report
start=$(date +%s%N)
expect_code 0 "$PP" run "$M/tiny.lua" "${DEV[@]}"
ms=$((($(date +%s%N) - start) / 1000000))
has "$T/out" "$N stages: $((N - 4)) computed, 4 cached, 0 failed" # imports, merge, base: llava-1.5-7b.lua's
"$PP" cat report markdown >"$T/report.md"
has "$T/report.md" "# PULSE on a tiny stand-in"
for row in "| finetuned | none |" "| pretrained | npo |" "| finetuned | ga_klr | 2 |" "| ga | llm |"; do
    has "$T/report.md" "$row"
done
"$PP" cat evaluate/finetuned/ga/round2 metrics >"$T/ev_f.json"
"$PP" cat evaluate/pretrained/before metrics >"$T/ev_p.json"
"$PP" cat select/pretrained split >"$T/split_p.json"
"$PP" cat select/finetuned split >"$T/split_f.json"
"$PP" show unlearn/finetuned/ga_klr/round1 --json >"$T/klr.json"
"$PP" show world --json >"$T/world.json"
"$PP" show unlearn/pretrained/ga --json >"$T/ga_p.json"
"$PP" show unlearn/finetuned/npo/round1 --json >"$T/npo_f.json"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
load = lambda n: json.load(open(f"{t}/{n}"))
for n in ("ev_f.json", "ev_p.json"):
    sets = load(n)["sets"]
    assert sorted(sets) == ["forget_mm", "forget_text", "general", "retain_mm", "retain_text"], (n, sets)
    assert sets["general"]["items"] == 4, sets  # MMBench's rows, through the merge
    assert sets["forget_mm"]["items"] == sets["forget_text"]["items"] == 2, sets
p, f = load("split_p.json"), load("split_f.json")
assert len(p["forget"]) == 2 and all(x.startswith("r") for x in p["forget"] + p["retain"]), p
assert [len(g) for g in f["groups"]] == [1, 1] and all(x.startswith("f") for x in f["forget"]), f
assert load("klr.json")["params"]["epochs"] == 3, "GA+KLR keeps the recipe's 3 epochs"
# unlearning on pretrained knowledge reads the converter's facts of the real people: 2 people x 3 facts
ga = load("ga_p.json")["metrics"]
assert ga["forget_examples"] == 6 and ga["loss_last_epoch"] < ga["loss_first_epoch"] < 0, ga
assert load("npo_f.json")["metrics"]["forget_examples"] == 3, load("npo_f.json")["metrics"]
m = load("world.json")["metrics"]
assert (m["people"], m["items"], m["finetune"], m["pretrain"], m["images"]) == (8, 20, 12, 12, 12), m
PY
expect_code 0 "$PP" run "$M/tiny.lua" "${DEV[@]}"
has "$T/out" "$N stages: 0 computed, $N cached"

# 4. Missing files and parameters: one line each, before any stage runs.
mv "$D/MMBench_DEV_EN.tsv" "$D/mmb.tsv"
expect_code 2 "$PP" run "$M/llava-1.5-13b.lua"
one_line "$T/err"
has "$T/err" "stage 'data/mmbench': parameter 'path': path '../data/MMBench_DEV_EN.tsv'"
has "$T/err" "No such file or directory"
mv "$D/mmb.tsv" "$D/MMBench_DEV_EN.tsv"
sed -i '/mmbench = /d' "$M/tiny.lua"
expect_code 2 "$PP" run "$M/tiny.lua"
one_line "$T/err"
has "$T/err" "tiny.lua:1: llava: parameter 'mmbench' is missing: the path to the MMBench dev TSV"
expect_code 0 "$PP" verify
echo "real_manifest.sh: the tiny protocol's $N stages in ${ms} ms"
passed
