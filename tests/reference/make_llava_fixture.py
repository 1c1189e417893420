"""Writes the fixture test_engine_llava reads: a tiny random LLaVA-1.5-shaped model saved by transformers
itself (two shards + model.safetensors.index.json), a right-padded batch with images, and the logits
LlavaForConditionalGeneration computes for it.

  tests/data/llava_tiny/config.json, model-0000{1,2}-of-00002.safetensors, model.safetensors.index.json
  tests/data/llava_tiny/io.safetensors   input_ids [B,T], attention_mask [B,T] (as F32: the C reader has no
      integer dtypes), pixel_values [B,3,H,W], image_features [B*patches, text hidden] (the projector's
      output, to localise a mismatch), logits [B,T,V]

Every parameter is drawn at random (norm weights around 1, biases non-zero) so that a wrongly ignored bias or
norm weight shows in the logits. The vision tower has 3 layers and vision_feature_layer -2, so its last layer
and post_layernorm are stored but unused; the decoder uses grouped-query attention (4 heads, 2 kv heads).

Run from the repository root:  .venv/bin/python tests/reference/make_llava_fixture.py
"""
import glob
import os

import torch
from safetensors.torch import save_file
from transformers import LlavaConfig, LlavaForConditionalGeneration

OUT = "tests/data/llava_tiny"
IMG = 99  # image_token_index, inside the vocabulary as llava-hf's is
PATCHES = 16


def config():
    return LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=48,
                           num_hidden_layers=3, num_attention_heads=2, image_size=28, patch_size=7,
                           num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                           projection_dim=32),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=56, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                         max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
                         hidden_act="silu", tie_word_embeddings=False),
        image_token_index=IMG, pad_token_id=0, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=PATCHES, tie_word_embeddings=False)


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            is_norm = "norm" in name or "layrnorm" in name
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(0.15 * r)


def inputs(gen):
    img = [IMG] * PATCHES
    ids0 = [1, 5, 7] + img + [8, 9, 10, 11, 12]
    ids1 = [1] + img + [3, 4, 6]
    t = len(ids0)
    pad = t - len(ids1)
    input_ids = torch.tensor([ids0, ids1 + [0] * pad])
    mask = torch.tensor([[1] * t, [1] * len(ids1) + [0] * pad])
    pixels = torch.randn((2, 3, 28, 28), generator=gen)
    return input_ids, mask, pixels


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4242)
    model = LlavaForConditionalGeneration(config()).eval()
    model.config._attn_implementation = "eager"
    randomise(model, gen)
    input_ids, mask, pixels = inputs(gen)
    feats = {}
    model.model.multi_modal_projector.register_forward_hook(lambda m, i, o: feats.setdefault("f", o))
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask, pixel_values=pixels).logits
    for f in glob.glob(os.path.join(OUT, "*")):
        os.remove(f)
    model.save_pretrained(OUT, max_shard_size="120KB")
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(OUT, extra)):
            os.remove(os.path.join(OUT, extra))
    save_file({"input_ids": input_ids.float(), "attention_mask": mask.float(), "pixel_values": pixels,
               "image_features": feats["f"].reshape(-1, feats["f"].shape[-1]).contiguous(),
               "logits": logits.contiguous()}, os.path.join(OUT, "io.safetensors"))
    print("logits", tuple(logits.shape), "shards", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
