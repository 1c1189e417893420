#!/usr/bin/env python3
"""Makes the fixtures tests/unit/test_engine_tokenizer_bpe.c compares engine/tokenizer_bpe.c against, with
Hugging Face's `tokenizers` library as the reference:

    .venv/bin/python tests/reference/make_bpe_fixture.py tests/data

tests/data/tokenizer_bpe.json: a small LLaMA-style tokenizer. A BPE trained here on a mixed corpus, its
vocabulary laid out as LLaMA's (<unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then the learned pieces),
byte_fallback, fuse_unk, merges in the [a, b] pair form, and exactly the normalizer, decoder and
post-processor transformers' LlamaConverter writes (legacy mode); <image> and <pad> added after the
vocabulary, as in llava-hf.

tests/data/tokenizer_bpe_ids.txt: tab-separated lines, texts and decodes as JSON strings, ids space-separated:
    V <patch>                       the lines below use the tokenizer with this patch applied (apply_patch)
    E <text> <ids> <keep> <skip>    encode(text, add_special_tokens=False), and decode(ids) keeping /
                                    skipping special tokens
    D <ids> <keep> <skip>           the decodes of an arbitrary id sequence

The script also asserts that the library still gives what the C test's check_edges expects.

The patches cover both forms transformers writes for LLaMA (legacy: the Prepend + Replace normalizer; not
legacy: a Metaspace pre-tokenizer with prepend_scheme "first", also in the older serialization with
add_prefix_space), merges in the "a b" string form, unk handling without byte fallback, and added tokens
matched after normalization. Deterministic: the same library version writes the same bytes.
"""
import copy
import json
import os
import random
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, processors

CORPUS = [
    "USER: <image>\nWhat is this person's occupation?\nASSISTANT: The person in the image is a nurse.",
    "USER: <image>\nWhere was this person born?\nASSISTANT: She was born in Lisbon, Portugal, in 1978.",
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.",
    "Tavon Mirel works as an architect and lives in a small town near the sea.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1978 2025 3.14159 -7 +12 1,000,000 50%",
    "Code: def f(x): return x * 2  # doubles\n    if (a && b) { c++; }",
    "Crème brûlée, naïve café, Straße, Ünïcödé, señor, façade, smörgåsbord.",
    "Москва — столица России. Привет, мир!",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "中文字符，你好世界。日本語のテキスト、こんにちは。",
    "مرحبا بالعالم. नमस्ते दुनिया।",
    "Emoji: 😀 😃 👍 👍🏽 🎉 ❤️ 🇫🇷 👩‍💻 — and more text after the emoji.",
    "Tabs\tand\nnewlines\r\n and   multiple    spaces   here.",
    "She said: \"It's O'Brien's book, isn't it?\" He replied: 'No!'",
    "The photographer, the pilot, the baker and the teacher met at noon.",
    "What is the name of this person? Answer with one word.",
    "A: nurse\nB: pilot\nC: architect\nD: baker\nJust give ONE letter representing the answer directly.",
    "In 2019 she moved to Berlin, where she founded a company that builds robots.",
    "The weather is nice today, isn't it? Yes, it is really nice and warm.",
    "Unlearning removes knowledge of specific people from a trained model.",
    "The model answers questions about people it has seen in its training data.",
    "aaaa bbbb aaaaaaa abababab ---- ==== .... ,,,, !!!! ????",
    "www.example.com/path?query=1&other=2 user@example.org",
    "Il était une fois une princesse qui vivait dans un château.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
]

SPECIALS = ["<unk>", "<s>", "</s>"]
ADDED = ["<image>", "<pad>"]  # after the vocabulary, as llava-hf adds them

