#!/usr/bin/env bash
# PARAM_PATH: a file on disk is keyed by its content. Editing it reruns exactly the stages that read it (status
# says which file changed); a missing file is a manifest error with its line; audit refuses a changed file.
source "$(dirname "$0")/lib.bash"
mkdir -p "$T/m/data"
printf 'hello\n' >"$T/m/data/in.txt"
cat >"$T/m/m.lua" <<'LUA'
local f = stage "in" { kind = "file", path = "data/in.txt" }
stage "twice" { kind = "concat", parts = { f.out.data, f.out.data } }
stage "other" { kind = "random", bytes = 10 }
LUA
expect_code 0 "$PP" run "$T/m/m.lua"
has "$T/out" "3 stages: 3 computed"
[ "$(output_id twice data)" = "$(printf 'hello\nhello\n' | sha256sum | sed 's/ .*//; s/^/sha256:/')" ] || fail "twice"
expect_code 0 "$PP" show in --json
has "$T/out" "$T/m/data/in.txt"

# Running from another directory finds the same file (paths start at the manifest's directory).
(cd / && "$PP" run "$T/m/m.lua") >"$T/out"
has "$T/out" "0 computed, 3 cached"

expect_code 0 "$PP" audit in
has "$T/out" "same      data"

printf 'hullo\n' >"$T/m/data/in.txt"
expect_code 0 "$PP" status "$T/m/m.lua"
has "$T/out" "path path: $T/m/data/in.txt changed"
expect_code 1 "$PP" audit in
has "$T/err" "changed since the stage ran"
expect_code 0 "$PP" run "$T/m/m.lua"
has "$T/out" "3 stages: 2 computed, 1 cached"

# The file kind refuses a directory, with one clear line.
sed -i 's|path = "data/in.txt"|path = "data"|' "$T/m/m.lua"
expect_code 1 "$PP" run "$T/m/m.lua"
has "$T/err" "data"

rm "$T/m/data/in.txt"
printf 'local f = stage "in" { kind = "file", path = "data/in.txt" }\n' >"$T/m/m.lua"
expect_code 2 "$PP" run "$T/m/m.lua"
one_line "$T/err"
has "$T/err" "$T/m/m.lua:1: stage 'in': parameter 'path'"
has "$T/err" "No such file or directory"
passed
