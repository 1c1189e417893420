"""Writes the GGUF fixtures test_engine_gguf reads: a small LoRA adapter saved by `peft` itself and the GGUF
LoRA adapter that gguf-py's GGUFWriter (llama.cpp's own Python writer) produces from it in llama.cpp's layout.

  tests/data/gguf/adapter/adapter_config.json, adapter_model.safetensors   (PEFT's save_pretrained)
  tests/data/gguf/expected_f32.gguf, expected_f16.gguf                     (GGUFWriter)

The base is the tiny random LlavaForConditionalGeneration of tests/data/llava_config_tiny.json (4 heads, 2
key-value heads, head size 16, 2 layers); LoRA r=2, alpha=5 on the decoder's seven projections. PEFT
initialises B to zeros, so B is overwritten with random values before saving.

The layout is the one llama.cpp's convert_lora_to_gguf.py writes for a LLaMA base (read, not copied, from
llama.cpp; see docs/formats.md "GGUF LoRA adapters"): KVs general.architecture "llama", general.type
"adapter", adapter.type "lora", adapter.lora.alpha (f32); per module "blk.N.<name>.weight.lora_a" = PEFT's A
(numpy [r, in], so ggml ne = [in, r]) and ".lora_b" = B (numpy [out, r], ne = [r, out]); for attn_q and
attn_k, B's rows reordered per head from Hugging Face's rotary halves to llama.cpp's interleaved pairs (the
converter's LlamaModel.permute, which its LoraTorchTensor applies to B alone). Tensors by layer, then
projection (q k v o gate up down), a before b.

Run from the repository root:  .venv/bin/python tests/reference/make_gguf_fixture.py
  (needs `pip install gguf`; the committed fixtures come from gguf 0.19.0, peft 0.21.2, torch 2.15.0)
With --check DIR it reads DIR/engine_f32.gguf and DIR/engine_f16.gguf (written by
`PULSE_GGUF_DUMP=DIR build/test_engine_gguf`) back with gguf-py's GGUFReader, checks their KVs and tensors
against the fixture's and llama.cpp's shape rules, and records what it verified in tests/data/gguf/checked.txt.
"""
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys

import gguf
import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.numpy import load_file
from transformers import LlavaConfig, LlavaForConditionalGeneration

OUT = "tests/data/gguf"
ADAPTER = OUT + "/adapter"
CONFIG = "tests/data/llava_config_tiny.json"
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
R, ALPHA = 2, 5
PROJ = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down")]
KVS = [("general.architecture", "llama"), ("general.type", "adapter"), ("adapter.type", "lora"),
       ("adapter.lora.alpha", float(ALPHA))]


def make_adapter():
    torch.manual_seed(4321)
    cfg = LlavaConfig.from_dict(json.load(open(CONFIG)))
    model = LlavaForConditionalGeneration(cfg).eval()
    lcfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lcfg)
    gen = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    if os.path.isdir(ADAPTER):
        shutil.rmtree(ADAPTER)
    peft_model.save_pretrained(ADAPTER)
    os.remove(os.path.join(ADAPTER, "README.md"))


def rotary_reorder(b, heads):
    """Rows [h, half, j] -> [h, j, half]: llama.cpp's q/k row order (pairs) from HF's (halves)."""
    out, r = b.shape
    return b.reshape(heads, 2, out // heads // 2, r).swapaxes(1, 2).reshape(out, r)


def expected_tensors():
    """(name, numpy fp32 array) in the file's order, from the committed PEFT adapter."""
    text = json.load(open(CONFIG))["text_config"]
    heads = {"attn_q": text["num_attention_heads"], "attn_k": text["num_key_value_heads"]}
    st = load_file(os.path.join(ADAPTER, "adapter_model.safetensors"))
    tensors = []
    for layer in range(text["num_hidden_layers"]):
        for hf, gg in PROJ:
            key = f"base_model.model.model.language_model.layers.{layer}.{hf}"
            a, b = st[key + ".lora_A.weight"], st[key + ".lora_B.weight"]
            if gg in heads:
                b = rotary_reorder(b, heads[gg])
            tensors.append((f"blk.{layer}.{gg}.weight.lora_a", np.ascontiguousarray(a)))
            tensors.append((f"blk.{layer}.{gg}.weight.lora_b", np.ascontiguousarray(b)))
    return tensors


def write_gguf(path, dtype):
    w = gguf.GGUFWriter(path, "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(ALPHA))
    for name, t in expected_tensors():
        w.add_tensor(name, t.astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make():
    make_adapter()
    write_gguf(OUT + "/expected_f32.gguf", np.float32)
    write_gguf(OUT + "/expected_f16.gguf", np.float16)
    print(f"wrote {ADAPTER}/ and {OUT}/expected_f{{32,16}}.gguf")


def kv_value(field):
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode()
    return float(field.parts[field.data[0]][0])


def check_file(path, dtype):
    """GGUFReader's view of the engine's file equals the fixture's tensors and KVs, in llama.cpp's shapes."""
    rd = gguf.GGUFReader(path)
    kvs = [(f.name, kv_value(f)) for f in rd.fields.values() if not f.name.startswith("GGUF.")]
    if kvs != KVS:
        sys.exit(f"{path}: KVs {kvs}, want {KVS}")
    want = expected_tensors()
    if [t.name for t in rd.tensors] != [n for n, _ in want]:
        sys.exit(f"{path}: tensor names or order differ")
    gtype = gguf.GGMLQuantizationType.F16 if dtype == np.float16 else gguf.GGMLQuantizationType.F32
    for t, (name, w) in zip(rd.tensors, want):
        ne = [int(x) for x in t.shape]
        if ne != list(w.shape[::-1]) or t.tensor_type != gtype:
            sys.exit(f"{path}: {name}: ne {ne} type {t.tensor_type}")
        if name.endswith("lora_a") and ne[1] != R or name.endswith("lora_b") and ne[0] != R:
            sys.exit(f"{path}: {name}: llama.cpp wants lora_a ne [in, r] and lora_b ne [r, out]")
        if not np.array_equal(np.asarray(t.data).reshape(w.shape), w.astype(dtype)):
            sys.exit(f"{path}: {name}: values differ")
    return len(rd.tensors)


def check(directory):
    lines = [f"gguf {importlib.metadata.version('gguf')}: GGUFReader on the engine's files"]
    for tag, dtype in (("f32", np.float32), ("f16", np.float16)):
        path = os.path.join(directory, f"engine_{tag}.gguf")
        n = check_file(path, dtype)
        data = open(path, "rb").read()
        same = data == open(f"{OUT}/expected_{tag}.gguf", "rb").read()
        digest = hashlib.sha256(data).hexdigest()
        lines.append(f"engine_{tag}.gguf sha256 {digest}: 4 KVs and {n} tensors equal the fixture's "
                     f"(names, order, ne, type, values); bytes identical to GGUFWriter's: {same}")
        if not same:
            sys.exit(f"{path}: bytes differ from GGUFWriter's")
    open(OUT + "/checked.txt", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        make()
