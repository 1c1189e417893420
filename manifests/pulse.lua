-- pulse.lua: the whole PULSE protocol on the full PULSE-Synth world (MLLMU-Bench's sizes): pretraining,
-- fine-tuning, both knowledge types, GA / GA+KLR / NPO single-shot and in 5 sequential rounds, the update
-- target ablation, and the report. `pulse-pipe cat report markdown` prints the tables.
local s = require "settings"
local protocol = require "protocol"

protocol(s)
