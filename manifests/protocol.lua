-- protocol.lua: the PULSE protocol as a graph of stages (docs/protocol.md), built from a settings table.
-- pulse.lua and quick.lua both call it; they differ only in the world's size and the schedules.
--
--   world -> base (pretrain) -> vanilla (finetune)
--   select/pretrained (top 45 of the real people: 20 forget, 25 retain)
--   select/finetuned (50 fictitious people to forget, in 5 groups of 10; the retain set)
--   unlearn/<knowledge>/<method>              single-shot, each followed by evaluate/...
--   unlearn/finetuned/<method>/round<k>       5 sequential rounds, each starting from the one before
--   unlearn/pretrained/ga/llm                 the ablation: LoRA only, projector frozen
--   report                                    every evaluate, in the paper's three views

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

return function(s)
  local w = stage "world" (merge({ kind = "synth", seed = s.seed }, s.world))
  local data = { people = w.out.people, items = w.out.items, images = w.out.images }
  local base = stage "base" (merge({ kind = "pretrain", examples = w.out.pretrain, images = w.out.images,
    tokenizer = w.out.tokenizer }, s.pretrain))
  local vanilla = stage "vanilla" (merge({ kind = "finetune", examples = w.out.finetune, images = w.out.images },
    model(base), s.finetune))

  local knowledge = {
    finetuned = { model = vanilla, examples = w.out.finetune,
      select = stage "select/finetuned" (merge({ kind = "select", group = "fictitious" }, s.select.finetuned,
        model(vanilla), data)) },
    pretrained = { model = base, examples = w.out.pretrain,
      select = stage "select/pretrained" (merge({ kind = "select", group = "real" }, s.select.pretrained,
        model(base), data)) },
  }
  local evals = {}
  local function evaluate(name, k, labels, rounds, forget_rounds)
    local e = stage("evaluate/" .. name) (merge({ kind = "evaluate", split = k.select.out.split,
      knowledge = labels.knowledge, rounds = forget_rounds or 0 }, labels, model(k.model, rounds), data, s.evaluate))
    evals[#evals + 1] = e.out.metrics
  end
  local function unlearn(name, k, params, rounds)
    return stage("unlearn/" .. name) (merge({ kind = "unlearn", split = k.select.out.split, examples = k.examples,
      people = w.out.people, images = w.out.images }, s.unlearn, params, model(k.model, rounds)))
  end

  for _, kn in ipairs({ "finetuned", "pretrained" }) do
    local k = knowledge[kn]
    evaluate(kn .. "/before", k, { knowledge = kn, method = "none", round = 0 })
    for _, method in ipairs(s.methods) do
      local u = unlearn(kn .. "/" .. method, k, { method = method })
      evaluate(kn .. "/" .. method, k, { knowledge = kn, method = method, setting = "single", round = 1 }, { u })
    end
  end

  -- Sustainability: the fine-tuned forget set in sequential rounds, each from the previous round's model.
  local k = knowledge.finetuned
  for _, method in ipairs(s.select.finetuned.rounds > 1 and s.methods or {}) do
    local rounds = {}
    for r = 1, s.select.finetuned.rounds do
      local name = "finetuned/" .. method .. "/round" .. r
      rounds[r] = unlearn(name, k, { method = method, round = r }, rounds)
      evaluate(name, k, { knowledge = "finetuned", method = method, setting = "sequential", round = r }, rounds, r)
    end
  end

  -- Ablation: GA on pretrained knowledge with the projector frozen (the proj+llm run is the single-shot one).
  local kp = knowledge.pretrained
  local u = unlearn("pretrained/ga/llm", kp, { method = "ga", target = "llm" })
  evaluate("pretrained/ga/llm", kp, { knowledge = "pretrained", method = "ga", setting = "single", round = 1,
    target = "llm" }, { u })

  stage "report" { kind = "report", metrics = evals, title = s.title }
end
