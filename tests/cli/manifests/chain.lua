-- A small graph for the command-line tests: two sources, a fan-in, a chain, and a failing check with a
-- dependant, next to an independent stage. BYTES and the check's expectation are fixed here; tests copy this
-- file and edit it to change parameters.
local a = stage "a" { kind = "random", seed = 1, bytes = 1000 }
local b = stage "b" { kind = "random", seed = 2, bytes = 2000 }
local ab = stage "ab" { kind = "concat", parts = { a.out.data, b.out.data }, separator = "|" }
local c = stage "round/1" { kind = "concat", parts = { ab.out.data } }
for k = 2, 3 do
  c = stage("round/" .. k) { kind = "concat", parts = { c.out.data, a.out.data } }
end