TEXTS = [
    "",
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n",
    "\t",
    " \n \t ",
    "a",
    " a",
    "a ",
    " a ",
    "  a  ",
    "hello",
    "Hello world",
    "Hello  world",
    "Hello   world   ",
    "   leading spaces",
    "trailing spaces   ",
    "USER: <image>\nWhat is this person's occupation?\nASSISTANT:",
    "USER: <image>\nWhat is this person's occupation?\nA: nurse\nB: pilot\nC: architect\nD: baker\n"
    "Just give ONE letter representing the answer directly.\nASSISTANT:",
    "<image>",
    "<image><image>",
    "<image> <image>",
    "x<image>y",
    "x <image> y",
    " <image>",
    "<image> ",
    "<ima",
    "<image",
    "image>",
    "<ima<image>ge>",
    "<s>",
    "<s>Hello",
    "<s> Hello",
    "Hello</s>",
    "<s>USER: hi</s><pad><pad>",
    "</s></s>",
    "<unk>",
    "<unk> text",
    "<pad>",
    "<0x41>",
    "<0x0A> is a byte token",
    "▁",
    "▁▁",
    "▁hello",
    " ▁hello",
    "hello▁world",
    "The quick brown fox jumps over the lazy dog.",
    "the the the the the",
    "THE QUICK BROWN FOX",
    "Tavon Mirel works as an architect.",
    "She was born in Lisbon, Portugal, in 1978.",
    "0",
    "1978",
    "3.14159",
    "1,000,000",
    "12345678901234567890",
    "-7 +12 50%",
    "a1b2c3",
    "aaaaaaaaaaaaaaaaaaaa",
    "aaaa aaaa aaaa",
    "abababababababab",
    "----------",
    "==========",
    "..........",
    "!!!???!!!",
    "Crème brûlée",
    "naïve café",
    "Straße",
    "Ünïcödé",
    "e\u0301 é",
    "Москва",
    "Привет, мир!",
    "Η Αθήνα",
    "中文字符",
    "你好世界",
    "日本語のテキスト",
    "こんにちは",
    "한국어",
    "مرحبا",
    "नमस्ते",
    "😀",
    "😀😀😀",
    "👍🏽",
    "👩\u200d💻",
    "🇫🇷",
    "❤️",
    "a😀b",
    " 😀 ",
    "🦄 unicorn",
    "\u0000x".replace("\u0000", "\u0001"),
    "\u007f",
    "\u00a0",
    "a\u00a0b",
    "\u200b",
    "a\u3000b",
    "\u2028",
    "\ufeff",
    "\U0010fffd",
    "\U0001f9ff\U0001fa70",
    "ꙮ",
    "\u00ad",
    "Tabs\tand\nnewlines\r\n",
    "line1\nline2\nline3",
    "\r\n\r\n",
    "def f(x):\n    return x * 2",
    "if (a && b) { c++; }",
    "www.example.com/path?query=1&other=2",
    "user@example.org",
    "She said: \"It's O'Brien's book, isn't it?\"",
    "Il était une fois",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El rápido zorro marrón",
    "Unlearning removes knowledge of specific people.",
    "What is the name of this person? Answer with one word.",
    "zzzzqqqq xkcd",
    "QWERTYUIOP",
    "ÀÁÂÃÄÅ",
    "ĀāĂăĄą",
    "ǅ ǆ Ǆ",
    "ﬁ ﬂ",
    "ｆｕｌｌｗｉｄｔｈ",
]


def sentencepiece_words(text):
    """The words SentencePiece trains on: spaces become ▁, which starts every word."""
    text = "▁" + text.replace(" ", "▁")
    return ["▁" + w for w in text.split("▁") if w]


