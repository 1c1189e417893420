#!/usr/bin/env bash
# export_peft: the stage kind export-peft on the micro world (tests/cli/manifests/protocol). Added to the protocol's
# own graph (micro.lua with protocol.lua) by ref(), as docs/real-models.md shows, it exports the sequential GA
# run's round 2 and writes both outputs. Then, on a graph of its own: after two unlearning rounds (round 1 rank 4 on the seven projections with the projector, round 2 rank 3, alpha 4 on q_proj and
# v_proj only) it writes one PEFT adapter, adapter_model and adapter_config, whose bytes are the rounds' (A
# stacked, B side by side times alpha/r in fp32, zero blocks where round 2 adapts nothing) plus round 2's
# projector as modules_to_save, checked here tensor by tensor with Python's standard library; forced again it
# gives the same objects. Bad inputs fail with one line: adapter and config counts that differ, an adapter made
# for another model's shapes, a projector that is not one. (PEFT itself loading the result, and its logits, are
# test_engine_peft_export's.)
source "$(dirname "$0")/lib.bash"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"

# The protocol's sequential rounds, exported by name.
cat >>"$T/micro.lua" <<'LUA'
local R = "unlearn/finetuned/ga/round"
stage "export/ga/round2" { kind = "export-peft",
  adapters = { ref(R .. 1, "adapter"), ref(R .. 2, "adapter") },
  adapter_configs = { ref(R .. 1, "adapter_config"), ref(R .. 2, "adapter_config") },
  projector = ref(R .. 2, "projector"), config = ref("vanilla", "config") }
LUA
expect_code 0 "$PP" run "$T/micro.lua" --only export/ga/round2
has "$T/out" "8 stages: 8 computed, 0 cached, 0 failed"
"$PP" cat export/ga/round2 adapter_config >"$T/proto_config"
"$PP" cat export/ga/round2 adapter_model >"$T/proto_model"
python3 - "$T/proto_config" "$T/proto_model" <<'PY'
import json, struct, sys
c = json.load(open(sys.argv[1]))
data = open(sys.argv[2], "rb").read()
head = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
assert len(head) == 1 + 7 * 2 + 4, sorted(head)  # metadata, A and B of 7 modules, the projector's 4
assert (c["r"], c["lora_alpha"], len(c["target_modules"])) == (8, 8, 7), c  # micro: rank 4 twice, one layer
assert c["modules_to_save"] == ["model.multi_modal_projector.linear_1", "model.multi_modal_projector.linear_2"]
PY

M="$T/export.lua"
cat >"$M" <<'LUA'
local CASE = "none"
local s = require "micro_settings"
local b = require "micro_base"
local with, w = b.with, b.w
local split = stage "select" (with({ kind = "select", group = "real", top = 8, forget = 4, rounds = 2 }, b.model,
  b.data)).out.split
local u = with(s.unlearn, b.model, { kind = "unlearn", split = split, examples = w.out.pretrain,
  people = w.out.people, images = w.out.images, method = "ga", lr = 0.002 })
local r1 = stage "round1" (with(u, { round = 1 }))
local r2 = stage "round2" (with(u, { round = 2, lora_r = 3, lora_alpha = 4, lora_targets = { "q_proj", "v_proj" },
  adapters = { r1.out.adapter }, adapter_configs = { r1.out.adapter_config }, projector = r1.out.projector }))
local export = { kind = "export-peft", adapters = { r1.out.adapter, r2.out.adapter },
  adapter_configs = { r1.out.adapter_config, r2.out.adapter_config }, projector = r2.out.projector,
  config = b.base.out.config }
stage "export" (export)
if CASE == "count" then
  stage "bad" (with(export, { adapter_configs = { r1.out.adapter_config } }))
elseif CASE == "shape" then
  local a = stage "other/adapter" { kind = "file", path = "other/adapter_model.safetensors", type = "safetensors" }
  local c = stage "other/config" { kind = "file", path = "other/adapter_config.json", type = "json" }
  stage "bad" (with(export, { adapters = { r1.out.adapter, a.out.data },
    adapter_configs = { r1.out.adapter_config, c.out.data } }))
elseif CASE == "projector" then
  stage "bad" (with(export, { projector = r1.out.adapter }))
end
LUA

expect_code 0 "$PP" run "$M"
has "$T/out" "7 stages: 4 computed, 3 cached, 0 failed" # world, tower and base: the protocol run's
for o in adapter_model adapter_config; do "$PP" cat export "$o" >"$T/export_$o"; done
for r in 1 2; do
  "$PP" cat "round$r" adapter >"$T/r${r}_adapter"
  "$PP" cat "round$r" adapter_config >"$T/r${r}_config"
