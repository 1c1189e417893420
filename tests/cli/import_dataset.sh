#!/usr/bin/env bash
# import-dataset: an MMBench TSV written as pandas writes it (a BOM, quoted fields with tabs, newlines and
# doubled quotes; PNG and JPEG images, hints, 2-4 options, a shared image, the split filter, limit) and a pulse
# directory (images/ or images.tar) become canonical objects; malformed files fail with one line naming the file
# and line; MLLMU-Bench Parquet files written here in the published schema convert with tools/mllmu_to_pulse.py
# (both evaluation modes, the celebrities' facts, the same bytes on a rerun) and import with the benchmark's
# exact prompts (skipped without pyarrow); bad Parquet values fail with one line.
source "$(dirname "$0")/lib.bash"
R=$(realpath "$T")
export PYTHONDONTWRITEBYTECODE=1 # the fixtures are imported from the source tree

# object STAGE OUTPUT FILE: the stage's output, uncompressed, into FILE.
object() {
    local id
    id=$(output_id "$1" "$2")
    id=${id#sha256:}
    zstd -qdc "$PULSE_STORE/objects/sha256/${id:0:2}/${id:2}" >"$3"
}
# record STAGE EXPR: a Python expression over the stage's record `r`.
record() { "$PP" show "$1" --json | python3 -c "import json,sys; r = json.load(sys.stdin); print($2)"; }
metric() { record "$1" "int(r['metrics']['$2'])"; }
# manifest FILE STAGE FORMAT PATH [EXTRA]: one import-dataset stage.
manifest() { echo "stage \"$2\" { kind = \"import-dataset\", format = \"$3\", path = \"$4\"${5:-} }" >"$1"; }

# Images from the stdlib alone (PNGs by zlib and struct, a fixed JPEG), shared with the Parquet fixture.
cat >"$T/imgs.py" <<PY
import base64, sys
sys.path.insert(0, "$SRC/tests/reference")
from make_mllmu_parquet import png, JPEG
b64 = lambda data: base64.b64encode(data).decode()
# pandas' DataFrame.to_csv(sep="\t", index=False, encoding="utf-8-sig") is the csv module with these settings
# (NaN written as an empty field).
def write_tsv(path, rows):
    import csv
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
def read_tsv(path):
    import csv
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))
PY

# ---- MMBench: a well-formed TSV, columns in another order plus extra ones ----
cat >"$T/mmb.py" <<'PY'
import sys; sys.path.insert(0, sys.argv[1]); from imgs import png, JPEG, b64, write_tsv
cols = ["index", "image", "question", "hint", "A", "B", "C", "D", "answer", "category", "source",
        "l2-category", "comment", "split"]
rows = [
    ["10", b64(png((255, 0, 0))), "What colour is the square?", "NaN", "red", "green", "blue", "none", "B",
     "attribute_recognition", "s", "l2", "nan", "dev"],
    ["11", b64(JPEG), "Which one is \"d\"?\tSay it.", "Look\nclosely.", "a", "b", "c", "\"d\"", "D",
     "object_localization", "s", "l2", "", "dev"],
    ["12", "10", "Is it red?", "None", "yes", "no", "", "", "A", "attribute_recognition", "s", "l2", "", "dev"],
    ["13", b64(png((0, 0, 255))), "Only in test?", "", "x", "y", "", "", "A", "c", "s", "l2", "", "test"],
    ["2", b64(png((0, 255, 0))), "Grün?", "", "ja", "nein", "", "", "A", "c", "s", "l2", "", "dev"],
]
write_tsv(sys.argv[2], [cols] + rows)
PY
python3 "$T/mmb.py" "$T" "$T/mmb.tsv"
# What pandas would have written: the BOM, and row 11 quoted over two lines.
head -c 3 "$T/mmb.tsv" | od -An -tx1 | grep -q "ef bb bf" || fail "the fixture should start with a BOM"
grep -qF '"Which one is ""d""?' "$T/mmb.tsv" || fail "the fixture should quote row 11's question"
manifest "$T/m.lua" mmb mmbench mmb.tsv
expect_code 0 "$PP" run "$T/m.lua"
has "$T/out" "1 computed"
[ "$(metric mmb items)" = 4 ] || fail "expected 4 dev items"
[ "$(metric mmb images)" = 3 ] || fail "expected 3 images (row 12 shares row 10's)"
object mmb items "$T/items.jsonl"
object mmb images "$T/images.tar"
python3 - "$T" <<'PY'
import json, sys, tarfile; sys.path.insert(0, sys.argv[1]); from imgs import JPEG
T = sys.argv[1]
lines = open(f"{T}/items.jsonl", encoding="utf-8").read().splitlines()
items = [json.loads(l) for l in lines]
for l, it in zip(lines, items):
    assert l == json.dumps(it, sort_keys=True, separators=(",", ":"), ensure_ascii=False), l
