-- quick.lua: the default manifest, minutes on a laptop: the PULSE protocol on a small PULSE-Synth world.
--
-- The protocol's training and unlearning stages (pretrain, finetune, select, unlearn, evaluate, report) are
-- being built (issues 4-5); today this builds the world they run on. Look at it with
--   pulse-pipe cat world contact_sheet > sheet.png
local s = require "settings"
local w = s.quick_world

stage "world" {
  kind = "synth", seed = s.seed,
  real = w.real, fictitious = w.fictitious, general_eval = w.general_eval, general_train = w.general_train,
}
