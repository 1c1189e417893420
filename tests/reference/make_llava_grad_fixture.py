"""Writes the fixture test_engine_llava_grad reads: the loss, every parameter's gradient and the parameters
after 3 AdamW steps that transformers + torch compute for the tiny random LLaVA of tests/data/llava_tiny
(its weights and its batch, loaded, not regenerated), with labels that keep only answer tokens.

  tests/data/llava_grad/labels.safetensors  labels [B,T] (as F32: -100 = masked), loss [1]
  tests/data/llava_grad/grads.safetensors   d loss / d p for every parameter the engine holds (the tower's
      unused last layer and post_layernorm get no gradient and are left out), under the engine's names
      ("model.vision_tower.vision_model.*", "model.multi_modal_projector.*", "model.language_model.*",
      "lm_head.weight")
  tests/data/llava_grad/adamw3.safetensors  the same parameters after 3 torch.optim.AdamW steps on this batch
      (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, no clipping, foreach=False: the
      single-tensor path engine/kernels.h's kernel_adamw follows)

Labels follow transformers' causal LM convention (logits at t predict token t+1, -100 ignored): -100 for the
first half of each valid sequence, the image tokens and the padding; the rest are the input ids.

Run from the repository root:  .venv/bin/python tests/reference/make_llava_grad_fixture.py
"""
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import LlavaForConditionalGeneration

SRC = "tests/data/llava_tiny"
OUT = "tests/data/llava_grad"
IMG = 99


def engine_name(name):
    """transformers 5 drops the tower's "vision_model." level; the engine's table keeps it."""
    return name.replace("model.vision_tower.", "model.vision_tower.vision_model.")


def labels_for(ids, mask):
    labels = ids.clone()
    for b in range(ids.shape[0]):
        valid = int(mask[b].sum())
        labels[b, : valid // 2] = -100
        labels[b, valid:] = -100
    labels[ids == IMG] = -100
    return labels


def loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss


def main():
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(SRC).train()
    model.config._attn_implementation = "eager"
    io = load_file(os.path.join(SRC, "io.safetensors"))
    ids, mask = io["input_ids"].long(), io["attention_mask"].long()
    labels = labels_for(ids, mask)
    batch = dict(input_ids=ids, attention_mask=mask, pixel_values=io["pixel_values"], labels=labels)

    loss = loss_and_grads(model, batch)
    grads = {engine_name(n): p.grad.detach().clone().contiguous()
             for n, p in model.named_parameters() if p.grad is not None}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                            foreach=False)
    opt.step()  # step 1 uses the gradients above
    for _ in range(2):
        loss_and_grads(model, batch)
        opt.step()
    after = {engine_name(n): p.detach().clone().contiguous()
             for n, p in model.named_parameters() if engine_name(n) in grads}

    os.makedirs(OUT, exist_ok=True)
    save_file({"labels": labels.float(), "loss": loss.detach().reshape(1)},
              os.path.join(OUT, "labels.safetensors"))
    save_file(grads, os.path.join(OUT, "grads.safetensors"))
    save_file(after, os.path.join(OUT, "adamw3.safetensors"))
    print("loss %.8f, %d tensors, %d values, %d targets" %
          (loss.item(), len(grads), sum(g.numel() for g in grads.values()), int((labels[:, 1:] != -100).sum())))


if __name__ == "__main__":
    main()
