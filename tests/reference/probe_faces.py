"""Face probe (docs/results.md, E19): can the frozen tower tell people apart? For each group of people (the
real ones, whose portraits the tower was pretrained on, and the fictitious ones, which it never saw), every
held-out portrait (`<id>-t<k>`) is classified among the group's people from their training portraits
(`<id>-p<k>`), by nearest neighbour (cosine) and by a linear softmax classifier fitted on the training
portraits (not on the raw patches: too slow here), on three features: the raw patches, the tower's output and the projector's output (transformers'
Llava on the engine's weights). Fine-tuning keeps the tower and the projector frozen (MLLMU-Bench's recipe),
so the decoder's LoRA can only learn a fictitious face from what these features keep of it.

Usage: a folder with a pretrain stage's model.safetensors, config.json and the world's images.tar
(`pulse-pipe cat STAGE OUTPUT`), then `.venv/bin/python tests/reference/probe_faces.py FOLDER`."""
import re, sys
import torch

from probe_model import Probe

d = sys.argv[1]
torch.manual_seed(0)
probe = Probe(d)
model, tar, side, patch, grid, pixels = probe.model, probe.tar, probe.side, probe.patch, probe.grid, probe.pixels
names = sorted(n[:-4] for n in tar.getnames() if re.fullmatch(r"[rf]\d{4}-[pt]\d+\.png", n))


def features(group):
    out = {"patches": [], "tower": [], "projector": []}
    for at in range(0, len(group), 256):
        px = torch.stack([pixels(n) for n in group[at:at + 256]])
        with torch.no_grad():
            h = model.model.vision_tower(px, output_hidden_states=True).hidden_states[-1][:, 1:]
            p = model.model.multi_modal_projector(h)
        raw = px.reshape(len(px), 3, grid, patch, grid, patch).permute(0, 2, 4, 1, 3, 5).reshape(len(px), -1)
        for k, v in (("patches", raw), ("tower", h.flatten(1)), ("projector", p.flatten(1))):
            out[k].append(v)
    return {k: torch.cat(v) for k, v in out.items()}


def linear(a, ya, b, yb, classes, steps=300):
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    W = torch.zeros(a.shape[1], classes, requires_grad=True)
    c = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([W, c], lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(a @ W + c, ya).backward()
        opt.step()
    with torch.no_grad():
        return ((b @ W + c).argmax(1) == yb).float().mean().item()


def nearest(a, ya, b, yb):
    mu = a.mean(0)
    a = torch.nn.functional.normalize(a - mu, dim=1)
    b = torch.nn.functional.normalize(b - mu, dim=1)
    return (ya[(b @ a.T).argmax(1)] == yb).float().mean().item()


for prefix, label in (("r", "real (the tower trained on them)"), ("f", "fictitious (never seen by the tower)")):
    people = sorted({n[:5] for n in names if n[0] == prefix})
    train = [n for n in names if n[0] == prefix and n[6] == "p"]
    held = [n for n in names if n[0] == prefix and n[6] == "t"]
    ya = torch.tensor([people.index(n[:5]) for n in train])
    yb = torch.tensor([people.index(n[:5]) for n in held])
    fa, fb = features(train), features(held)
    print(f"{label}: {len(people)} people, {len(train)} training and {len(held)} held-out portraits, "
          f"chance {100 / len(people):.1f} %")
    for k in fa:  # raw patches: nearest neighbour only (a linear map of 12,288 pixels is too slow to fit here)
        lin = f"   linear {100 * linear(fa[k], ya, fb[k], yb, len(people)):5.1f} %" if k != "patches" else ""
        print(f"  {k:9s} nearest neighbour {100 * nearest(fa[k], ya, fb[k], yb):5.1f} %{lin}", flush=True)
