"""Naming probe (docs/results.md, E32): does a model know who is in a portrait? Writes, for every person of a
group, "Who is this?" items with four names to choose from (the person's and three others of the group, drawn
with a fixed seed) on two of their portraits, in the world's items format (docs/datasets.md). An `evaluate`
stage reads them in place of the world's items through a `file` stage, and scores them like any question
(by likelihood: the statement "This is {}."); its forget_mm / retain_mm are the share of people named right.

Usage: pulse-pipe cat world people > people.jsonl, then
    python3 tests/reference/probe_names.py people.jsonl fictitious t > names_t.jsonl   # held-out photos
    python3 tests/reference/probe_names.py people.jsonl fictitious p > names_p.jsonl   # training photos
and in a copy of manifests/protocol.lua, after `evaluate(kn .. "/before", ...)` for kn == "finetuned":
    local items = stage "names" { kind = "file", path = "names_t.jsonl" }
    stage "evaluate/names" (merge({ kind = "evaluate", split = k.select.out.split, knowledge = kn, rounds = 0,
      method = "none", round = 0 }, model(k.model), data, s.evaluate, { items = items.out.data }))"""
import json, random, sys

people_file, group, kind = sys.argv[1], sys.argv[2], sys.argv[3]
people = [json.loads(line) for line in open(people_file)]
people = [p for p in people if p["group"] == group]
rng = random.Random(7)
for p in people:
    for k in range(2):
        options = rng.sample([q["name"] for q in people if q["id"] != p["id"]], 3) + [p["name"]]
        rng.shuffle(options)
        question = "Who is this?"
        listed = "\n".join(f"{letter}: {o}" for letter, o in zip("ABCD", options))
        item = {"answer": "ABCD"[options.index(p["name"])], "category": "name", "id": f"{p['id']}-n{k}",
                "image": f"{p['id']}-{kind}{k}", "modality": "image", "options": options, "person": p["id"],
                "prompt": f"USER: <image>\n{question}\n{listed}\nJust give ONE letter representing the answer "
                          "directly.\nASSISTANT:",
                "question": question, "set": "person", "split": "eval", "statement": "This is {}."}
        print(json.dumps(item, sort_keys=True, separators=(",", ":")))
