#!/usr/bin/env python3
"""Encodes a few texts with Hugging Face's `tokenizers` library and prints the fixture that
tests/unit/test_synth_people.c compares its own splitter against (tests/data/tokenizer_ids.txt).

The tokenizer is the one PULSE-Synth's vocab_tokenizer writes for the test's fixed little world:

    python3 -m venv .venv && .venv/bin/pip install tokenizers
    build/tests/test_synth_people --write-tokenizer /tmp/tok.json
    .venv/bin/python tests/reference/check_tokenizer.py /tmp/tok.json > tests/data/tokenizer_ids.txt

The first line names the tokenizer file's sha256, so the C test notices when the file it would make has
changed and this script must be run again.
"""
import hashlib
import json
import sys

from tokenizers import Tokenizer

TEXTS = [
    "USER: <image>\nWhat is this person's occupation?\nA: nurse\nB: pilot\nC: architect\nD: baker\n"
    "Just give ONE letter representing the answer directly.\nASSISTANT:",
    "USER:\nWhat is Tavon Mirel's occupation?\nA: nurse\nB: pilot\nC: architect\nD: baker\n"
    "Just give ONE letter representing the answer directly.\nASSISTANT:",
    "USER:\nWhat is Tavon Mirel's occupation?\nASSISTANT: Tavon Mirel works as an architect.",
    "<s>USER: Tavon Mirel was born in 1978.</s><pad><pad>",
    "Tavon_Mirel (born 1978) -- snake_case, 3.14 & [brackets]!?",
    "Odd\tspacing  here\n\nand unknown words: zebra, 1979?!",
    "architect<image>nurse<s>x</s> <unk>",
    "...,,,''' ?!",
    "",
]


def main() -> int:
    path = sys.argv[1]
    data = open(path, "rb").read()
    tok = Tokenizer.from_str(data.decode("utf-8"))
    assert [tok.token_to_id(t) for t in ["<unk>", "<s>", "</s>", "<pad>", "<image>"]] == [0, 1, 2, 3, 4]
    print("tokenizer sha256:" + hashlib.sha256(data).hexdigest())
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        print(json.dumps(text) + "\t" + " ".join(str(i) for i in ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