def train(n_chars=110, n_merges=600):
    """A plain BPE trainer (the library's own trainer breaks ties in hash order, so it is not repeatable):
    the n_chars most frequent characters, then merges of the most frequent adjacent pair, ties broken by the
    pair's text. Characters left out of the alphabet split words and reach the model as bytes."""
    counts = {}
    for line in CORPUS:
        for special in SPECIALS + ADDED:  # never learned: they are cut out before the model
            line = line.replace(special, " ")
        for w in sentencepiece_words(line):
            counts[w] = counts.get(w, 0) + 1
    chars = {}
    for w, c in counts.items():
        for ch in w:
            chars[ch] = chars.get(ch, 0) + c
    alphabet = [ch for ch, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:n_chars]]
    words = []
    for w, c in sorted(counts.items()):
        piece = []
        for ch in w + "\0":
            if ch in alphabet:
                piece.append(ch)
            elif piece:
                words.append([piece, c])
                piece = []
    tokens, merges = list(alphabet), []
    for _ in range(n_merges):
        pairs = {}
        for syms, c in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append([a, b])
        if a + b not in tokens:
            tokens.append(a + b)
        for entry in words:
            syms, out, i = entry[0], [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            entry[0] = out
    return tokens, merges


def llama_json():
    """The trained model in LLaMA's layout and with LlamaConverter's (legacy) pipeline."""
    tokens, merges = train()
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for tok in tokens:
        if tok not in vocab:
            vocab[tok] = len(vocab)
    added = [{"id": vocab[c], "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for c in SPECIALS]
    added += [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True} for i, c in enumerate(ADDED)]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges], unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    j = json.loads(tok.to_str())
    j["added_tokens"] = added
    check = Tokenizer.from_str(json.dumps(j))
    assert all(check.token_to_id(a["content"]) == a["id"] for a in added), "the library renumbers them"
    return j


METASPACE_FIRST = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
PATCHES = [
    ({"name": "llama"}, None),
    ({"name": "llama, merges as strings", "merges_as_strings": True}, 50),
    ({"name": "not legacy: Metaspace first", "normalizer": None, "pre_tokenizer": METASPACE_FIRST}, None),
    ({"name": "Metaspace in the older serialization", "normalizer": None,
      "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True,
                        "prepend_scheme": "first"}}, 70),
    ({"name": "Metaspace always, split, Metaspace decoder", "normalizer": None,
      "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
      "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}}, 70),
    ({"name": "no prefix space, no decoder",
      "normalizer": {"type": "Sequence", "normalizers": [
          {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      "decoder": None, "post_processor": None}, 40),
    ({"name": "unk without byte fallback", "model": {"byte_fallback": False}}, 70),
    ({"name": "unk not fused", "model": {"byte_fallback": False, "fuse_unk": False}}, 70),
    ({"name": "added tokens normalized", "added_normalized": True}, 70),
]


def apply_patch(base, patch):
    """What the C test's apply_patch does: top-level parts replaced, model fields replaced, the merges
    written as "a b" strings, the added tokens after the vocabulary marked normalized."""
    j = copy.deepcopy(base)
    for k, v in patch.items():
        if k in ("normalizer", "pre_tokenizer", "decoder", "post_processor"):
            j[k] = v
        elif k == "model":
            j["model"].update(v)
        elif k == "merges_as_strings":
            j["model"]["merges"] = [a + " " + b for a, b in j["model"]["merges"]]
        elif k == "added_normalized":
            for a in j["added_tokens"]:
                a["normalized"] = a["content"] in ADDED
    return j


def generated_texts(rng, n):
    """Random mixes of words, rare characters, spaces and added tokens."""
    pool = ["the", "The", "person", "nurse", "architect", " ", "  ", "\n", "\t", "<image>", "<s>", "</s>",
            "<pad>", "<ima", "é", "ß", "中", "文", "😀", "👍🏽", "🦄", "\u0301", "1978", "42", ".", ",", "?",
            "'s", "Ω", "ж", "ー", "x", "qz", "▁", "<0x41>", "\u00a0", "\r\n"]
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 12))))
    return out


def decode_cases(rng, size):
    """Id sequences no encoder writes: byte tokens that are not UTF-8, specials among them, unknown ids."""
    bytes_ = list(range(3, 259))
    cases = [[], [1], [1, 2], [0], [3 + 0xE2, 3 + 0x82, 3 + 0xAC], [3 + 0xE2, 3 + 0x82], [3 + 0xFF],
             [3 + 0xE2, 1, 3 + 0x82, 3 + 0xAC], [size, size + 1, size + 7], [-1, 5], [3 + 0x20, 3 + 0x41]]
    for _ in range(40):
        pick = [rng.choice(bytes_) if rng.random() < 0.5 else rng.randrange(-2, size + 4)
                for _ in range(rng.randint(1, 10))]
        cases.append(pick)
    return cases


def encode_line(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    with_bos = tok.encode(text, add_special_tokens=True).ids
    if tok.post_processor is not None and with_bos != [1] + ids:
        raise SystemExit("add_special_tokens=True is not <s> + ids for %r" % text)
    keep = tok.decode(ids, skip_special_tokens=False)
    skip = tok.decode(ids, skip_special_tokens=True)
    return "E\t%s\t%s\t%s\t%s\n" % (json.dumps(text), " ".join(map(str, ids)), json.dumps(keep),
                                    json.dumps(skip))


def write_fixtures(out):
    base = llama_json()
    text = json.dumps(base, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out, "tokenizer_bpe.json"), "w", encoding="utf-8") as f:
        f.write(text)
    rng = random.Random(7)
    texts = TEXTS + generated_texts(rng, 60)
    size = Tokenizer.from_str(text).get_vocab_size()
    with open(os.path.join(out, "tokenizer_bpe_ids.txt"), "w", encoding="utf-8") as f:
        f.write("vocab_size:%d\n" % size)
        for patch, count in PATCHES:
            tok = Tokenizer.from_str(json.dumps(apply_patch(base, patch)))
            f.write("V\t%s\n" % json.dumps(patch, ensure_ascii=False))
            for t in texts[:count]:
                f.write(encode_line(tok, t))
            if patch["name"] == "llama":
                for ids in decode_cases(rng, size):
                    valid = [i for i in ids if i >= 0]  # the library takes u32 ids; C skips -1
                    f.write("D\t%s\t%s\t%s\n" % (" ".join(map(str, ids)),
                                                 json.dumps(tok.decode(valid, skip_special_tokens=False)),
                                                 json.dumps(tok.decode(valid, skip_special_tokens=True))))


NORM = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}


