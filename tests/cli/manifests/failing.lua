-- A stage that fails (a check against the wrong digest), one that depends on it, and an independent one.
local a = stage "a" { kind = "random", seed = 1, bytes = 1000 }
local bad = stage "bad" { kind = "check", data = a.out.data, sha256 = string.rep("0", 64) }
stage "after-bad" { kind = "concat", parts = { bad.out.report } }
stage "independent" { kind = "random", seed = 3, bytes = 10 }
