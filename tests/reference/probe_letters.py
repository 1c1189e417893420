"""Letter probe (docs/results.md, "What the model knows"): the option-letter accuracy (argmax over the four
letter tokens at the last prompt position) on 300 of the multiple-choice questions the model was pretrained on
(text-only) against 300 held-out evaluation questions. Same folder as probe_knowledge.py. Needs a world of synth
version 3 or earlier: version 4 has no `mc` pretraining examples."""
import json, sys, random, torch
from tokenizers import Tokenizer
from transformers import LlavaForConditionalGeneration
d = sys.argv[1]
torch.set_num_threads(2)
model = LlavaForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()
tok = Tokenizer.from_file(d + "/tokenizer.json")
letters = [tok.token_to_id(x) for x in "ABCD"]
def acc(rows):
    ok = 0
    for r in rows:
        ids = torch.tensor([tok.encode(r["prompt"]).ids])
        with torch.no_grad():
            lg = model(input_ids=ids).logits[0, -1]
        ok += max(range(4), key=lambda k: lg[letters[k]].item()) == "ABCD".index(r["answer"])
    return ok / len(rows)
random.seed(0)
train = [r for r in map(json.loads, open(d + "/pretrain.jsonl")) if r["source"] == "mc" and r["image"] is None]
ev = [r for r in map(json.loads, open(d + "/items.jsonl")) if r.get("person") and r["modality"] == "text" and r["split"] == "eval"]
print("letters", letters)
print("train mc text", acc(random.sample(train, 300)))
print("eval text", acc(random.sample(ev, 300)))
