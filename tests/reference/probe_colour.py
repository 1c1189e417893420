"""Colour probe (docs/results.md, E12): does the image reach the decoder? On the general suite's one-object
colour questions ("What colour is the object?"), a linear classifier (softmax regression, torch) is fitted on
the training scenes' raw patches, the tower's output and the projector's output, and scored on the held-out
scenes; then the model itself picks among the four answer sentences by likelihood, as the engine's
evaluation does (transformers' Llava on the engine's weights).

Usage: a folder with a pretrain stage's model.safetensors, config.json, tokenizer.json and the world's
items.jsonl and images.tar (`pulse-pipe cat STAGE OUTPUT`), then
`.venv/bin/python tests/reference/probe_colour.py FOLDER`."""
import json, sys
import numpy as np, torch
from tokenizers import Tokenizer

from probe_model import Probe

d = sys.argv[1]
probe = Probe(d)
model, tar, side, patch, grid, pixels = probe.model, probe.tar, probe.side, probe.patch, probe.grid, probe.pixels
tok = Tokenizer.from_file(d + "/tokenizer.json")

items = [it for it in map(json.loads, open(d + "/items.jsonl"))
         if it.get("category") == "colour" and it["question"] == "What colour is the object?"]
split = {s: [it for it in items if it["split"] == s] for s in ("train", "eval")}
colours = sorted({it["options"][ord(it["answer"]) - 65] for it in items})


def features(its):
    px = torch.stack([pixels(it["image"]) for it in its])
    with torch.no_grad():
        h = model.model.vision_tower(px, output_hidden_states=True).hidden_states[-1][:, 1:]
        p = model.model.multi_modal_projector(h)
    raw = px.reshape(len(its), 3, grid, patch, grid, patch).permute(0, 2, 4, 1, 3, 5).reshape(len(its), -1)
    return {"patches": raw, "tower": h.flatten(1), "projector": p.flatten(1)}


def labels(its):
    return torch.tensor([colours.index(it["options"][ord(it["answer"]) - 65]) for it in its])


ftr, fev = features(split["train"]), features(split["eval"])
ytr, yev = labels(split["train"]), labels(split["eval"])
print(f"one-object colour questions: {len(ytr)} training scenes, {len(yev)} held out")
for name in ftr:
    mu, sd = ftr[name].mean(0), ftr[name].std(0) + 1e-6
    a, b = (ftr[name] - mu) / sd, (fev[name] - mu) / sd
    W = torch.zeros(a.shape[1], len(colours), requires_grad=True)
    c = torch.zeros(len(colours), requires_grad=True)
    opt = torch.optim.Adam([W, c], lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ W + c, ytr) + 1e-3 * (W * W).sum()
        loss.backward()
        opt.step()
    acc = lambda f, y: ((f @ W + c).argmax(1) == y).float().mean().item()
    print(f"linear probe on {name:9s}: training {acc(a, ytr):.3f}, held out {acc(b, yev):.3f}")


def choose(it):
    prompt = tok.encode("USER: <image>\n" + it["question"] + "\nASSISTANT:").ids
    k = prompt.index(model.config.image_token_index)
    prompt = prompt[:k] + [model.config.image_token_index] * grid * grid + prompt[k + 1:]
    scores = []
    for option in it["options"]:
        answer = tok.encode(" " + it["statement"].replace("{}", option)).ids + [2]
        with torch.no_grad():
            lp = model(input_ids=torch.tensor([prompt + answer]), pixel_values=pixels(it["image"])[None])
        lp = lp.logits.log_softmax(-1)[0]
        scores.append(sum(lp[len(prompt) + j - 1, t].item() for j, t in enumerate(answer)))
    return int(np.argmax(scores)) == ord(it["answer"]) - 65


for s in ("train", "eval"):
    its = split[s][:60]
    print(f"the model's likelihood choice, {s}: {sum(map(choose, its))}/{len(its)}")
