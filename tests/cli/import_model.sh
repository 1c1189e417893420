#!/usr/bin/env bash
# import-model: a sharded Hugging Face LLaVA checkpoint (the tiny transformers fixture) and an fp16 single-file
# one become `model`/`config`/`tokenizer` objects whose tensors equal the checkpoint's, value for value and in
# the checkpoint's dtype; a rerun computes nothing and a changed file reruns the import; a missing tokenizer, a
# missing or truncated shard and a tokenizer larger than the vocabulary each fail with one line and leave the
# store valid. Python here is the standard library only (safetensors read and written by hand).
source "$(dirname "$0")/lib.bash"
TINY="$SRC/tests/data/llava_tiny"

ckpt() { # ckpt DIR: the sharded fixture plus a tokenizer that fits its 100-token vocabulary
    mkdir -p "$1"
    cp "$TINY/config.json" "$TINY/model.safetensors.index.json" "$TINY"/model-0000*.safetensors "$1/"
    cp "$SRC/tests/data/tokenizer_wordlevel.json" "$1/tokenizer.json"
}
object() { # object STAGE OUTPUT FILE
    local id
    id=$(output_id "$1" "$2")
    id=${id#sha256:}
    zstd -qdc "$PULSE_STORE/objects/sha256/${id:0:2}/${id:2}" >"$3"
}

cat >"$T/st.py" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        fmt = {"F32": "f", "F16": "e"}[v["dtype"]]
        out[k] = (v["dtype"], v["shape"], struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
    return out
def new_name(k):  # the Hub layout -> the newer transformers names the engine writes
    if k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model."):
        k = "vision_tower.vision_model." + k[len("vision_tower."):]  # transformers 5 drops that level
    for old, new in (("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                     ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector.")):
        if k.startswith(old):
            return new + k[len(old):]
    return k
def write(path, tensors):  # tensors: name -> (dtype, shape, values)
    hdr, blobs, off = {}, [], 0
    for k in sorted(tensors):
        dt, shape, vals = tensors[k]
        raw = struct.pack("<%d%s" % (len(vals), {"F32": "f", "F16": "e"}[dt]), *vals)
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
if sys.argv[1] == "compare":  # compare OUT_FILE WANT_DTYPE SHARD...: every output tensor equals its source
    got, src = read(sys.argv[2]), {}
    for p in sys.argv[4:]:
        src.update({new_name(k): v for k, v in read(p).items()})
    assert got, "no tensors"
    for k, (dt, shape, vals) in got.items():
        assert dt == sys.argv[3], (k, dt)
        assert k in src, "unexpected tensor " + k
        assert shape == src[k][1] and vals == src[k][2], "tensor %s differs" % k
    print("%d tensors equal, dtype %s" % (len(got), sys.argv[3]))
elif sys.argv[1] == "f16":  # f16 OUT SHARD...: the shards as one fp16 file, Hub names kept
    t = {}
    for p in sys.argv[3:]:
        t.update({k: ("F16", s, v) for k, (d, s, v) in read(p).items()})
    write(sys.argv[2], t)
PY

# 1. the sharded fp32 checkpoint
ckpt "$T/ckpt"
echo 'stage "base" { kind = "import-model", path = "ckpt" }' >"$T/m.lua"
expect_code 0 "$PP" run "$T/m.lua"
object base model "$T/model.st"
object base config "$T/config.json"
object base tokenizer "$T/tokenizer.json"
python3 "$T/st.py" compare "$T/model.st" F32 "$T/ckpt"/model-0000*.safetensors >"$T/cmp" || fail "weights differ"
cat "$T/cmp"
cmp -s "$T/config.json" "$T/ckpt/config.json" || fail "config.json changed on the way in"
cmp -s "$T/tokenizer.json" "$T/ckpt/tokenizer.json" || fail "tokenizer.json changed on the way in"
expect_code 0 "$PP" run "$T/m.lua"
has "$T/out" " 0 computed, "
# a changed file reruns the import
python3 - "$T/ckpt/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["text_config"]["rms_norm_eps"] = 1e-5; json.dump(c, open(sys.argv[1], "w"))
PY
expect_code 0 "$PP" run "$T/m.lua"
has "$T/out" " 1 computed, "

# 2. one fp16 file: the dtype is kept, the values are exact
mkdir -p "$T/half"
cp "$TINY/config.json" "$T/half/"
cp "$SRC/tests/data/tokenizer_wordlevel.json" "$T/half/tokenizer.json"
python3 "$T/st.py" f16 "$T/half/model.safetensors" "$TINY"/model-0000*.safetensors
echo 'stage "half" { kind = "import-model", path = "half" }' >"$T/h.lua"
expect_code 0 "$PP" run "$T/h.lua"
object half model "$T/half.st"
python3 "$T/st.py" compare "$T/half.st" F16 "$T/half/model.safetensors" || fail "fp16 weights differ"

# 3. bad checkpoints: one line each, the store stays valid
bad() { # bad DIR MESSAGE
    echo "stage \"bad\" { kind = \"import-model\", path = \"$1\" }" >"$T/b.lua"
    expect_code 1 "$PP" run "$T/b.lua"
    has "$T/err" "$2"
    grep -c 'pulse-pipe:\|error' "$T/err" >/dev/null
}
ckpt "$T/notok" && rm "$T/notok/tokenizer.json"
bad notok "tokenizer.json"
ckpt "$T/noshard" && rm "$T/noshard/model-00002-of-00002.safetensors"
bad noshard "model-00002-of-00002.safetensors"
ckpt "$T/trunc" && truncate -s 1000 "$T/trunc/model-00001-of-00002.safetensors"
bad trunc "model-00001-of-00002.safetensors"
ckpt "$T/bigtok" && cp "$SRC/tests/data/tokenizer_bpe.json" "$T/bigtok/tokenizer.json"
bad bigtok "the model's vocabulary 100"
expect_code 0 "$PP" verify
passed
