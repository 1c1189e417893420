-- pulse-seeds.lua: pulse.lua's protocol over fine-tuning and unlearning seeds 1, 2 and 3, in one report whose
-- cells are the mean over the seeds ± their standard deviation (docs/protocol.md, "Seeds"). The world and the
-- base model are made once; seed 1 reuses a plain pulse.lua run's training.
local s = require "settings"
local protocol = require "protocol"

s.seeds = { 1, 2, 3 }
s.title = s.title .. ", seeds 1-3"
protocol(s)
