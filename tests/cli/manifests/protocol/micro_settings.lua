-- The PULSE protocol's settings shrunk until the whole graph runs in seconds (tests/cli/protocol.sh): a world
-- of 22 people, a model of one layer each side, one epoch of everything. The numbers mean nothing; the test
-- checks the graph, the caching and the determinism, not what the model learns.
return {
  seed = 1,
  methods = { "ga", "ga_klr", "npo" },
  world = { real = 12, fictitious = 10, general_eval = 20, general_train = 40, image_size = 16, real_photos = 3,
    fictitious_photos = 2, test_photos = 1 },
  tower = { epochs = 1 },
  pretrain = { epochs = 1, batch = 16, lr = 0.003, schedule = "cosine", warmup = 0.0, hidden = 32,
    intermediate = 64, layers = 1, heads = 2, vision_hidden = 16, vision_intermediate = 32, vision_layers = 1,
    vision_heads = 2, image_size = 16, patch = 8 },
  finetune = { epochs = 1, batch = 16, lr = 0.001, schedule = "linear", warmup = 0.0, lora_r = 4 },
  select = {
    pretrained = { top = 8, forget = 4, rounds = 1 },
    finetuned = { top = 0, forget = 4, retain = 4, rounds = 2 },
  },
  unlearn = { epochs = 1, batch = 8, lr = 0.0003, beta = 0.4, kl_weight = 1.0, lora_r = 4 },
  evaluate = {},
  title = "PULSE micro",
}
