-- pulse.lua: the whole PULSE protocol on the full PULSE-Synth world (MLLMU-Bench's sizes).
--
-- The protocol's training and unlearning stages (pretrain, finetune, select, unlearn, evaluate, report) are
-- being built (issues 4-5); today this builds the world they run on.
local s = require "settings"
local w = s.world

stage "world" {
  kind = "synth", seed = s.seed,
  real = w.real, fictitious = w.fictitious, general_eval = w.general_eval, general_train = w.general_train,
}
