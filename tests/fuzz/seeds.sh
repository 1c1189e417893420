#!/usr/bin/env bash
# seeds: writes the starting corpus of every harness into tests/fuzz/corpus/<name>/seed-* from the test
# fixtures (tests/data) and a one-stage world run by the built binary. Run from the repository root after a
# build; run.sh's finds go in beside these as crash-<...> files when they reproduce a fixed bug.
#   usage: tests/fuzz/seeds.sh [BUILD_DIR]      (default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
PP="${1:-build}/pulse-pipe"
C=tests/fuzz/corpus
D=tests/data
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
rm -f $C/*/seed-*
mkdir -p $C/{json,safetensors,gguf,config,tokenizer,dataset,tar,image,mmbench,peft,bundle,manifest}

# Concatenates a selector byte (octal) and files into one input.
sel() { local out=$1 byte=$2; shift 2; { printf "\\$byte"; cat "$@"; } >"$out"; }

"$PP" --store "$W/s" run manifests/quick.lua --only world >/dev/null
for o in people items finetune tokenizer images; do "$PP" --store "$W/s" cat world $o >"$W/$o"; done

printf '{"a":[1,-2.5e-3,true,null,"\\u00e9\\n"],"b":{}}' >$C/json/seed-small
cp $D/llava_config_tiny.json $C/json/seed-config
cp $D/safetensors_py.safetensors $C/safetensors/seed-py
cp $D/preprocess/norm.safetensors $C/safetensors/seed-norm
cp $D/gguf/expected_f16.gguf $C/gguf/seed-f16
cp $D/llava_config_tiny.json $C/config/seed-tiny
cp $D/llava_config_7b.json $C/config/seed-7b
sel $C/tokenizer/seed-wordlevel 000 $D/tokenizer_wordlevel.json
sel $C/tokenizer/seed-world 000 "$W/tokenizer"
printf '\001Who is this person? \xc3\xa9 <s> 12 \xe2\x80\x94' >$C/tokenizer/seed-text
head -n 2 "$W/people" >"$W/p2" && sel $C/dataset/seed-people 000 "$W/p2"
head -n 2 "$W/items" >"$W/i2" && sel $C/dataset/seed-items 001 "$W/i2"
head -n 2 "$W/finetune" >"$W/e2" && sel $C/dataset/seed-examples 002 "$W/e2"
cp $D/preprocess/sq19.png $C/image/seed-png
cp $D/preprocess/jgrey_30x44.jpg $C/image/seed-jpg-grey
cp $D/preprocess/j420_57x41.jpg $C/image/seed-jpg-420
python3 - "$W/images" $C/tar/seed-images <<'PY'
import io, sys, tarfile
src = tarfile.open(sys.argv[1])
with tarfile.open(sys.argv[2], "w", format=tarfile.USTAR_FORMAT) as out:
    for m in sorted(src.getmembers(), key=lambda m: m.name)[:2]:
        out.addfile(m, src.extractfile(m))
PY
png=$(base64 -w0 $D/preprocess/want_sq19_resize1x1.png)
printf 'index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsplit\n0\t"Which is ""round""?"\tPick.\tball\tbox\t\t\tA\tshape\t%s\tdev\n1\tSame?\t\tyes\tno\t\t\tB\tshape\t0\tdev\n' \
  "$png" >"$W/tsv"
sel $C/mmbench/seed-plain 000 "$W/tsv"
python3 - $D/peft_adapter $C/peft/seed-adapter <<'PY'
import sys
c = open(sys.argv[1] + "/adapter_config.json", "rb").read()
t = open(sys.argv[1] + "/adapter_model.safetensors", "rb").read()
open(sys.argv[2], "wb").write(len(c).to_bytes(2, "big") + c + t)
PY
cat >"$W/two.lua" <<'LUA'
local a = stage "a" { kind = "random", seed = 1, bytes = 64 }
stage "b" { kind = "concat", parts = { a.out.data, a.out.data } }
LUA
"$PP" --store "$W/b" run "$W/two.lua" >/dev/null
"$PP" --store "$W/b" export "$W/two.lua" -o "$W/two.bundle" >/dev/null
zstd -dq "$W/two.bundle" -o $C/bundle/seed-two
cp manifests/quick.lua $C/manifest/seed-quick
cp tests/cli/manifests/chain.lua $C/manifest/seed-chain
cat >$C/manifest/seed-edges <<'LUA'
local s = require "settings"
local a = stage "a" { kind = "random", seed = 1, bytes = 8 }
local r = ref("a", "data")
for k = 1, 3 do a = stage("c/" .. k) { kind = "concat", parts = { a.out.data, r }, separator = tostring(k) } end
stage "t" { kind = "concat", parts = {} }
LUA
du -sh $C
