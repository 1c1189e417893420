-- llava.lua: the PULSE protocol on a real LLaVA-1.5 checkpoint in Hugging Face format, with MLLMU-Bench (as
-- tools/mllmu_to_pulse.py writes it) and MMBench dev: protocol.lua's real-model branch, settings.llava's
-- recipe. llava-1.5-7b.lua and llava-1.5-13b.lua call it with the paths to the user's files:
--
--   require "llava" { model = "dir", mllmu = "dir", mmbench = "file.tsv", title = "...", settings = {...} }
--
-- model, mllmu and mmbench are required; paths are relative to the manifest's directory. mllmu and mmbench may
-- also be tables of import-dataset parameters ({ path = "...", limit = 200 }). `settings` replaces whole
-- entries of settings.llava (a test's tiny schedules; `select = {...}` replaces both selections).
local settings = require "settings"
local protocol = require "protocol"

local REQUIRED = {
  { "model", "the LLaVA-1.5 Hugging Face directory (config.json, the safetensors shards, tokenizer.json)" },
  { "mllmu", "the MLLMU-Bench directory that tools/mllmu_to_pulse.py writes" },
  { "mmbench", "the MMBench dev TSV (MMBench_DEV_EN.tsv)" },
}
local KNOWN = { model = true, mllmu = true, mmbench = true, title = true, settings = true }

local function given(v)
  if type(v) == "table" then v = v.path end
  return type(v) == "string" and v ~= ""
end

return function(p)
  for k in pairs(p) do
    if not KNOWN[k] then
      error(string.format("llava: unknown parameter '%s' (model, mllmu, mmbench, title, settings)", tostring(k)), 2)
    end
  end
  for _, r in ipairs(REQUIRED) do
    if not given(p[r[1]]) then
      error(string.format("llava: parameter '%s' is missing: the path to %s (docs/real-models.md)", r[1], r[2]), 2)
    end
  end
  local s = {}
  for k, v in pairs(settings.llava) do s[k] = v end
  for k, v in pairs(p.settings or {}) do s[k] = v end
  -- LLaVA-1.5's MMBench evaluation wraps each prompt in its conversation template (vicuna_v1); a table given
  -- for mmbench may say otherwise.
  local mmbench = { template = "vicuna_v1" }
  for k, v in pairs(type(p.mmbench) == "table" and p.mmbench or { path = p.mmbench }) do mmbench[k] = v end
  s.data = { mllmu = p.mllmu, mmbench = mmbench }
  s.base_model = p.model
  s.title = p.title or s.title
  protocol(s)
end
