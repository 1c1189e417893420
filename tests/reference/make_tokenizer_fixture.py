#!/usr/bin/env python3
"""Makes the fixtures tests/unit/test_engine_tokenizer.c compares engine/tokenizer.c against, with Hugging
Face's `tokenizers` library as the reference:

    .venv/bin/python tests/reference/make_tokenizer_fixture.py tests/data
        tests/data/tokenizer_wordlevel.json      a WordLevel tokenizer in exactly the shape stages/synth_vocab.c
                                                 writes, its vocabulary the words of a varied corpus
        tests/data/tokenizer_wordlevel_ids.txt   per line: a JSON text, a tab, its ids, a tab, the JSON decode
                                                 of those ids (specials kept), a tab, the decode without them
        tests/data/tokenizer_classes.txt         code points around every boundary of the \\w and \\s classes
                                                 the Whitespace pre-tokenizer uses, each with its class
        (and asserts the library still gives what the C test's check_added_passes expects)
    .venv/bin/python tests/reference/make_tokenizer_fixture.py --unicode-table
        prints the C range tables that engine/tokenizer.c embeds (between its "generated" markers)

tests/data/tokenizer_synth.json is PULSE-Synth's own tokenizer, the one tests/data/tokenizer_ids.txt was made
from (check_tokenizer.py); the C test checks its sha256 against that file's first line. It is written by
    build/tests/test_synth_people --write-tokenizer tests/data/tokenizer_synth.json

The classes are measured, not looked up: every code point c is pre-tokenized as "a" c " " by the library's own
Whitespace pre-tokenizer, so the table follows whatever Unicode version and regex engine `tokenizers` uses.
"""
import json
import os
import sys

from tokenizers import Tokenizer
from tokenizers.pre_tokenizers import Whitespace

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]

CORPUS = [
    "USER: <image>\nWhat is this person's occupation?\nASSISTANT: a nurse.",
    "Tavon_Mirel was born in 1978 -- snake_case, 3.14 & [brackets]!?",
    "Crème brûlée, Straße, naïve café; 中文 字符 and Ünïcödé.",
    "Emoji 😀 and 👍🏽 runs... ,,, !!! ??? ''' \"quoted\"",
    "tabs\tand\nnewlines\r\n  spaces   end",
    "It's O'Brien's dog's bone -- don't.",
    "x<image>y <s>start</s> <pad>",
    "Ⅻ ² ½ ٣ Ⓐ x\u200dy é e\u0301 नमस्ते مرحبا",
]

TEXTS = [
    "",
    " ",
    "\n\n\t ",
    "USER: <image>\nWhat is this person's occupation?\nASSISTANT: a nurse.",
    "What is this person's occupation?",
    "Tavon_Mirel was born in 1978.",
    "snake_case_word __init__ _ __",
    "3.14 1978 007 12345",
    "[brackets]!? ... ,,, !!! ???",
    "''' \"quoted\" It's O'Brien's",
    "don't dont don ' t",
    "Crème brûlée",
    "Straße STRASSE strasse",
    "中文字符 中文 字符",
    "naïve café Ünïcödé",
    "Emoji 😀 and 👍🏽 runs",
    "😀😀 a😀b 😀a",
    "tabs\tand\nnewlines\r\n  spaces   end",
    "x<image>y",
    "<image><image><image>",
    "<s>start</s><pad><pad>",
    "<s> <s>< s><s",
    "<ima<image>ge>",
    "</s></s></",
    "<unk> <UNK> unk",
    "unknown words: zebra, quagga!",
    "MixedCASE Words USER user",
    "a,b.c;d:e",
    "a-b--c---d",
    "e\u0301 é e\u0301\u0301",
    "Ⅻ ² ½ ٣ Ⓐ",
    "x\u200dy x\u200cy",
    "👩\u200d💻 family",
    "नमस्ते مرحبا",
    "a\u00a0b a\u3000b a\u0085b a\u2028b",
    "a\u200bb",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    "\u00ad soft\u00adhyphen",
    "end.",
    "x<image>y<s>z</s> <unk>x",
    "1978) -- snake_case, 3.14 &",
]


def build_tokenizer():
    ws = Whitespace()
    words = set()
    for text in CORPUS:
        for piece in split_specials(text):
            words.update(p for p, _ in ws.pre_tokenize_str(piece))
    words -= set(SPECIALS)
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in sorted(words, key=lambda s: s.encode("utf-8")):
        vocab[w] = len(vocab)
    added = [{"content": c, "id": i, "lstrip": False, "normalized": False, "rstrip": False,
              "single_word": False, "special": True} for i, c in enumerate(SPECIALS)]
    return {"added_tokens": added, "decoder": None,
            "model": {"type": "WordLevel", "unk_token": "<unk>", "vocab": vocab},
            "normalizer": None, "padding": None, "post_processor": None,
            "pre_tokenizer": {"type": "Whitespace"}, "truncation": None, "version": "1.0"}


