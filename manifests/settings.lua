-- Shared settings: pulse.lua, quick.lua and llava.lua (the real-model manifests) require this module, so a
-- value changes in one place.
-- Every choice the paper leaves open is here, with docs/protocol.md saying why.
local M = {}

M.seed = 1
M.methods = { "ga", "ga_klr", "npo" }

-- The full PULSE-Synth world: MLLMU-Bench's 153 celebrities, and 100 fictitious profiles where MLLMU-Bench has
-- 500: the 50 the protocol forgets and the 50 it retains. With all 500, the tiny model's fine-tuning learned
-- 78-82 % of the evaluated people's text questions and 38-40 % of their portrait ones (docs/results.md, E25);
-- with only the 100 it evaluates, 99-100 % and 64 % (E31), in a fifth of the fine-tuning time (E30 tried the
-- recipe's alternatives on a smaller world). The other 400 were never asked about.
-- 24 training portraits a real person (each with its caption) lift the base model's top 45 from 71-73 % to
-- 97-99 % on their portrait questions (E21); the fictitious people keep 6, since 24 cost the vanilla model a
-- fifth of its text accuracy (E21, E23). 4,000 strangers, unnamed faces, teach the vision tower what faces
-- look like, not only the 153 it sees named (docs/synth.md, "Strangers").
-- 32,000 general-suite training scenes, the tower learning from the first 16,000: with 8,000 (a sixth of the
-- corpus) the decoder answered the colour of one object among several at 54 % and the odd one out at chance;
-- with 16,000 the general suite rose from 69 to 79-82 % (E48, E55), and more passes over them gave no more
-- (E56, E59: 78.75 with 8 or 10 epochs); new scenes did (E60, E61: 82.75-84.25). The tower keeps its 16,000
-- (E61: the weights it had with 16,000 scenes), so its faces lose no epochs to the scenes it does not need.
-- The strangers' photos teach the tower faces through its labels; pretraining no longer describes them (10 %
-- of its tokens: E56's base knew as much without them).
-- Each fictitious person's corpus three times in fine-tuning (as fame repeats a real person's): once, the
-- vanilla model recognised their held-out portraits but missed one attribute in four, each shown on 2 of the
-- 6 photos; twice, on 4 of them, 77 -> 90 % of the portrait questions in the same steps (E56, E57), but one
-- fine-tuning seed in three ended under 90 % (E82-E86); three times with 12 epochs instead of 18 (the same
-- steps), 90.8-92.0 % in every seed and as much of the general suite (E91).
M.world = { real = 153, fictitious = 100, general_eval = 400, general_train = 32000, labelled_scenes = 16000,
  image_size = 64, real_photos = 24, fictitious_photos = 6, strangers = 4000, described_strangers = 0,
  fictitious_repetitions = 3 }

-- The vision tower, trained alone on what the world's pictures show (each training scene's objects, each
-- stranger's and real person's face) before pretraining, which keeps it frozen: LLaVA's own tower comes
-- pretrained (CLIP). Trained only through the decoder's answers, the tower never learned shapes (the general
-- suite stayed at 51 % on a world of scenes alone); trained so, that world reaches 77-83 % (docs/results.md,
-- E37-E43). A constant lr with weight decay 0.01 gave 83, a cosine schedule without decay 77 (E43). On the
-- full world scenes share the tower with 7,672 faces: 30 epochs of 8,000 scenes left the shapes at 71 %
-- (E45). Batch 32 at lr 2e-3 learns as much an epoch as 16 at 1e-3, 13 % faster (E51), and 64 at 3e-3 a
-- little faster again (E54); 45 epochs of the 16,000 scenes.
M.tower = { epochs = 45, batch = 64, lr = 0.003, schedule = "constant", warmup = 0.0, weight_decay = 0.01,
  beta2 = 0.95 }

