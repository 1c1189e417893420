#!/usr/bin/env bash
# merge-dataset: two pulse directories and an MMBench TSV, each through import-dataset, merge into one data set
# whose objects are the inputs' records in data set order (byte for byte) and the union of their images; the
# MMBench items stay the general suite (set general, split eval, no person); a rerun computes nothing and a
# forced one gives the same bytes; another order gives another order. A record may name a person or an image of
# another data set. Refused with one line each: a person, item, example or image id two data sets share, lists
# of different lengths, fewer than two data sets, a record that does not parse, a name that resolves nowhere
# after the merge. The store verifies afterwards.
source "$(dirname "$0")/lib.bash"
export PYTHONDONTWRITEBYTECODE=1 # the fixtures are imported from the source tree

object() { # object STAGE OUTPUT FILE: the stage's output, uncompressed, into FILE
    local id
    id=$(output_id "$1" "$2")
    id=${id#sha256:}
    zstd -qdc "$PULSE_STORE/objects/sha256/${id:0:2}/${id:2}" >"$3"
}
metric() { "$PP" show "$1" --json | python3 -c "import json,sys; print(int(json.load(sys.stdin)['metrics']['$2']))"; }

# Fixtures: pulse directories a (two fictitious people) and b (one real person, with a pretraining fact), an
# MMBench TSV of two rows, and loose objects (for `file` stages) that the bad cases combine.
python3 - "$SRC" "$T" <<'PY'
import base64, csv, io, json, os, sys, tarfile
sys.path.insert(0, sys.argv[1] + "/tests/reference")
from make_mllmu_parquet import png, JPEG
T = sys.argv[2]
line = lambda r: json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
def person(pid, group, photo):
    return {"id": pid, "name": "Name " + pid, "group": group, "attributes": {}, "photos": [photo],
            "test_photos": []}
def item(iid, pid, image):
    tail = "\nA: owl\nB: cat\nJust give ONE letter representing the answer directly.\nASSISTANT:"
    return {"id": iid, "set": "person", "person": pid, "modality": "image" if image else "text",
            "category": "pet", "image": image, "question": "Pet?", "options": ["owl", "cat"], "answer": "A",
            "prompt": ("USER: <image>\nPet?" if image else "USER:\nPet?") + tail, "split": "eval"}
def example(eid, pid, image):
    return {"id": eid, "image": image, "person": pid, "prompt": "USER: <image>\nPet?\nASSISTANT:" if image else
            "USER: Pet?\nASSISTANT:", "answer": "An owl.", "source": "fact"}
def write_dir(d, people, items, pretrain, finetune, images):
    os.makedirs(f"{d}/images")
    for name, recs in (("people", people), ("items", items), ("pretrain", pretrain), ("finetune", finetune)):
        open(f"{d}/{name}.jsonl", "w").write("".join(map(line, recs)))
    for name, data in images.items():
        open(f"{d}/images/{name}", "wb").write(data)
write_dir(f"{T}/a", [person("p1", "fictitious", "p1-p0"), person("p2", "fictitious", "p2-p0")],
          [item("p1-i0", "p1", "p1-p0"), item("p1-i1", "p1", None), item("p2-i0", "p2", "p2-p0")], [],
          [example("p1-ft0", "p1", "p1-p0"), example("p2-ft0", "p2", "p2-p0")],
          {"p1-p0.png": png((200, 40, 40)), "p2-p0.jpg": JPEG})
write_dir(f"{T}/b", [person("r1", "real", "r1-p0")], [item("r1-i0", "r1", "r1-p0")],
          [example("r1-pt0", "r1", None)], [], {"r1-p0.png": png((40, 40, 200))})
b64 = lambda data: base64.b64encode(data).decode()
with open(f"{T}/mmb.tsv", "w", newline="") as f:
    w = csv.writer(f, delimiter="\t", lineterminator="\n")
    w.writerow(["index", "question", "A", "B", "answer", "category", "image"])
    w.writerow(["1", "What colour?", "red", "blue", "A", "colour", b64(png((255, 0, 0)))])
    w.writerow(["2", "Which shape?", "round", "square", "B", "shape", b64(png((0, 0, 255)))])

# Loose objects: set c has person q1 whose item reuses a's item id; d's person has a photo named as a's; e's
# fine-tuning example reuses a's id; x's item is about a's person p1 and shows a's photo (fine once merged);
# y's item names a person nobody has.
def tar(path, images):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name, data in sorted(images.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
def loose(name, people=(), items=(), pretrain=(), finetune=(), images=None):
    for part, recs in (("people", people), ("items", items), ("pretrain", pretrain), ("finetune", finetune)):
        open(f"{T}/{name}.{part}", "w").write("".join(map(line, recs)))
    tar(f"{T}/{name}.images", images or {})
loose("c", [person("q1", "real", "q1-p0")], [item("p1-i0", "q1", None)], images={"q1-p0.png": png((1, 2, 3))})
loose("d", [person("q2", "real", "p1-p0")], images={"p1-p0.png": png((4, 5, 6))})
loose("e", [person("q3", "real", "q3-p0")], finetune=[example("p1-ft0", "q3", None)],
      images={"q3-p0.png": png((7, 8, 9))})
loose("f", [person("q4", "real", "q4-p0")], pretrain=[example("r1-pt0", "q4", None)],
      images={"q4-p0.png": png((7, 8, 9))})
loose("x", items=[item("x-i0", "p1", "p1-p0")])
loose("y", items=[item("y-i0", "nobody", None)])
loose("z")
open(f"{T}/z.people", "w").write('{"id":"z1"}\n')
PY

# The good merge: a, b and MMBench, each imported.
cat >"$T/m.lua" <<'EOF'
local ORDER = { "a", "b", "mmb" }
local imports = {
  a = stage "a" { kind = "import-dataset", format = "pulse", path = "a" },
  b = stage "b" { kind = "import-dataset", format = "pulse", path = "b" },
  mmb = stage "mmb" { kind = "import-dataset", format = "mmbench", path = "mmb.tsv" },
}
local p = { kind = "merge-dataset" }
for _, o in ipairs({ "people", "items", "pretrain", "finetune", "images" }) do
  p[o] = {}
  for i, name in ipairs(ORDER) do p[o][i] = imports[name].out[o] end
end
stage "world" (p)
EOF
expect_code 0 "$PP" run "$T/m.lua"
has "$T/out" "4 stages: 4 computed"
counts=$(for m in people items pretrain finetune images; do metric world $m; done | paste -sd/)
[ "$counts" = 3/6/1/2/5 ] || fail "merged counts $counts, expected 3/6/1/2/5"
for o in people items pretrain finetune; do
    object world "$o" "$T/got.$o"
    : >"$T/want.$o"
    for s in a b mmb; do
        object "$s" "$o" "$T/part"
        cat "$T/part" >>"$T/want.$o"
    done
    cmp -s "$T/got.$o" "$T/want.$o" || fail "$o: the merged object is not the inputs' records in order"
done
object world images "$T/got.tar"
for s in a b mmb; do object "$s" images "$T/$s.tar"; done
python3 - "$T" <<'PY'
import json, sys, tarfile
T = sys.argv[1]
got = tarfile.open(f"{T}/got.tar")
names = got.getnames()
assert names == ["mmb-1.png", "mmb-2.png", "p1-p0.png", "p2-p0.jpg", "r1-p0.png"], names
for s in ("a", "b", "mmb"):
    part = tarfile.open(f"{T}/{s}.tar")
    for m in part.getmembers():
        assert got.extractfile(m.name).read() == part.extractfile(m).read(), m.name
for m in got.getmembers():
    assert (m.mtime, m.uid, m.gid, m.mode) == (0, 0, 0, 0o644), m
items = [json.loads(l) for l in open(f"{T}/got.items", encoding="utf-8")]
general = [i for i in items if i["set"] == "general"]
assert [i["id"] for i in general] == ["mmb-1", "mmb-2"], general
assert all(i["split"] == "eval" and i["person"] is None and i["image"] == i["id"] for i in general), general
assert [i["person"] for i in items if i["set"] == "person"] == ["p1", "p1", "p2", "r1"], items
PY
first=$(output_id world images)/$(output_id world items)
expect_code 0 "$PP" run "$T/m.lua"
has "$T/out" "4 stages: 0 computed, 4 cached"
expect_code 0 "$PP" run "$T/m.lua" --force world
[ "$(output_id world images)/$(output_id world items)" = "$first" ] || fail "a forced merge gave other bytes"
# Another order: the records follow it, the images.tar (sorted by name) does not change.
sed -i 's/local ORDER = .*/local ORDER = { "mmb", "b", "a" }/' "$T/m.lua"
expect_code 0 "$PP" run "$T/m.lua"
object world people "$T/people.ba"
[ "$(python3 -c "import json,sys; print(' '.join(json.loads(l)['id'] for l in open(sys.argv[1])))" "$T/people.ba")" \
    = "r1 p1 p2" ] || fail "people should follow the order of the refs"
[ "$(output_id world images)" = "${first%/*}" ] || fail "the images.tar should not depend on the order"

# merge SETS...: a manifest merging the named sets: a, b (imported) or loose objects (file stages).
merge() {
    {
        echo 'local function set(n)'
        echo '  if n == "a" or n == "b" then'
        echo '    return stage(n) { kind = "import-dataset", format = "pulse", path = n }.out'
        echo '  end'
        echo '  local o = {}'
        echo '  for _, k in ipairs({ "people", "items", "pretrain", "finetune", "images" }) do'
        echo '    o[k] = stage(n .. "." .. k) { kind = "file", path = n .. "." .. k }.out.data'
        echo '  end'
        echo '  return o'
        echo 'end'
        echo 'local p = { kind = "merge-dataset" }'
        echo 'for _, k in ipairs({ "people", "items", "pretrain", "finetune", "images" }) do p[k] = {} end'
        echo 'local seen = {}'
        for s in "$@"; do
            echo "seen.$s = seen.$s or set(\"$s\")"
            echo 'for _, k in ipairs({ "people", "items", "pretrain", "finetune", "images" }) do'
            echo "  table.insert(p[k], seen.$s[k])"
            echo 'end'
        done
        echo "${EXTRA:-}"
        echo 'stage "merged" (p)'
    } >"$T/bad.lua"
}
# bad MESSAGE SETS...: the merge fails with exactly this line.
bad() {
    local msg=$1
    shift
    merge "$@"
    expect_code 1 "$PP" run "$T/bad.lua"
    [ "$(grep -c "stage 'merged' failed" "$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "$*: not one failure line"; }
    grep "stage 'merged' failed" "$T/err" | grep -qxF "pulse-pipe: stage 'merged' failed: $msg" ||
        { cat "$T/err" >&2; fail "$*: the failure line is not '$msg'"; }
    expect_code 1 "$PP" show merged
}
unique="ids must be unique across the merged data sets"
bad "person 'p1' is in data set 0 and data set 1 (counting from 0): $unique" a a
bad "person 'r1' is in data set 1 and data set 2 (counting from 0): $unique" a b b
bad "item 'p1-i0' is in data set 0 and data set 1 (counting from 0): $unique" a c
bad "image 'p1-p0' is in data set 0 and data set 1 (counting from 0): $unique" a d
bad "finetune example 'p1-ft0' is in data set 1 and data set 2 (counting from 0): $unique" b a e
bad "pretrain example 'r1-pt0' is in data set 0 and data set 1 (counting from 0): $unique" b f
bad "merge-dataset merges two or more data sets, got 1" a
EXTRA='table.remove(p.items)' bad "'people' has 2 refs but 'items' has 1: give each of people, items, pretrain, \
finetune and images one ref per data set, in the same order" a b
bad "items: item 'y-i0' is about person 'nobody', who is not in people.jsonl" a y
bad "people 1 line 1: missing field 'name'" a z
# A record may name what another data set holds.
merge a x
expect_code 0 "$PP" run "$T/bad.lua"
[ "$(metric merged items)" = 4 ] || fail "a and x should merge to 4 items"
expect_code 0 "$PP" verify
passed