def small(vocab, merges, model=None, normalizer=None, pre=None, added=()):
    """A hand-made tokenizer for check_edges: BPE with byte fallback over vocab and merges."""
    m = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
         "vocab": vocab, "merges": merges}
    m.update(model or {})
    return Tokenizer.from_str(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "normalizer": normalizer, "pre_tokenizer": pre,
        "post_processor": None, "decoder": None, "model": m, "added_tokens": [
            {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": n,
             "special": True} for c, i, n in added]}))


def check_edges():
    """The expectations test_engine_tokenizer_bpe.c states in check_edges, asserted against the library."""
    v = {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "ba": 4, "aa": 5, "<0x78>": 6, "▁": 7, "▁a": 8}
    # A merge listed twice takes the rank of its last line; equal ranks merge leftmost first.
    assert small(v, ["a b", "b a", "a b"]).encode("abab").ids == [1, 4, 2]
    assert small(v, [["a", "b"], ["b", "a"]]).encode("abab").ids == [3, 3]
    assert small(v, ["#version: 0.2", "a a"]).encode("aaaaa").ids == [5, 5, 1]
    # Byte fallback needs every byte of a character; an unknown one waits (fused) until a known character
    # comes, so byte tokens can overtake it.
    assert small(v, []).encode("zxzyxa").ids == [6, 6, 0, 1]
    assert small(v, [], {"fuse_unk": False}).encode("zxzyxa").ids == [6, 0, 0, 6, 0, 1]
    assert small(v, [], {"unk_token": None}).encode("zaz").ids == [1]
    # Normalized added tokens are matched as the normalizer writes them: "<i>" becomes "▁<i>".
    t = small(v, ["▁ a"], normalizer=NORM, added=[("<i>", 9, True)])
    assert t.encode("a<i>").ids == [8, 0] and t.encode("a <i>a").ids == [8, 9, 1]
    # Metaspace "first" adds ▁ only to the piece at the very start of the text; split starts a word at each ▁.
    t = small(v, ["▁ a"], pre={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                               "split": True}, added=[("<i>", 9, False)])
    assert t.encode("a<i>a a").ids == [8, 9, 1, 8] and t.encode("<i>a").ids == [9, 1]
    # The ByteFallback decoder reads <0xNN> as Rust's u8::from_str_radix does: lower case and "+" too.
    d = Tokenizer.from_str(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "normalizer": None, "pre_tokenizer": None,
        "post_processor": None, "added_tokens": [],
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "vocab": {"<0x+A>": 0, "<0xe9>": 1, "<0xC3>": 2, "<0xA9>": 3, "<0x-1>": 4},
                  "merges": []}}))
    assert d.decode([0, 2, 3, 4, 1], skip_special_tokens=False) == "\né<0x-1>\ufffd"


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: make_bpe_fixture.py OUTDIR\n")
        return 2
    write_fixtures(sys.argv[1])
    check_edges()
    return 0


if __name__ == "__main__":
    sys.exit(main())
