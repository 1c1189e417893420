-- Shared settings: pulse.lua and quick.lua require this module, so a value changes in one place.
-- Every choice the paper leaves open is here, with docs/protocol.md saying why.
local M = {}

M.seed = 1
M.methods = { "ga", "ga_klr", "npo" }

-- The full PULSE-Synth world: MLLMU-Bench's sizes (153 celebrities, 500 fictitious profiles).
M.world = { real = 153, fictitious = 500, general_eval = 400, general_train = 8000 }

-- The tiny LLaVA trained from scratch (vision 32x32 in 8x8 patches, 2 layers; decoder 4 layers of 128).
-- AdamW beta2 0.95 and lr 1e-3: with transformers' 0.999, or lr 3e-3, a model this small never learns to
-- answer multiple choice in the steps we can afford (docs/results.md).
M.pretrain = { epochs = 10, batch = 16, lr = 0.001, schedule = "cosine", warmup = 0.01, beta2 = 0.95 }

-- LoRA fine-tuning on the fictitious people (MLLMU-Bench's recipe; a tiny model needs a larger lr).
M.finetune = { epochs = 5, batch = 16, lr = 0.001, schedule = "linear", warmup = 0.0 }

-- Who is forgotten (PULSE: top 45 real people, 20 forgotten; 50 fictitious people in 5 rounds of 10).
M.select = {
  pretrained = { top = 45, forget = 20, rounds = 1 },
  finetuned = { top = 0, forget = 50, retain = 50, rounds = 5 },
}

-- Unlearning (MLLMU-Bench's recipe: fresh LoRA r 16, batch 4, a few epochs; lr scaled for the tiny model).
M.unlearn = { epochs = 2, batch = 4, lr = 0.0003, beta = 0.4, kl_weight = 1.0 }

M.evaluate = {}
M.title = "PULSE on PULSE-Synth"

-- The quick variant: the same graph on a small world and short schedules (minutes on a laptop). Its numbers
-- show the pipeline working; a model this briefly trained knows little, so they are not the protocol's findings.
M.quick = {
  world = { real = 24, fictitious = 20, general_eval = 60, general_train = 200 },
  pretrain = { epochs = 1, batch = 32, lr = 0.001, schedule = "cosine", warmup = 0.01, beta2 = 0.95 },
  finetune = { epochs = 1, batch = 16, lr = 0.001, schedule = "linear", warmup = 0.0 },
  select = {
    pretrained = { top = 20, forget = 10, rounds = 1 },
    finetuned = { top = 0, forget = 10, retain = 10, rounds = 5 },
  },
  unlearn = { epochs = 1, batch = 16, lr = 0.0003, beta = 0.4, kl_weight = 1.0 },
  title = "PULSE on PULSE-Synth (quick)",
}

return M
