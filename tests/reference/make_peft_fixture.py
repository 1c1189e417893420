"""Writes the PEFT fixtures test_engine_peft reads: a LoRA adapter saved by `peft` itself and, for three modules,
the base weight and the weight PEFT's merge_and_unload produced from it.

  tests/data/peft_adapter/adapter_config.json, adapter_model.safetensors   (PEFT's save_pretrained)
  tests/data/peft_merge.safetensors   "<module>.base" and "<module>.merged", fp32

The model is a tiny random LlavaForConditionalGeneration (tests/data/llava_config_tiny.json); LoRA r=4,
alpha=8 on the decoder's seven projections only: a target_modules regex, because the plain suffix list
would also hit the CLIP tower's q/k/v (REFERENCE.md section 2). PEFT initialises B to zeros, which would make
the merge a no-op, so B is overwritten with random non-zero values before saving.

Run from the repository root:  .venv/bin/python tests/reference/make_peft_fixture.py
With --check DIR it instead loads an adapter written by pulse-pipe (peft.c) into the same model with
PeftModel.from_pretrained and checks that every tensor matches the committed fixture's.
"""
import json
import os
import shutil
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlavaConfig, LlavaForConditionalGeneration

ADAPTER = "tests/data/peft_adapter"
MERGE = "tests/data/peft_merge.safetensors"
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
MERGED_MODULES = [
    "model.language_model.layers.0.self_attn.q_proj",
    "model.language_model.layers.1.self_attn.v_proj",
    "model.language_model.layers.1.mlp.down_proj",
]


def base_model():
    torch.manual_seed(1234)
    cfg = LlavaConfig.from_dict(json.load(open("tests/data/llava_config_tiny.json")))
    model = LlavaForConditionalGeneration(cfg).eval()
    model.name_or_path = "pulse-pipe/tiny-llava"  # becomes base_model_name_or_path
    return model


def lora_config():
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=TARGETS, bias="none",
                      task_type="CAUSAL_LM")


def weight(model, module):
    return model.get_submodule(module).weight.detach().clone()


def make():
    model = base_model()
    base = {m: weight(model, m) for m in MERGED_MODULES}
    peft_model = get_peft_model(model, lora_config())
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    if os.path.isdir(ADAPTER):
        shutil.rmtree(ADAPTER)
    peft_model.save_pretrained(ADAPTER)
    os.remove(os.path.join(ADAPTER, "README.md"))  # a model card template, not part of the format
    merged = peft_model.merge_and_unload()
    tensors = {}
    for m in MERGED_MODULES:
        tensors[m + ".base"] = base[m].contiguous()
        tensors[m + ".merged"] = weight(merged, m).contiguous()
        if torch.equal(tensors[m + ".base"], tensors[m + ".merged"]):
            sys.exit(f"{m}: the merge changed nothing")
    save_file(tensors, MERGE, metadata={"format": "pt"})
    print(f"wrote {ADAPTER}/ and {MERGE}")


def check(directory):
    """Loads pulse-pipe's adapter in PEFT: the config must parse and every LoRA tensor must land in the model."""
    peft_model = PeftModel.from_pretrained(base_model(), directory)
    want = load_file(os.path.join(ADAPTER, "adapter_model.safetensors"))
    state = peft_model.state_dict()
    for key, tensor in want.items():
        loaded = state[key.replace(".weight", ".default.weight")]
        if not torch.equal(loaded, tensor):
            sys.exit(f"{key}: differs after loading {directory}")
    cfg = peft_model.peft_config["default"]
    if (cfg.r, cfg.lora_alpha, cfg.target_modules) != (4, 8, TARGETS):
        sys.exit(f"{directory}: config read back as r={cfg.r} alpha={cfg.lora_alpha} {cfg.target_modules}")
    print(f"{directory}: loads in peft {len(want)} tensors identical")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        make()
