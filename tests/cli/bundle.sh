#!/usr/bin/env bash
# export / import through the command line: a deterministic bundle that brings a manifest's results into an
# empty store, where they verify and count as done; hostile bundles are refused and change nothing.
source "$(dirname "$0")/lib.bash"
M="$SRC/tests/cli/manifests/chain.lua"
export PULSE_STORE="$T/a"
expect_code 2 "$PP" export "$M"
expect_code 1 "$PP" export "$M" -o "$T/x.bundle"
has "$T/err" "no such store"
expect_code 0 "$PP" run "$M" --only a
expect_code 1 "$PP" export "$M" -o "$T/x.bundle"
has "$T/err" "is not done"
[ ! -e "$T/x.bundle" ] || fail "a failed export left a file"
expect_code 0 "$PP" run "$M"
expect_code 0 "$PP" export "$M" -o "$T/one.bundle"
expect_code 0 "$PP" export "$M" -o "$T/two.bundle"
cmp -s "$T/one.bundle" "$T/two.bundle" || fail "two exports of the same results differ"
ref=$(output_id round/3 data)

export PULSE_STORE="$T/b"
expect_code 0 "$PP" import "$T/one.bundle"
has "$T/out" "round/3"
expect_code 0 "$PP" verify
expect_code 0 "$PP" run "$M"
has "$T/out" "0 computed, 6 cached"
[ "$(output_id round/3 data)" = "$ref" ] || fail "imported output differs"

# A damaged bundle: flip a byte in the middle; import must refuse it and leave the store as it was.
export PULSE_STORE="$T/c"
expect_code 1 "$PP" run "$SRC/tests/cli/manifests/failing.lua"
fingerprint() { (cd "$PULSE_STORE" && find . -type f -not -path './locks/*' | sort | xargs sha256sum | sha256sum); }
before=$(fingerprint)
cp "$T/one.bundle" "$T/bad.bundle"
size=$(stat -c %s "$T/bad.bundle")
printf '\xff' | dd of="$T/bad.bundle" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
expect_code 1 "$PP" import "$T/bad.bundle"
one_line "$T/err"
after=$(fingerprint)
[ "$before" = "$after" ] || fail "a refused import changed the store"
expect_code 1 "$PP" import "$M"
one_line "$T/err"
[ "$(fingerprint)" = "$before" ] || fail "importing a non-bundle changed the store"
passed
