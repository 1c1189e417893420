#!/usr/bin/env python3
"""breakdown.py: what an evaluate stage's answers say beyond its metrics, for experiments on the embedded
world: the general suite by category, and how the portrait questions' errors fall over people (all five of a
person wrong means the face was not recognised; errors spread as independent ones mean single attributes
were missed; docs/results.md, E56), scored as the stage scores (likelihood or greedy letter).

usage: python3 tools/breakdown.py STORE STAGE [PULSE_PIPE]     (the world is the store's stage `world`)"""
import collections, json, subprocess, sys


def cat(pp, store, name, output):
    return subprocess.run([pp, "--store", store, "cat", name, output], capture_output=True, check=True).stdout


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[-1])
    store, stage = sys.argv[1], sys.argv[2]
    pp = sys.argv[3] if len(sys.argv) == 4 else "build/pulse-pipe"
    items = {}
    for line in cat(pp, store, "world", "items").decode().splitlines():
        it = json.loads(line)
        items[it["id"]] = it
    # The stage's own scoring: the likelihood's answer, or MLLMU-Bench's greedy letter.
    key = "likelihood" if json.loads(cat(pp, store, stage, "metrics"))["scoring"] == "likelihood" else "greedy"
    general, person = collections.defaultdict(lambda: [0, 0]), collections.defaultdict(lambda: [0, 0])
    for a in json.loads(cat(pp, store, stage, "answers"))["items"]:
        ok, it = a[key] == a["answer"], items[a["id"]]
        if a["set"] == "general":
            tally = general[it["category"]]
        elif a["set"].endswith("_mm"):
            tally = person[it["person"]]
        else:
            continue
        tally[0] += ok
        tally[1] += 1
    right, asked = sum(v[0] for v in general.values()), sum(v[1] for v in general.values())
    print(f"general ({key}):", ", ".join(f"{c} {100 * v[0] / v[1]:.1f}" for c, v in sorted(general.items())),
          f"| all {100 * right / max(asked, 1):.2f} ({right}/{asked})")
    hist = collections.Counter(v[0] for v in person.values())
    print("portrait questions right per person (right: people):", dict(sorted(hist.items())))


if __name__ == "__main__":
    main()
