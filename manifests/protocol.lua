-- protocol.lua: the PULSE protocol as a graph of stages (docs/protocol.md), built from a settings table.
-- pulse.lua and quick.lua both call it; they differ only in the world's size and the schedules. The
-- real-model manifests (llava-1.5-7b.lua, llava-1.5-13b.lua, through llava.lua) call it with `data` and
-- `base_model` set: the world and the base model then come from the user's files (docs/real-models.md).
--
--   world -> tower -> base (pretrain, the tower frozen) -> vanilla (finetune)
--   select/pretrained (top 45 of the real people: 20 forget, 25 retain)
--   select/finetuned (50 fictitious people to forget, in 5 groups of 10; the retain set)
--   unlearn/<knowledge>/<method>              single-shot, each followed by evaluate/...
--   unlearn/finetuned/<method>/round<k>       5 sequential rounds, each starting from the one before
--   unlearn/pretrained/ga/llm                 the ablation: LoRA only, projector frozen
--   report                                    every evaluate, in the paper's three views
--
-- Settings that choose the sources (absent in pulse.lua and quick.lua, whose graph they leave unchanged):
--   data = { mllmu = "dir", mmbench = "file.tsv" }   the world from import-dataset stages `data/<name>`, merged
--     by merge-dataset into `world` when there are several (in the sandbox's key order: bytewise). A key
--     `mmbench` reads format "mmbench", any other "pulse"; a table value gives import-dataset's parameters
--     itself ({ format = ..., path = ..., limit = ... }).
--   base_model = "dir"   `base` imports this Hugging Face LLaVA directory (import-model) instead of
--     pretraining; its own tokenizer is then the model's (the world has none).
--   unlearn_by_method = { ga = {...}, ... }   per-method parameters over `unlearn` (e.g. epochs).
-- Settings that widen the graph (docs/protocol.md):
--   methods = { "ga", { name = "npo_beta0.1", method = "npo", beta = 0.1 } }   each method by name, or a
--     variant: its own name for stages and rows, an unlearn method and the parameters it changes.
--   seeds = { 1, 2, 3 }   a sweep: fine-tuning, unlearning and evaluations once per seed (`member`), one report.

-- A new table holding the fields of every argument, later ones winning.
local function merge(...)
  local t = {}
  for _, part in ipairs({ ... }) do
    for k, v in pairs(part) do t[k] = v end
  end
  return t
end

-- The three refs a model is made of, plus the unlearning rounds applied on top of it.
local function model(h, rounds)
  local m = { model = h.out.model, config = h.out.config, tokenizer = h.out.tokenizer }
  if rounds and #rounds > 0 then
    m.adapters, m.adapter_configs = {}, {}
    for i, r in ipairs(rounds) do
      m.adapters[i], m.adapter_configs[i] = r.out.adapter, r.out.adapter_config
    end
    m.projector = rounds[#rounds].out.projector
  end
  return m
end

-- The world's outputs (people, items, pretrain, finetune, images, and synth's tokenizer): the embedded
-- PULSE-Synth, or the data sets of s.data imported and merged.
local function world(s)
  if not s.data then
    return stage "world" (merge({ kind = "synth", seed = s.seed }, s.world)).out
  end
  local parts, names = {}, {}
  for name in pairs(s.data) do names[#names + 1] = name end
  table.sort(names) -- pairs' order is not fixed (Lua seeds its string hashes per run); the merge's order is
  for _, name in ipairs(names) do
    local d = s.data[name]
    local params = type(d) == "table" and d or { path = d }
    parts[#parts + 1] = stage("data/" .. name) (merge({ kind = "import-dataset",
      format = name == "mmbench" and "mmbench" or "pulse" }, params))
  end
  if #parts == 0 then error("settings.data names no data set") end
  if #parts == 1 then return parts[1].out end
  local refs = { kind = "merge-dataset" }
  for _, o in ipairs({ "people", "items", "pretrain", "finetune", "images" }) do
    refs[o] = {}
    for i, p in ipairs(parts) do refs[o][i] = p.out[o] end
  end
  return stage "world" (refs).out
end

-- The embedded world's vision tower, trained alone on what its pictures show (docs/stages.md, `tower`), with
-- the architecture and image size pretraining gives it.
local function tower(s, w)
  local t = { kind = "tower", images = w.images, labels = w.labels }
  for _, k in ipairs({ "image_size", "patch", "vision_hidden", "vision_intermediate", "vision_layers",
    "vision_heads" }) do
    t[k] = s.pretrain[k]
  end
  return stage "tower" (merge(t, s.tower)).out.tower
end

-- The model the protocol starts from: imported, or pretrained on the world with its tower.
local function base_model(s, w)
  if s.base_model then
    return stage "base" { kind = "import-model", path = s.base_model }
  elseif s.data then
    error("settings.data needs settings.base_model: imported data sets bring no tokenizer to pretrain with")
  end
  return stage "base" (merge({ kind = "pretrain", examples = w.pretrain, images = w.images,
    tokenizer = w.tokenizer, tower = tower(s, w) }, s.pretrain))
end