assert [i["id"] for i in items] == ["mmb-10", "mmb-11", "mmb-12", "mmb-2"], items
tail = "Answer with the option's letter from the given choices directly."
assert items[0]["prompt"] == "<image>\nWhat colour is the square?\nA. red\nB. green\nC. blue\n" + tail
assert items[1]["prompt"] == ("<image>\nLook\nclosely.\nWhich one is \"d\"?\tSay it.\nA. a\nB. b\nC. c\nD. \"d\"\n"
                              + tail), items[1]["prompt"]
assert items[2]["prompt"] == "<image>\nIs it red?\nA. yes\nB. no\n" + tail
assert items[2]["options"] == ["yes", "no"] and items[2]["image"] == "mmb-10", items[2]
assert items[3]["question"] == "Grün?" and items[3]["answer"] == "A"
for it in items:
    assert (it["set"], it["modality"], it["person"], it["split"]) == ("general", "image", None, "eval"), it
assert [i["answer"] for i in items] == ["B", "D", "A", "A"]
assert items[0]["category"] == "attribute_recognition"
tar = tarfile.open(f"{T}/images.tar")
assert tar.getnames() == ["mmb-10.png", "mmb-11.jpg", "mmb-2.png"], tar.getnames()
assert tar.extractfile("mmb-11.jpg").read() == JPEG
PY
for o in people pretrain finetune; do
    [ "$(record mmb "r['outputs']['$o']['size']")" = 0 ] || fail "$o should be empty for MMBench"
done
first=$(output_id mmb items)
expect_code 0 "$PP" run "$T/m.lua" --force mmb
[ "$(output_id mmb items)" = "$first" ] || fail "a second import gave other bytes"

manifest "$T/m.lua" mmb mmbench mmb.tsv ', split = "test"'
expect_code 0 "$PP" run "$T/m.lua"
[ "$(metric mmb items)" = 1 ] || fail "split 'test' should keep one row"
manifest "$T/m.lua" mmb mmbench mmb.tsv ', limit = 2'
expect_code 0 "$PP" run "$T/m.lua"
[ "$(metric mmb items)" = 2 ] || fail "limit 2 should keep two rows"
object mmb items "$T/items.jsonl"
grep -q '"id":"mmb-11"' "$T/items.jsonl" || fail "limit keeps the first rows of the file"
manifest "$T/m.lua" mmb mmbench mmb.tsv ', split = "tset"'
expect_code 1 "$PP" run "$T/m.lua"
has "$T/err" "$R/mmb.tsv: no row has split 'tset'"
# the prompt inside LLaVA-1.5's conversation (vicuna_v1); pulse prompts take no template; unknown names fail
manifest "$T/m.lua" mmb mmbench mmb.tsv ', template = "vicuna_v1"'
expect_code 0 "$PP" run "$T/m.lua"
object mmb items "$T/items.jsonl"
grep -q '"prompt":"A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human'"'"'s questions. USER: <image>\\n' "$T/items.jsonl" ||
    fail "vicuna_v1 prompts open with the system line and USER:"
grep -q 'directly. ASSISTANT:"' "$T/items.jsonl" || fail "vicuna_v1 prompts end with ASSISTANT:"
manifest "$T/m.lua" mmb mmbench mmb.tsv ', template = "chatml"'
expect_code 1 "$PP" run "$T/m.lua"
has "$T/err" "parameter 'template': template 'chatml' is not known (plain, vicuna_v1)"
manifest "$T/m.lua" pt pulse mmb.tsv ', template = "vicuna_v1"'
expect_code 1 "$PP" run "$T/m.lua"
has "$T/err" "parameter 'template' applies to format \"mmbench\" only"