done
"$PP" cat round2 projector >"$T/projector"

# The export against the rounds, bit for bit: fp32 products by rounding Python's exact double product once.
python3 - "$T" <<'PY'
import json, struct, sys
t = sys.argv[1]

def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    head = json.loads(data[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v)
        b, e = v["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        out[k] = (v["shape"], list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    return out

f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
cfg = json.load(open(f"{t}/export_adapter_config"))
ex = tensors(f"{t}/export_adapter_model")
rounds = [(tensors(f"{t}/r{k}_adapter"), json.load(open(f"{t}/r{k}_config"))) for k in (1, 2)]
R = sum(c["r"] for _, c in rounds)
assert (R, cfg["r"], cfg["lora_alpha"], cfg["peft_type"], cfg["use_rslora"]) == (7, 7, 7, "LORA", False), cfg
assert cfg["modules_to_save"] == ["model.multi_modal_projector.linear_1", "model.multi_modal_projector.linear_2"]
assert cfg["task_type"] == "CAUSAL_LM" and cfg["lora_dropout"] == 0 and cfg["rank_pattern"] == {}, cfg
mods = cfg["target_modules"]
assert len(mods) == 7 and all(m.startswith("model.language_model.layers.0.") for m in mods), mods
P = "base_model.model."
assert sorted(ex) == sorted([f"{P}{m}.lora_{x}.weight" for m in mods for x in "AB"] +
                            [P + k for k in tensors(f"{t}/projector")]), sorted(ex)
zero_blocks = 0
for m in mods:
    (sa, A), (sb, B) = ex[f"{P}{m}.lora_A.weight"], ex[f"{P}{m}.lora_B.weight"]
    n_in, n_out = sa[1], sb[0]
    assert sa == [R, n_in] and sb == [n_out, R], (m, sa, sb)
    off = 0
    for ten, c in rounds:
        r, scale = c["r"], f32(c["lora_alpha"] / c["r"])
        a = ten.get(f"{P}{m}.lora_A.weight", (None, [0.0] * (r * n_in)))[1]
        b = ten.get(f"{P}{m}.lora_B.weight", (None, [0.0] * (n_out * r)))[1]
        zero_blocks += f"{P}{m}.lora_A.weight" not in ten
        assert A[off * n_in:(off + r) * n_in] == a, (m, "A block")
        for o in range(n_out):
            assert B[o * R + off:o * R + off + r] == [f32(x * scale) for x in b[o * r:(o + 1) * r]], (m, o)
        off += r
assert zero_blocks == 5, zero_blocks  # round 2 adapts q and v only
for k, v in tensors(f"{t}/projector").items():
    assert ex[P + k] == v, k
print(f"export: rank {R}, {len(mods)} modules ({zero_blocks} with a zero round-2 block), projector saved")
PY

# Forced again, the same objects.
id_model=$(output_id export adapter_model)
id_config=$(output_id export adapter_config)
expect_code 0 "$PP" run "$M" --force export
[ "$(output_id export adapter_model)" = "$id_model" ] && [ "$(output_id export adapter_config)" = "$id_config" ] ||
  fail "export-peft forced again gave other objects"

# Bad inputs: one line each, nothing recorded.
mkdir -p "$T/other"
python3 - "$T/other" <<'PY'
import json, struct, sys
d = sys.argv[1]
m = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
shapes = {m + ".lora_A.weight": [2, 7], m + ".lora_B.weight": [32, 2]}
head, off, body = {}, 0, b""
for k, s in sorted(shapes.items()):
    n = s[0] * s[1] * 4
    head[k] = {"dtype": "F32", "shape": s, "data_offsets": [off, off + n]}
    off += n
    body += b"\0" * n
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open(f"{d}/adapter_model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + body)
json.dump({"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["q_proj"]},
          open(f"{d}/adapter_config.json", "w"))
PY
bad() {
  sed "s/^local CASE = .*/local CASE = \"$1\"/" "$M" >"$T/bad_$1.lua"
  expect_code 1 "$PP" run "$T/bad_$1.lua"
  [ "$(grep -c "stage 'bad' failed" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "$1: not one failure line"; }
  grep -xF "pulse-pipe: stage 'bad' failed: bad: $2" "$T/err" >/dev/null ||
    { cat "$T/err" >&2; fail "$1: the failure line is not 'bad: $2'"; }
  expect_code 1 "$PP" show bad
}
bad count "2 adapters but 1 adapter_configs"
bad shape "adapter 2/adapter_model.safetensors: module model.language_model.layers.0.self_attn.q_proj: the adapter \
is 7 -> 32, the base model's layer 32 -> 32"
bad projector "projector: 14 tensors, expected the projector's 4"
expect_code 0 "$PP" verify
passed
