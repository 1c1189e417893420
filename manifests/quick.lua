-- quick.lua: the default manifest, minutes on a laptop.
--
-- Until the protocol's stage kinds (synth, pretrain, finetune, select, unlearn, evaluate, report) land, this
-- manifest exercises the pipeline itself with the built-in pipeline kinds: independent source stages, a fan-in,
-- and a check that pins the result. Run it twice: the second run computes nothing.
local s = require "settings"

local parts = {}
for k = 1, s.parts do
  parts[k] = stage("source/" .. k) { kind = "random", seed = s.seed * 100 + k, bytes = s.bytes }.out.data
end

local joined = stage "joined" { kind = "concat", parts = parts, separator = "\n" }

stage "pin" { kind = "check", data = joined.out.data,
              sha256 = "1af059f70885e0ca904fd3fb3ab980623004e50651e67b11edb1c545e6d66f63" }