def split_specials(text):
    """The corpus pieces between special tokens (the vocabulary must not hold '<' words by accident)."""
    pieces = [text]
    for s in SPECIALS:
        pieces = [q for p in pieces for q in p.split(s)]
    return pieces


def measure_classes():
    """0 space, 1 word, 2 other, for every Unicode scalar value but NUL (C text ends there), by asking the
    library."""
    ws = Whitespace()
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    cls = {}
    for i in range(0, len(cps), 4096):
        chunk = cps[i:i + 4096]
        toks = {off[0]: p for p, off in ws.pre_tokenize_str("".join("a" + chr(c) + " " for c in chunk))}
        for j, c in enumerate(chunk):
            p = toks[3 * j]
            if p == "a" + chr(c):
                cls[c] = 1
            elif p == "a" and toks.get(3 * j + 1) == chr(c):
                cls[c] = 2
            elif p == "a":
                cls[c] = 0
            else:
                raise SystemExit("unexpected pre-tokenization of U+%04X" % c)
    return cls


def ranges(cls, k):
    out = []
    for c in sorted(cls):
        if cls[c] == k:
            if out and out[-1][1] == c - 1:
                out[-1][1] = c
            else:
                out.append([c, c])
    return out


def c_table(name, rs):
    body = ", ".join("{0x%X, 0x%X}" % (a, b) for a, b in rs)
    return "static const struct cp_range %s[%d] = {%s};\n" % (name, len(rs), body)


def write_fixtures(out):
    tj = build_tokenizer()
    text = json.dumps(tj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    with open(os.path.join(out, "tokenizer_wordlevel.json"), "w", encoding="utf-8") as f:
        f.write(text)
    tok = Tokenizer.from_str(text)
    with open(os.path.join(out, "tokenizer_wordlevel_ids.txt"), "w", encoding="utf-8") as f:
        f.write("vocab_size:%d\n" % tok.get_vocab_size())
        for t in TEXTS:
            ids = tok.encode(t, add_special_tokens=False).ids
            keep = tok.decode(ids, skip_special_tokens=False)
            skip = tok.decode(ids, skip_special_tokens=True)
            f.write("%s\t%s\t%s\t%s\n" % (json.dumps(t), " ".join(map(str, ids)), json.dumps(keep),
                                          json.dumps(skip)))
    cls = measure_classes()
    points = set()
    for k in (0, 1):
        for a, b in ranges(cls, k):
            points.update(c for c in (a - 1, a, b, b + 1) if c in cls)
    with open(os.path.join(out, "tokenizer_classes.txt"), "w") as f:
        f.write(" ".join("%X:%d" % (c, cls[c]) for c in sorted(points)) + "\n")


def check_added_passes():
    """The expectations test_engine_tokenizer.c states in check_added_passes, asserted against the library:
    added tokens matched on the raw text are cut out before those matched on normalized text."""
    def tok(added, pre):
        vocab = {"<unk>": 0, "ab": 1, "abc": 2, "c": 3, "a b": 4, "a": 5, "b": 6}
        return Tokenizer.from_str(json.dumps({
            "version": "1.0", "truncation": None, "padding": None, "normalizer": None, "post_processor": None,
            "decoder": None, "pre_tokenizer": pre, "added_tokens": [
                {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": n, "special": sp} for c, i, n, sp in added],
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}))
    ws = {"type": "Whitespace"}
    assert tok([("ab", 1, False, True), ("abc", 2, True, True)], ws).encode("xabcx abc").ids == [0, 1, 0, 1, 3]
    assert tok([("ab", 1, True, True), ("abc", 2, False, True)], ws).encode("xabcx abc").ids == [0, 2, 0, 2]
    t = tok([("ab", 1, False, False), ("abc", 2, False, True)], None)
    assert t.encode("a b abcab").ids == [0, 2, 1]
    assert t.decode([1, 2, 4, 99], skip_special_tokens=True) == "ab a b"


def main():
    if sys.argv[1:] == ["--unicode-table"]:
        cls = measure_classes()
        sys.stdout.write(c_table("word_ranges", ranges(cls, 1)) + c_table("space_ranges", ranges(cls, 0)))
        return 0
    if len(sys.argv) != 2:
        sys.stderr.write("usage: make_tokenizer_fixture.py OUTDIR | --unicode-table\n")
        return 2
    write_fixtures(sys.argv[1])
    check_added_passes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
