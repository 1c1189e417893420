"""Writes the fixture test_engine_generate reads: greedy generation with transformers' own `generate` on the
tiny random LLaVA of tests/data/llava_tiny (make_llava_fixture.py; reused, not saved again), for four prompts:
two with an image (the images of llava_tiny/io.safetensors) and two text-only, run one at a time (no padding).

  tests/data/llava_generate.json
    max_new   the max_new_tokens every prompt was generated with
    eos       the stop token: chosen so that exactly one prompt meets it before max_new (its output ends with it,
              as generate's does) while the others run to max_new
    prompts   [{"ids": prompt ids (image tokens expanded), "image": index into io.safetensors' pixel_values or
              -1, "generated": the new ids, "logits": [step][vocab] the raw logits each new id was chosen
              from (output_logits), "gap": [step] the top-1 minus top-2 logit}]

Random tiny weights give near-tied logits; the script refuses a prompt whose top-2 gap at some step is below
MIN_GAP, so the ids are a fair test of an engine whose logits agree to ~1e-6, and it refuses any generated
image token (the engine would read it as an image placeholder on a full re-run).

Run from the repository root:  .venv/bin/python tests/reference/make_generate_fixture.py
"""
import json
import os

import torch
from safetensors.torch import load_file
from transformers import LlavaForConditionalGeneration

DIR = "tests/data/llava_tiny"
OUT = "tests/data/llava_generate.json"
IMG = 99
PATCHES = 16
MAX_NEW = 6
MIN_GAP = 1e-3

# Prompts of different lengths (a right-padded batch of 22, 24, 3 and 4 tokens for the engine), picked for
# varied outputs and clear top-2 gaps.
PROMPTS = [
    ([1, 5, 7] + [IMG] * PATCHES + [18, 19, 20], 0),
    ([1, 5, 7] + [IMG] * PATCHES + [8, 9, 10, 11, 12], 1),
    ([1, 88, 44], -1),
    ([1, 30, 40, 50], -1),
]


def generate(model, ids, image, pixels, eos):
    kw = {}
    if image >= 0:
        kw["pixel_values"] = pixels[image:image + 1]
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                             max_new_tokens=MAX_NEW, eos_token_id=eos, pad_token_id=0, output_logits=True,
                             return_dict_in_generate=True, **kw)
    new = out.sequences[0, len(ids):].tolist()
    logits = [step[0].float() for step in out.logits]
    assert len(logits) == len(new), (len(logits), len(new))
    gaps = [float(l.topk(2).values[0] - l.topk(2).values[1]) for l in logits]
    return new, logits, gaps


def main():
    model = LlavaForConditionalGeneration.from_pretrained(DIR, dtype=torch.float32).eval()
    model.config._attn_implementation = "eager"
    model.generation_config.eos_token_id = None
    pixels = load_file(os.path.join(DIR, "io.safetensors"))["pixel_values"]
    # First pass without a stop token; eos becomes a token only prompt 2 generates, after its first step.
    free = [generate(model, ids, image, pixels, None)[0] for ids, image in PROMPTS]
    others = {t for i, g in enumerate(free) if i != 2 for t in g}
    eos = next(t for t in free[2][1:-1] if t not in others and t not in free[2][:1])
    prompts = []
    for (ids, image), first in zip(PROMPTS, free):
        new, logits, gaps = generate(model, ids, image, pixels, eos)
        assert IMG not in new, ("an image token was generated", ids, new)
        assert min(gaps) >= MIN_GAP, ("near tie", ids, gaps)
        assert new == first[:len(new)], (new, first)
        prompts.append({"ids": ids, "image": image, "generated": new,
                        "logits": [[float(x) for x in l] for l in logits], "gap": gaps})
    assert sum(len(p["generated"]) < MAX_NEW for p in prompts) == 1, [p["generated"] for p in prompts]
    with open(OUT, "w") as f:
        json.dump({"max_new": MAX_NEW, "eos": eos, "prompts": prompts}, f, indent=None)
        f.write("\n")
    for p in prompts:
        print(p["ids"][-3:], "->", p["generated"], "min gap %.4f" % min(p["gap"]))
    print("eos", eos)


if __name__ == "__main__":
    main()