-- The tiny LLaVA trained from scratch (vision 64x64 in 16x16 patches, 2 layers; decoder 4 layers of 128).
-- AdamW beta2 0.95 and lr 1e-3: with transformers' 0.999, or lr 3e-3, a model this small never learns to
-- answer multiple choice in the steps we can afford (docs/results.md). 64-pixel images in 16-pixel patches
-- give the same 16 image tokens as 32 in 8, at almost no cost: the general suite alone gains 8 points (E12),
-- the full world 4 of general and 7 of fictitious text, for 5 of real portraits (E13 against E14).
-- 5 epochs of the 32,000 scenes and the people (E61): 6 gave one point more of the general suite and 3-4
-- fewer of the fictitious portraits after fine-tuning (E62); the top 45 stay at 100 % either way.
M.pretrain = { epochs = 5, batch = 16, lr = 0.001, schedule = "cosine", warmup = 0.01, beta2 = 0.95,
  image_size = 64, patch = 16 }

-- LoRA fine-tuning on the fictitious people (MLLMU-Bench's recipe; a tiny model needs a larger lr and more
-- passes: a real person is read 10 to 40 times in pretraining, a fictitious one 5 times in MLLMU-Bench's 5
-- epochs; docs/results.md, E11). The adapter on the MLP projections only and with weight decay (both ours:
-- MLLMU-Bench adapts all seven projections, without decay): on every projection, 13 epochs at lr 4e-3 learned
-- 92.8 / 91.6 % of the portrait questions but left 32 % of the general suite (E63); on the MLP alone, 16
-- epochs 90.8 / 92.4 and 56.8 (E70); with decay 0.1, 18 epochs at 5e-3 of the corpus twice, 90.8 / 90.4 and
-- 73.8 (E76; E65-E77 in docs/results.md); of the corpus three times (M.world), 12 epochs are as many steps
-- (E91: 91.6 / 92.0 and 72.3 over three seeds).
M.finetune = { epochs = 12, batch = 16, lr = 0.005, schedule = "linear", warmup = 0.0, weight_decay = 0.1,
  lora_targets = { "gate_proj", "up_proj", "down_proj" } }

-- Who is forgotten (PULSE: top 45 real people, 20 forgotten; 50 fictitious people in 5 rounds of 10). The
-- embedded world scores multiple choice by likelihood: its small model knows the facts but not the letter
-- format (docs/results.md, "What the model knows"); real models keep MLLMU-Bench's letter (M.llava).
M.select = {
  pretrained = { top = 45, forget = 20, rounds = 1, scoring = "likelihood" },
  finetuned = { top = 0, forget = 50, retain = 50, rounds = 5, scoring = "likelihood" },
}