-- The methods of settings.methods as { name, params }: a method's name ("ga"), or a variant, a table naming
-- itself and an unlearn method with the parameters it changes ({ name = "npo_beta0.1", method = "npo",
-- beta = 0.1 }). The name labels the stages and the report's rows, so it is checked here, before anything runs,
-- against what both accept.
local function methods(s)
  local out = {}
  for i, m in ipairs(s.methods) do
    local params = type(m) == "table" and merge(m) or { method = m }
    local name = type(m) == "table" and m.name or m
    params.name = nil
    if type(name) ~= "string" or type(params.method) ~= "string" then
      error("settings.methods[" .. i .. "]: a method's name, or { name = ..., method = ..., parameters }")
    end
    if #name > 64 or not name:match("^[%w_%.%-]+$") or name == "none" then
      error("settings.methods[" .. i .. "]: '" .. name .. "' is not a name for a method (1 to 64 of A-Z a-z "
        .. "0-9 _ - ., not none)")
    end
    out[i] = { name = name, params = params }
  end
  return out
end

-- Everything after the base model that a training seed changes: fine-tuning, both knowledge types'
-- unlearning and their evaluations. `seed` (a sweep's member, or nil) seeds fine-tuning and unlearning,
-- prefixes the stage names with "seed<k>/" and labels the evaluations, so that the report shows each cell as
-- the mean over the seeds and its spread. The pretrained model's selection and its evaluation before
-- unlearning do not depend on it: the caller makes them once (p.select_pretrained, the first of p.evals).
local function member(s, p, seed)
  local pre = seed and ("seed" .. seed .. "/") or ""
  local seeded = seed and { seed = seed } or {}
  local w, evals = p.world, p.evals
  local vanilla = stage(pre .. "vanilla") (merge({ kind = "finetune", examples = w.finetune, images = w.images },
    model(p.base), s.finetune, seeded))

  local knowledge = {
    finetuned = { model = vanilla, examples = w.finetune,
      select = stage(pre .. "select/finetuned") (merge({ kind = "select", group = "fictitious" },
        s.select.finetuned, model(vanilla), p.data)) },
    pretrained = { model = p.base, examples = w.pretrain, select = p.select_pretrained },
  }
  local function evaluate(name, k, labels, rounds, forget_rounds)
    local e = stage(pre .. "evaluate/" .. name) (merge({ kind = "evaluate", split = k.select.out.split,
      knowledge = labels.knowledge, rounds = forget_rounds or 0 }, labels, seeded, model(k.model, rounds), p.data,
      s.evaluate))
    evals[#evals + 1] = e.out.metrics
  end
  -- m: one of methods(s); its variant's parameters win over unlearn_by_method's for its method.
  local function unlearn(name, k, m, params, rounds)
    local by_method = s.unlearn_by_method and s.unlearn_by_method[m.params.method] or {}
    return stage(pre .. "unlearn/" .. name) (merge({ kind = "unlearn", split = k.select.out.split,
      examples = k.examples, people = w.people, images = w.images }, s.unlearn, by_method, m.params, params,
      seeded, model(k.model, rounds)))
  end

  evaluate("finetuned/before", knowledge.finetuned, { knowledge = "finetuned", method = "none", round = 0 })
  for _, kn in ipairs({ "finetuned", "pretrained" }) do
    local k = knowledge[kn]
    for _, m in ipairs(p.methods) do
      local u = unlearn(kn .. "/" .. m.name, k, m, {})
      evaluate(kn .. "/" .. m.name, k, { knowledge = kn, method = m.name, setting = "single", round = 1 }, { u })
    end
  end

  -- Sustainability: the fine-tuned forget set in sequential rounds, each from the previous round's model.
  local k = knowledge.finetuned
  for _, m in ipairs(s.select.finetuned.rounds > 1 and p.methods or {}) do
    local rounds = {}
    for r = 1, s.select.finetuned.rounds do
      local name = "finetuned/" .. m.name .. "/round" .. r
      rounds[r] = unlearn(name, k, m, { round = r }, rounds)
      evaluate(name, k, { knowledge = "finetuned", method = m.name, setting = "sequential", round = r }, rounds, r)
    end
  end

  -- Ablation: GA on pretrained knowledge with the projector frozen (the proj+llm run is the single-shot one).
  local kp = knowledge.pretrained
  local u = unlearn("pretrained/ga/llm", kp, { params = { method = "ga" } }, { target = "llm" })
  evaluate("pretrained/ga/llm", kp, { knowledge = "pretrained", method = "ga", setting = "single", round = 1,
    target = "llm" }, { u })
end

return function(s)
  local w = world(s)
  local data = { people = w.people, items = w.items, images = w.images }
  local base = base_model(s, w)
  local select_pretrained = stage "select/pretrained" (merge({ kind = "select", group = "real" },
    s.select.pretrained, model(base), data))
  local before = stage "evaluate/pretrained/before" (merge({ kind = "evaluate", split = select_pretrained.out.split,
    knowledge = "pretrained", method = "none", round = 0, rounds = 0 }, model(base), data, s.evaluate))
  local p = { world = w, data = data, base = base, select_pretrained = select_pretrained,
    methods = methods(s), evals = { before.out.metrics } }
  if s.seeds then
    if type(s.seeds) ~= "table" or #s.seeds == 0 then error("settings.seeds must be a list of seeds") end
    for _, seed in ipairs(s.seeds) do
      if math.type(seed) ~= "integer" or seed <= 0 then error("settings.seeds: each seed must be an integer > 0") end
      member(s, p, seed)
    end
  else
    member(s, p, nil)
  end
  stage "report" { kind = "report", metrics = p.evals, title = s.title }
end
