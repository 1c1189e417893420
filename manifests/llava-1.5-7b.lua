-- llava-1.5-7b.lua: the PULSE protocol on LLaVA-1.5-7B (Hugging Face's llava-hf/llava-1.5-7b-hf), the model
-- MLLMU-Bench evaluates, with MLLMU-Bench and MMBench dev. What to download, where to put it, the command, the GPU
-- and the time it takes: docs/real-models.md. The recipe (settings.lua's `llava`) cites where each value comes from.
--
--   pulse-pipe run manifests/llava-1.5-7b.lua --device cuda
--   pulse-pipe cat report markdown
--
-- The three paths are this manifest's parameters. Relative paths start at this file's directory (manifests/), so
-- "../data/..." is data/ at the top of the repository; edit them if your files are elsewhere. A path that does not
-- exist stops the run before any stage, with one line naming the stage, the parameter and the path.
require "llava" {
  model = "../data/llava-1.5-7b-hf",     -- huggingface-cli download llava-hf/llava-1.5-7b-hf (about 14 GB)
  mllmu = "../data/mllmu-pulse",         -- tools/mllmu_to_pulse.py --data MLLMU-Bench --out data/mllmu-pulse
  mmbench = "../data/MMBench_DEV_EN.tsv", -- MMBench dev, English (about 4,300 questions)
  title = "PULSE on LLaVA-1.5-7B",
}