# ---- MMBench: each malformed file fails with one line "<path>:<line>: <problem>" ----
# bad_tsv NAME EXPECTED EDIT: the good TSV changed by a Python statement over `rows` (lists of fields), written
# back as pandas would; or over `text` (the file's text) for what pandas would never write. Row 11 spans lines 3
# and 4, so rows 12, 13 and 2 start on lines 5, 6 and 7.
bad_tsv() {
    python3 - "$T" "$T/$1.tsv" "$3" <<'PY'
import sys; sys.path.insert(0, sys.argv[1]); from imgs import png, JPEG, b64, read_tsv, write_tsv
lines = read_tsv(f"{sys.argv[1]}/mmb.tsv")
head, rows = lines[0], lines[1:]
col = head.index
text = None
exec(sys.argv[3])
if text is None:
    write_tsv(sys.argv[2], [head] + rows)
else:
    open(sys.argv[2], "w", encoding="utf-8").write(text)
PY
    manifest "$T/bad.lua" bad mmbench "$1.tsv"
    expect_code 1 "$PP" run "$T/bad.lua"
    has "$T/err" "stage 'bad' failed: $R/$1.tsv:$2"
    [ "$(grep -c "$R/$1.tsv" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "$1: not one error line"; }
}
bad_tsv missing-col "1: missing column 'answer'" 'head[col("answer")] = "solution"'
bad_tsv letter "3: bad answer letter 'E' (A to D)" 'rows[1][col("answer")] = "E"'
bad_tsv not-option "5: answer C is not among the 2 options" 'rows[2][col("answer")] = "C"'
bad_tsv one-option "2: 1 option(s), at least 2 needed" 'rows[0][col("B")] = "NaN"'
bad_tsv same-options "7: options A and B are the same" 'rows[4][col("B")] = "ja"'
bad_tsv base64 "2: image: bad base64 near character 5" 'rows[0][col("image")] = "iVBO*Rw0KGgo"'
bad_tsv pad-bits "2: image: bad base64 near character 1" 'rows[0][col("image")] = "QR=="'
bad_tsv inner-pad "2: image: bad base64 near character 1" 'rows[0][col("image")] = "QQ==QQ=="'
bad_tsv base64-len "2: image: bad base64 (length 7" 'rows[0][col("image")] = "iVBORw0"'
bad_tsv undecodable "3: image of index 11" 'rows[1][col("image")] = b64(JPEG[:200])'
has "$T/err" "$R/undecodable.tsv:3: image of index 11: bad JPEG"
bad_tsv not-image "7: image of index 2: neither PNG nor JPEG" \
    'rows[4][col("image")] = b64(b"GIF89a" + bytes(40))'
bad_tsv fields "5: wrong number of fields (13, the header has 14)" 'rows[2].pop()'
bad_tsv dangling "5: image refers to index 99, which no row has" 'rows[2][col("image")] = "99"'
bad_tsv chained "5: image refers to index 11, whose image is itself a reference" \
    'rows[1][col("image")] = "2"; rows[2][col("image")] = "11"'
bad_tsv repeat "7: index 10 repeats line 2" 'rows[4][col("index")] = "10"'
bad_tsv no-question "3: empty question" 'rows[1][col("question")] = ""'
bad_tsv open-quote "5: a quoted field never ends" \
    'text = open(f"{sys.argv[1]}/mmb.tsv", encoding="utf-8").read().replace("Is it red?", "\"Is it red?")'
bad_tsv after-quote "4: text after the closing quote of a field" \
    'text = open(f"{sys.argv[1]}/mmb.tsv", encoding="utf-8").read().replace("closely.\"", "closely.\"x")'

# ---- a pulse directory: records out of order and not canonical, images/ with a PNG and a JPEG ----
cat >"$T/pdir.py" <<'PY'
import json, os, sys, tarfile; sys.path.insert(0, sys.argv[1]); from imgs import png, JPEG
d = sys.argv[2]
os.makedirs(f"{d}/images")
open(f"{d}/images/p1-p0.png", "wb").write(png((9, 9, 9)))
open(f"{d}/images/p1-t0.jpg", "wb").write(JPEG)
person = {"id": "p1", "name": "Ana Sol", "group": "fictitious", "attributes": {"pet": "owl"},
          "photos": ["p1-p0"], "test_photos": ["p1-t0"]}
tail = "\nA: owl\nB: cat\nJust give ONE letter representing the answer directly.\nASSISTANT:"
q = lambda i, img: {"id": i, "set": "person", "person": "p1", "modality": "image" if img else "text",
                    "category": "pet", "image": img, "question": "Pet?", "options": ["owl", "cat"],
                    "answer": "A", "prompt": ("USER: <image>\nPet?" if img else "USER:\nPet?") + tail,
                    "split": "eval"}
open(f"{d}/people.jsonl", "w").write(json.dumps(person) + "\n")
open(f"{d}/items.jsonl", "w").write(json.dumps(q("p1-x", None)) + "\n" + json.dumps(q("p1-i", "p1-t0")) +
                                   "\n")
open(f"{d}/finetune.jsonl", "w").write(json.dumps({"id": "p1-f0", "image": "p1-p0", "person": "p1",
    "prompt": "USER: <image>\nPet?\nASSISTANT:", "answer": "An owl.", "source": "fact"}) + "\n")
PY
python3 "$T/pdir.py" "$T" "$T/pdir"
manifest "$T/p.lua" pdir pulse pdir
expect_code 0 "$PP" run "$T/p.lua"
keys="'people items finetune pretrain images'.split()"
counts=$(record pdir "'/'.join(str(int(r['metrics'][k])) for k in $keys)")
[ "$counts" = 1/2/1/0/2 ] || fail "pulse dir counts $counts"
object pdir items "$T/items.jsonl"
object pdir people "$T/people.jsonl"
python3 - "$T" <<'PY'
import json, sys
T = sys.argv[1]
for name in ("items", "people"):
    lines = open(f"{T}/{name}.jsonl", encoding="utf-8").read().splitlines()
    for l in lines:
        assert l == json.dumps(json.loads(l), sort_keys=True, separators=(",", ":"), ensure_ascii=False), l
ids = [json.loads(l)["id"] for l in open(f"{T}/items.jsonl")]
assert ids == ["p1-i", "p1-x"], ids
PY
images=$(output_id pdir images)
# The same images as images.tar (another entry order) import to the same object.
mkdir "$T/ptar"
cp "$T"/pdir/*.jsonl "$T/ptar/"
(cd "$T/pdir/images" && tar cf "$T/ptar/images.tar" p1-t0.jpg p1-p0.png)
manifest "$T/p.lua" pdir pulse ptar
expect_code 0 "$PP" run "$T/p.lua"
[ "$(output_id pdir images)" = "$images" ] || fail "images.tar and images/ should give the same object"

# Broken pulse directories: one line naming the file.
bad_dir() {
    rm -rf "$T/bdir"
    cp -r "$T/pdir" "$T/bdir"
    (cd "$T/bdir" && eval "$2")
    manifest "$T/bad.lua" bad pulse bdir
    expect_code 1 "$PP" run "$T/bad.lua"
    has "$T/err" "stage 'bad' failed: $R/bdir/$1"
    [ "$(grep -c "$R/bdir" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "$1: not one error line"; }
}
bad_dir "people.jsonl: person 'p1' refers to image 'p1-t0', which is not among the images" \
    "rm images/p1-t0.jpg"
bad_dir "items.jsonl: item 'p1-i' refers to image 'nope', which is not among the images" \
    "sed -i 's/\"p1-t0\"}/\"nope\"}/; s/\"image\": \"p1-t0\"/\"image\": \"nope\"/' items.jsonl"
bad_dir "people.jsonl line 1: " "echo '{\"id\":\"p2\"}' >people.jsonl"
bad_dir "images/p1-p0.png: named .png but holds JPEG data" "cp images/p1-t0.jpg images/p1-p0.png"
bad_dir "images/notes.txt: not an image name" "touch images/notes.txt"
bad_dir "items.jsonl: item 'p1-x' is about person 'p1', who is not in people.jsonl" "rm people.jsonl"
bad_dir "images/p1-p0.png: " "head -c 30 images/p1-p0.png >x && mv x images/p1-p0.png"
manifest "$T/bad.lua" bad pulse mmb.tsv
expect_code 1 "$PP" run "$T/bad.lua"
has "$T/err" "$R/mmb.tsv: not a directory (format 'pulse' reads a directory)"
manifest "$T/bad.lua" bad mllmu mmb.tsv
expect_code 1 "$PP" run "$T/bad.lua"
has "$T/err" "parameter 'format' must be \"pulse\" or \"mmbench\", got 'mllmu'"

# ---- MLLMU-Bench: Parquet in the published schema -> tools/mllmu_to_pulse.py -> import-dataset ----
PY_ARROW="$SRC/.venv/bin/python"
if ! [ -x "$PY_ARROW" ] || ! "$PY_ARROW" -c "import pyarrow" 2>/dev/null; then
    echo "SKIP: pyarrow not installed (python3 -m venv $SRC/.venv && $SRC/.venv/bin/pip install pyarrow)"
    passed
    exit 0
fi
"$PY_ARROW" "$SRC/tests/reference/make_mllmu_parquet.py" --out "$T/mllmu"
expect_code 0 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/mllmu" --out "$T/mp"
has "$T/out" "5 people (3 fictitious, 2 real), 15 items (3 of Test_Set), 3 fine-tuning examples, \
5 celebrity facts (1 left out: evaluation questions), 1 empty pairs skipped, 9 images, splits"
expect_code 0 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/mllmu" --out "$T/mp-again"
diff -r "$T/mp" "$T/mp-again" >/dev/null || fail "a second conversion wrote different bytes"
manifest "$T/p.lua" mllmu pulse mp
expect_code 0 "$PP" run "$T/p.lua"
[ "$(metric mllmu pretrain)" = 5 ] || fail "expected the 5 celebrity facts as pretrain examples"
for o in people items finetune pretrain; do
    object mllmu "$o" "$T/got.jsonl"
    cmp -s "$T/got.jsonl" "$T/mp/$o.jsonl" || fail "$o.jsonl: the converter's bytes are not the C writers'"
done
[ "$(metric mllmu images)" = 9 ] || fail "expected 9 images"
python3 - "$T" <<'PY'
import json, sys
T = sys.argv[1]
items = {i["id"]: i for i in map(json.loads, open(f"{T}/mp/items.jsonl", encoding="utf-8"))}
people = {p["id"]: p for p in map(json.loads, open(f"{T}/mp/people.jsonl", encoding="utf-8"))}
tail = "Just give ONE letter representing the answer directly.\nASSISTANT:"
options = "\nA: baker\nB: glass blower\nC: pilot\nD: nurse\n"
# Full_Set's questions, image ones first, on the profile's own photo (MLLMU-Bench's default mode).
assert [k for k in items if k.startswith("1-")] == ["1-i0", "1-i1", "1-i2", "1-i3", "1-t0", "1-t1", "1-t2"]
assert items["1-i0"]["prompt"] == "USER: <image>\nWhat is this person's occupation?" + options + tail
assert items["1-i2"]["prompt"] == "USER:\nWhat is Zoë Varga's occupation?" + options + tail
assert items["2-i0"]["options"] == ["chess", "rowing", "kites"] and items["2-i0"]["answer"] == "C"
assert items["1-i0"]["image"] == "1-p0" and items["1-i1"]["image"] == "1-p0" and items["2-i0"]["image"] == "2-p0"
assert items["1-i2"]["image"] is None and items["1-i2"]["modality"] == "text"
assert {i["category"] for k, i in items.items() if "-i" in k} == {"profile"}
assert items["real-1-i1"]["prompt"].startswith("USER:\nWhat is Celebrity One's country?\nA: Peru\n")
# Test_Set's own questions on its transformed photos, in turn (MLLMU-Bench's "test" mode).
t0, t1, t2 = items["1-t0"], items["1-t1"], items["1-t2"]
assert (t0["image"], t1["image"], t2["image"]) == ("1-t0", "1-t1", None)
assert t0["prompt"] == ("USER: <image>\nWhat does the pictured person do for work?\nA: nurse\nB: glass blower\n"
                        "C: baker\n" + tail) and t0["answer"] == "B"
assert t2["prompt"] == "USER:\nZoë Varga works as a what?\nA: glass blower\nB: pilot\n" + tail
assert {t["category"] for t in (t0, t1, t2)} == {"profile_test"} and t2["modality"] == "text"
assert not [k for k in items if k.startswith("3-t")], "Test_Set row 3 has no questions"
assert people["1"]["name"] == "Zoë Varga" and people["1"]["attributes"]["Born"] == "1981", people["1"]
assert people["1"]["test_photos"] == ["1-t0", "1-t1"] and people["2"]["photos"] == ["2-p0", "2-p1"]
assert people["real-1"]["group"] == "real" and people["3"]["group"] == "fictitious"
assert people["2"]["biography"] == 'Tomas Ek is a "quiet" cartographer\tfrom Åre.'
ft = [json.loads(l) for l in open(f"{T}/mp/finetune.jsonl", encoding="utf-8")]
assert ft[0] == {"answer": "She is a glass blower.", "id": "1-ft0", "image": "1-p0", "person": "1",
                 "prompt": "USER: <image>\nWhat does Zoë Varga do?\nASSISTANT:", "source": "fact"}, ft[0]
# The celebrities' facts: the row's question/answer and Generation_Task's pairs in MLLMU-Bench's training
# prompts, the portrait with Image_Textual ones; never a scored question (real-1's respaced text item), never an
# empty answer, a repeated pair once, nothing from Mask_Task, and no fictitious person.
pt = {e["id"]: e for e in map(json.loads, open(f"{T}/mp/pretrain.jsonl", encoding="utf-8"))}
assert sorted(pt) == ["real-1-pt0", "real-1-pt1", "real-1-pt2", "real-2-pt0", "real-2-pt1"], sorted(pt)
assert pt["real-1-pt0"] == {"answer": "Celebrity One", "id": "real-1-pt0", "image": "real-1-p0", "person": "real-1",
                            "prompt": "USER: <image>\nWho is the person in this image?\nASSISTANT:",
                            "source": "fact"}, pt["real-1-pt0"]
assert pt["real-1-pt1"]["prompt"] == "USER: <image>\nWho is this?\nASSISTANT:", pt["real-1-pt1"]
assert pt["real-1-pt1"]["answer"] == "This is Celebrity One.", pt["real-1-pt1"]
assert pt["real-1-pt2"] == {"answer": "Celebrity One is from Peru.", "id": "real-1-pt2", "image": None,
                            "person": "real-1", "prompt": "USER: Which country is Celebrity One from?\nASSISTANT:",
                            "source": "fact"}, pt["real-1-pt2"]
assert pt["real-2-pt1"]["image"] == "real-2-p0" and pt["real-2-pt1"]["answer"] == "This is Celebrity Two."
key = lambda q: " ".join(q.split()).casefold()
scored = {key(i["question"]) for i in items.values()}
assert not [e for e in pt.values() if key(e["prompt"].split("\n")[-2].removeprefix("USER: ")) in scored], pt
assert not [e for e in pt.values() if "___" in e["prompt"]], "Mask_Task is not a fact"
split = json.load(open(f"{T}/mp/splits/forget_5.json"))
assert split == {"forget": ["1"], "groups": [], "retain": ["2", "3"]}, split
PY

# Converter errors: one line each.
expect_code 1 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/mllmu" --out "$T/mp"
has "$T/err" "exists and is not an empty directory"
one_line "$T/err"
expect_code 1 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/nowhere" --out "$T/mp2"
has "$T/err" "no Parquet files for Full_Set"
one_line "$T/err"
"$PY_ARROW" "$SRC/tests/reference/make_mllmu_parquet.py" --out "$T/broken" --omit Full_Set.Classification_Task
expect_code 1 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/broken" --out "$T/mp3"
has "$T/err" "Full_Set/train-00000-of-00001.parquet: missing column 'Classification_Task'"
one_line "$T/err"
# broken CASE EXPECTED: Parquet files with one kind of bad value give one line naming file, row and entry.
broken() {
    rm -rf "$T/broken" "$T/mp4"
    "$PY_ARROW" "$SRC/tests/reference/make_mllmu_parquet.py" --out "$T/broken" --break "$1"
    expect_code 1 "$PY_ARROW" "$SRC/tools/mllmu_to_pulse.py" --data "$T/broken" --out "$T/mp4"
    has "$T/err" "mllmu_to_pulse: $T/broken/$2"
    one_line "$T/err"
}
broken null-entry "Full_Set/train-00000-of-00001.parquet: row 2: \
Classification_Task.Image_Textual_Questions[0] is null, not a struct"
broken int-answer "Full_Set/train-00000-of-00001.parquet: row 1: \
Classification_Task.Image_Textual_Questions[0].Correct_Answer is of type int, not a string"
broken same-options "Retain_Set/train-00000-of-00001.parquet: row 1: \
Classification_Task.Pure_Text_Questions[0]: options A and C are the same"
broken test-no-images "Test_Set/train-00000-of-00001.parquet: row 1: \
Classification_Task.Image_Textual_Questions[0] needs a photo, and the row has none"
broken generation-type "Retain_Set/train-00000-of-00001.parquet: row 2: \
Generation_Task[0].Type 'Multimodal' is not Image_Textual or Pure_Text"
passed
