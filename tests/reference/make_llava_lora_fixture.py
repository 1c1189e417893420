"""Writes the fixture test_engine_llava_lora reads: a LoRA step on the tiny random LLaVA of tests/data/llava_tiny
(its weights and batch, loaded, not regenerated) computed by transformers + PEFT.

  tests/data/llava_lora/adapter/   the starting adapter, saved by PEFT (r=4, alpha=8, dropout 0.0, the
      decoder's seven projections through a regex that leaves the CLIP tower out); PEFT initialises B to zeros,
      which would stop every gradient of A, so B is drawn at random first
  tests/data/llava_lora/lora.safetensors   case 1, adapter only: labels [B,T] (F32, -100 = masked), loss [1],
      "grad.<module>.lora_A" / ".lora_B" for every module, "adamw3.<module>.lora_A" / ".lora_B" after 3 AdamW
      steps
  tests/data/llava_lora/proj.safetensors   case 2, adapter + the whole projector trainable (PULSE's
      "proj+llm"): the same keys, plus "grad.<name>" / "adamw3.<name>" for the projector's four tensors
      (engine names, "model.multi_modal_projector.linear_1.weight")

<module> is the module path PEFT's files use ("model.language_model.layers.0.self_attn.q_proj"). AdamW: lr
1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, no clipping, foreach=False (kernel_adamw's path).
Labels as make_llava_grad_fixture.py: -100 for the first half of each valid sequence, image tokens, padding.

Run from the repository root:  .venv/bin/python tests/reference/make_llava_lora_fixture.py
"""
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlavaForConditionalGeneration

SRC = "tests/data/llava_tiny"
OUT = "tests/data/llava_lora"
IMG = 99
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def labels_for(ids, mask):
    labels = ids.clone()
    for b in range(ids.shape[0]):
        valid = int(mask[b].sum())
        labels[b, : valid // 2] = -100
        labels[b, valid:] = -100
    labels[ids == IMG] = -100
    return labels


def key(name):
    """PEFT's parameter name -> the fixture's: "<module>.lora_A" or the projector's engine name."""
    return name.removeprefix("base_model.model.").replace(".default.weight", "")


def peft_model(with_projector):
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(SRC)
    model.config._attn_implementation = "eager"
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                     task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    gen = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    if with_projector:
        for p in pm.base_model.model.model.multi_modal_projector.parameters():
            p.requires_grad_(True)
    return pm.train()


def trainable(pm):
    return {key(n): p for n, p in pm.named_parameters() if p.requires_grad}


def run(with_projector, batch, out):
    pm = peft_model(with_projector)
    params = trainable(pm)
    loss = pm(**batch).loss
    loss.backward()
    tensors = {"labels": batch["labels"].float(), "loss": loss.detach().reshape(1)}
    for k, p in params.items():
        tensors["grad." + k] = p.grad.detach().clone()
    opt = torch.optim.AdamW(list(params.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                            foreach=False)
    opt.step()
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        pm(**batch).loss.backward()
        opt.step()
    for k, p in params.items():
        tensors["adamw3." + k] = p.detach().clone()
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, out))
    print("%s: loss %.8f, %d trainable tensors, %d values" %
          (out, loss.item(), len(params), sum(p.numel() for p in params.values())))


def main():
    io = load_file(os.path.join(SRC, "io.safetensors"))
    ids, mask = io["input_ids"].long(), io["attention_mask"].long()
    batch = dict(input_ids=ids, attention_mask=mask, pixel_values=io["pixel_values"],
                 labels=labels_for(ids, mask))
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    adapter = os.path.join(OUT, "adapter")
    peft_model(False).save_pretrained(adapter)
    os.remove(os.path.join(adapter, "README.md"))  # a model card template, not part of the format
    run(False, batch, "lora.safetensors")
    run(True, batch, "proj.safetensors")


if __name__ == "__main__":
    main()