-- Unlearning (MLLMU-Bench's recipe: fresh LoRA r 16, batch 4, a few epochs; lr scaled for the tiny model).
M.unlearn = { epochs = 2, batch = 4, lr = 0.0003, beta = 0.4, kl_weight = 1.0 }

M.evaluate = { scoring = "likelihood" }
M.title = "PULSE on PULSE-Synth"

-- The quick variant: the same graph on a small world and short schedules (minutes on a laptop). Its numbers
-- show the pipeline working; a model this briefly trained knows little, so they are not the protocol's findings.
M.quick = {
  world = { real = 24, fictitious = 20, general_eval = 60, general_train = 200 },
  pretrain = { epochs = 1, batch = 32, lr = 0.001, schedule = "cosine", warmup = 0.01, beta2 = 0.95 },
  finetune = { epochs = 1, batch = 16, lr = 0.001, schedule = "linear", warmup = 0.0 },
  select = {
    pretrained = { top = 20, forget = 10, rounds = 1, scoring = "likelihood" },
    finetuned = { top = 0, forget = 10, retain = 10, rounds = 5, scoring = "likelihood" },
  },
  unlearn = { epochs = 1, batch = 16, lr = 0.0003, beta = 0.4, kl_weight = 1.0 },
  title = "PULSE on PULSE-Synth (quick)",
}

-- Real LLaVA-1.5 checkpoints (llava.lua, for llava-1.5-7b.lua and llava-1.5-13b.lua): the world is MLLMU-Bench
-- plus MMBench dev and the base model is the checkpoint itself, so there is no `world` or `pretrain` entry.
-- Sources: PULSE (arXiv 2507.01271), MLLMU-Bench (arXiv 2410.22108, github.com/franciscoliu/MLLMU-Bench, its
-- code and its maintainer's answers in the issues), LLaVA-1.5 (github.com/haotian-liu/LLaVA); docs/protocol.md
-- and docs/real-models.md say more. What none of them publishes is marked "ours".
M.llava = {
  seed = 1,
  -- PULSE: GA, GA+KLR and NPO.
  methods = { "ga", "ga_klr", "npo" },
  -- MLLMU-Bench's fine-tuning recipe (the vanilla model that knows the 500 fictitious profiles): LoRA r 16,
  -- alpha 16, dropout 0.05 on the decoder's q/k/v/o/gate/up/down (the kinds' default targets), projector and
  -- tower frozen, AdamW lr 2e-5, batch 4, 5 epochs, linear decay, no warm-up. PULSE: LoRA for both steps.
  -- precision "bf16-act" (as LLaVA's and MLLMU-Bench's --bf16 training): frozen weights and activations in
  -- bf16, products accumulated in fp32, LoRA weights, gradients and AdamW in fp32 (docs/engine.md). Every model
  -- stage takes it. On the embedded world it moved the protocol's numbers as much as a change of seed does,
  -- and every finding held (docs/results.md, E95); on an H200 the bf16 products ran a 13B LoRA step 4x faster
  -- than fp32 (docs/performance.md; the 13B protocol in about 6 h instead of a day: docs/real-models.md).
  -- "fp32" is the reference the parity tests hold the GPU to.
  -- recompute (ours; not part of the cache key, the same bits) stays off: in bf16-act the 13B LoRA step fits an
  -- 80 GB card without it (memory plan at r 128, batch 4 x 704: 64.2 GiB; GA+KLR / NPO 65.2;
  -- docs/real-models.md); recompute = true halves that for longer examples or a smaller card, at about one
  -- more forward per step.
  finetune = { epochs = 5, batch = 4, lr = 2e-5, schedule = "linear", warmup = 0.0, lora_r = 16, lora_alpha = 16,
    lora_dropout = 0.05, precision = "bf16-act" },
  select = {
    -- PULSE: the 45 of MLLMU-Bench's 153 celebrities the base model answers best; 20 forgotten, 25 retained.
    pretrained = { top = 45, forget = 20, rounds = 1, precision = "bf16-act" },
    -- PULSE: 50 fictitious people forgotten (MLLMU-Bench's forget_10) in 5 sequential rounds of 10. Retain 50
    -- (ours, as pulse.lua: every evaluation scores them; 0 would score all 450 others).
    finetuned = { top = 0, forget = 50, retain = 50, rounds = 5, precision = "bf16-act" },
  },
  -- MLLMU-Bench's unlearning recipe: a fresh LoRA adapter with the fine-tuning settings, lr 2e-5, batch 4; NPO
  -- beta 0.4 (their code). KL weight 1.0 (ours). Schedule: the unlearn kind's default (constant). Precision and
  -- recompute as for fine-tuning: every method fits an 80 GB card (GA+KLR / NPO use the trained model as their
  -- reference, reference = "round_start").
  unlearn = { epochs = 2, batch = 4, lr = 2e-5, beta = 0.4, kl_weight = 1.0, lora_r = 16, lora_alpha = 16,
    lora_dropout = 0.05, precision = "bf16-act" },
  -- Epochs per method, from MLLMU-Bench's maintainer: GA 1-2 (it collapses with more; we take 2, as
  -- settings.unlearn), NPO 2, GA+KLR 3.
  unlearn_by_method = { ga = { epochs = 2 }, ga_klr = { epochs = 3 }, npo = { epochs = 2 } },
  evaluate = { precision = "bf16-act" },
  title = "PULSE on LLaVA-1.5",
}

return M
