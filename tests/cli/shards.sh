#!/usr/bin/env bash
# shards: a sweep split across machines that share nothing (docs/cluster.md): each store runs one seed's
# stages (`run --only 'seed<k>/*'`, the shared ones coming along as what they need) and exports them
# (`export --only`); a third store imports both bundles and its run computes the report alone, with the same
# object ids as the whole sweep run in one store. A pattern that matches nothing is one line and exit 2; an
# export of stages that are not done says which.
source "$(dirname "$0")/lib.bash"
M="$T/sweep.lua"
cp "$SRC/manifests/protocol.lua" "$SRC"/tests/cli/manifests/protocol/*.lua "$T/"
cat >"$M" <<'LUA'
local s = require "micro_settings"
s.seeds = { 1, 2 }
require "protocol" (s)
LUA
# Two machines, one seed each; the first also takes the stage every seed shares but none needs (the base
# model's evaluation before unlearning, the only unprefixed evaluate). Each shard brings world, tower, base and
# select/pretrained along as what its stages need.
PER=29 # each seed's stages
shard() { # shard K STAGES --only ...: store node<K> runs and exports its stages
  local k=$1 n=$2
  shift 2
  export PULSE_STORE="$T/node$k"
  expect_code 0 "$PP" run "$M" "$@" --threads 2
  has "$T/out" "$n stages: $n computed, 0 cached"
  lacks "$T/out" "seed$((3 - k))/"
  lacks "$T/out" "report"
  expect_code 0 "$PP" export "$M" "$@" -o "$T/seed$k.bundle"
  has "$T/out" "exported $n stages to $T/seed$k.bundle"
}
shard 1 $((4 + PER + 1)) --only 'seed1/*' --only 'evaluate/*'
shard 2 $((4 + PER)) --only 'seed2/*'

# The collector: both bundles in, then the run computes the report and nothing else.
export PULSE_STORE="$T/all"
for k in 1 2; do expect_code 0 "$PP" import "$T/seed$k.bundle"; done
expect_code 0 "$PP" run "$M"
N=$((5 + 2 * PER + 1))
has "$T/out" "$N stages: 1 computed, $((N - 1)) cached, 0 failed, 0 skipped"
ids_of "$M" >"$T/all.ids"
expect_code 0 "$PP" verify

# The same sweep in one store: the same objects.
export PULSE_STORE="$T/one"
expect_code 0 "$PP" run "$M" --threads 2 --jobs 2
ids_of "$M" >"$T/one.ids"
diff "$T/one.ids" "$T/all.ids" >&2 || fail "the sharded sweep's outputs differ from the one-store sweep's"

# Mistakes: a pattern naming nothing; exporting what a store has not run.
expect_code 2 "$PP" run "$M" --only "seed3/*"
one_line "$T/err"
has "$T/err" "no stage matches 'seed3/*'"
expect_code 2 "$PP" export "$M" --only "nope" -o "$T/x.bundle"
has "$T/err" "no stage named 'nope'"
export PULSE_STORE="$T/node1"
expect_code 1 "$PP" export "$M" --only "seed2/vanilla" -o "$T/x.bundle"
one_line "$T/err"
has "$T/err" "export: stage 'seed2/vanilla' is not done (run the manifest first)"
[ ! -e "$T/x.bundle" ] || fail "a failed export left a bundle"
passed
