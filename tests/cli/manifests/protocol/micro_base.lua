-- The start the test manifests beside micro.lua share (bad.lua here, ops_check.sh's extra stages): `with`
-- (tables merged, later ones winning), micro.lua's world, tower and base stages (cached once micro.lua ran:
-- the same parameters as protocol.lua gives them), and the refs a stage needs for that model and that world.
local s = require "micro_settings"
local M = {}

function M.with(...)
  local t = {}
  for _, part in ipairs({ ... }) do
    for k, v in pairs(part) do t[k] = v end
  end
  return t
end

M.w = stage "world" (M.with({ kind = "synth", seed = s.seed }, s.world))
local p = s.pretrain
M.tower = stage "tower" (M.with({ kind = "tower", images = M.w.out.images, labels = M.w.out.labels,
  image_size = p.image_size, patch = p.patch, vision_hidden = p.vision_hidden,
  vision_intermediate = p.vision_intermediate, vision_layers = p.vision_layers, vision_heads = p.vision_heads },
  s.tower))
M.base = stage "base" (M.with({ kind = "pretrain", examples = M.w.out.pretrain, images = M.w.out.images,
  tokenizer = M.w.out.tokenizer, tower = M.tower.out.tower }, s.pretrain))
M.model = { model = M.base.out.model, config = M.base.out.config, tokenizer = M.base.out.tokenizer }
M.data = { people = M.w.out.people, items = M.w.out.items, images = M.w.out.images }
return M
