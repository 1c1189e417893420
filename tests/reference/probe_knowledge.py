"""Knowledge probe (docs/results.md, "What the model knows"): does the pretrained model know each person's facts, independent of the multiple-choice
letter format? For each text-only pretraining fact sentence about a person, the sentence with the true value
is scored against the same sentence with each distractor from that person's evaluation item of the same
category (sum of log-probabilities of the answer tokens). Accuracy = the true sentence scores highest.

Usage: a folder with a pretrain stage's model.safetensors, config.json, tokenizer.json and the world's
people.jsonl, items.jsonl, pretrain.jsonl plus select/pretrained's split.json (`pulse-pipe cat STAGE OUTPUT`),
then `.venv/bin/python tests/reference/probe_knowledge.py FOLDER`."""
import json, sys, torch
from tokenizers import Tokenizer
from transformers import LlavaForConditionalGeneration
d = sys.argv[1]
torch.set_num_threads(2)
model = LlavaForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()
tok = Tokenizer.from_file(d + "/tokenizer.json")
people = {p["id"]: p for p in map(json.loads, open(d + "/people.jsonl"))}
items = [json.loads(l) for l in open(d + "/items.jsonl")]
split = json.load(open(d + "/split.json"))
top = set(split["forget"]) | set(split["retain"])
opts = {}  # (person, category) -> options of its eval item
for it in items:
    if it.get("person") and it["split"] == "eval":
        opts[(it["person"], it["category"])] = it["options"]
facts = [json.loads(l) for l in open(d + "/pretrain.jsonl")]
def score(prompt, answers):
    p = tok.encode(prompt).ids
    seqs = [p + tok.encode(" " + a).ids for a in answers]
    n = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (n - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs])
    with torch.no_grad():
        lp = model(input_ids=ids, attention_mask=mask).logits.log_softmax(-1)
    out = []
    for i, s in enumerate(seqs):
        out.append(sum(lp[i, j - 1, s[j]].item() for j in range(len(p), len(s))))
    return out
hits = {"top": [0, 0], "all": [0, 0]}
for f in facts:
    if f["image"] is not None or f.get("source") != "fact":
        continue
    person = people[f["person"]]
    for cat, val in person["attributes"].items():
        if val in f["answer"] and (f["person"], cat) in opts:
            o = opts[(f["person"], cat)]
            if val not in o:
                continue
            cands = [f["answer"].replace(val, x) for x in o]
            sc = score(f["prompt"], cands)
            ok = max(range(4), key=lambda k: sc[k]) == o.index(val)
            for key in ("all",) + (("top",) if f["person"] in top else ()):
                hits[key][0] += ok
                hits[key][1] += 1
            break
for k, (a, n) in hits.items():
    print(f"{k}: {a}/{n} = {a / max(n, 1):.3f}")
