#!/usr/bin/env bash
# tower: the `tower` kind on a small world learns what its pictures show (the colour of the object in a token
# well above chance), gives the same bits on 1 and 2 threads and in another store, and `pretrain` given its
# output keeps that tower frozen: the base model's tower tensors are the tower's, byte for byte. Bad labels
# and a tower of another width each fail the stage with a line that says why, and the store stays valid.
source "$(dirname "$0")/lib.bash"
M="$T/tower.lua"
cat >"$M" <<'LUA'
local w = stage "world" { kind = "synth", seed = 2, real = 4, fictitious = 2, real_photos = 4, general_eval = 10,
                          general_train = 300, strangers = 40 }
local t = stage "tower" { kind = "tower", images = w.out.images, labels = w.out.labels, epochs = 40, batch = 8 }
stage "base" { kind = "pretrain", examples = w.out.pretrain, images = w.out.images, tokenizer = w.out.tokenizer,
               tower = t.out.tower, hidden = 32, intermediate = 64, layers = 1, heads = 2, epochs = 1, batch = 8 }
LUA
expect_code 0 "$PP" run "$M" --threads 2
has "$T/out" "3 computed"
"$PP" show tower --json >"$T/t.json"
python3 - "$T/t.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
# 300 training scenes, 4 real people x 4 portraits, 40 strangers
assert m["images"] == 356 and m["scenes"] == 300 and m["faces"] == 56, m
assert m["accuracy_object_colour"] > 0.5, m  # chance: 1 in 9
PY
tower_id=$(output_id tower tower)

# The base model's tower is the tower stage's output, every byte of every tensor.
"$PP" cat tower tower >"$T/tower.safetensors"
"$PP" cat base model >"$T/model.safetensors"
python3 - "$T/tower.safetensors" "$T/model.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}
t, m = tensors(sys.argv[1]), tensors(sys.argv[2])
assert t and all(k.startswith("model.vision_tower.vision_model.") for k in t), sorted(t)
assert {k for k in m if k.startswith("model.vision_tower.")} == set(t), "the model's tower has other tensors"
assert all(m[k] == t[k] for k in t), "pretrain changed the frozen tower"
PY

# Same bits on one thread, in a fresh store.
expect_code 0 "$PP" --store "$T/other" run "$M" --threads 1 --only tower
[ "$(PULSE_STORE="$T/other" output_id tower tower)" = "$tower_id" ] || fail "the tower differs on 1 thread"

# Bad labels: the stage fails on the line naming the label line, and nothing is recorded for it.
printf '{"image":"g00010","objects":[[9,0,0,0.5,0.5]]}\n' >"$T/bad.jsonl"
cat >"$T/bad.lua" <<'LUA'
local w = stage "world" { kind = "synth", seed = 2, real = 4, fictitious = 2, real_photos = 4, general_eval = 10,
                          general_train = 300, strangers = 40 }
local l = stage "bad" { kind = "file", path = "bad.jsonl" }
stage "tower2" { kind = "tower", images = w.out.images, labels = l.out.data, epochs = 1 }
LUA
expect_code 1 "$PP" run "$T/bad.lua"
has "$T/err" "stage 'tower2' failed: tower2: labels line 1: object 0 is not [shape 0-4"
expect_code 1 "$PP" show tower2

# A pretrain whose tower is narrower than the tower given: it fails naming the tensor.
sed 's/tower = t.out.tower, hidden = 32,/tower = t.out.tower, vision_hidden = 32, hidden = 32,/' "$M" >"$T/narrow.lua"
expect_code 1 "$PP" run "$T/narrow.lua"
has "$T/err" "stage 'base' failed: base: tower: tensor model.vision_tower.vision_model."
# A whole model handed over as the tower: refused by name, only the tower's tensors belong there.
cp "$M" "$T/whole.lua"
cat >>"$T/whole.lua" <<'LUA'
stage "base2" { kind = "pretrain", examples = w.out.pretrain, images = w.out.images, tokenizer = w.out.tokenizer,
                tower = ref("base", "model"), hidden = 32, intermediate = 64, layers = 1, heads = 2, epochs = 1 }
LUA
expect_code 1 "$PP" run "$T/whole.lua"
has "$T/err" "stage 'base2' failed: base2: tower: unexpected tensor "
has "$T/err" "(only model.vision_tower.vision_model.... belong here)"
expect_code 0 "$PP" verify
passed
