#!/usr/bin/env bash
# Manifest mistakes through the command line: exit 2, exactly one line "pulse-pipe: <file>:<line>: ...", and
# no store is touched. (tests/unit/test_lua_manifest.c covers every kind of mistake; this checks the CLI path.)
source "$(dirname "$0")/lib.bash"
check() { # LINE PHRASE MANIFEST-TEXT
  printf '%s\n' "$3" >"$T/m.lua"
  expect_code 2 "$PP" run "$T/m.lua"
  one_line "$T/err"
  has "$T/err" "pulse-pipe: $T/m.lua:$1: "
  has "$T/err" "$2"
  [ ! -e "$PULSE_STORE" ] || fail "a bad manifest created the store"
}
check 2 "unknown stage kind 'randum'" $'local x = 1\nstage "a" { kind = "randum" }'
check 1 "bytse" 'stage "a" { kind = "random", bytse = 3 }'
check 2 "already declared" $'stage "a" { kind = "random", bytes = 1 }\nstage "a" { kind = "random", bytes = 1 }'
check 1 "no output 'dat'" 'local a = stage "a" { kind = "random", bytes = 1 }; stage "b" { kind = "concat", parts = { a.out.dat } }'
check 1 "cycle" $'stage "x" { kind = "concat", parts = { ref("y", "data") } }\nstage "y" { kind = "concat", parts = { ref("x", "data") } }'
check 3 "unexpected symbol" $'\n\nstage "a" {{ kind = }'
check 1 "must be an integer" 'stage "a" { kind = "random", bytes = "many" }'
check 1 "io" 'io.open("/etc/passwd")'
passed
