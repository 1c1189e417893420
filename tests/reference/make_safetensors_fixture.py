"""Writes tests/data/safetensors_py.safetensors with the Python `safetensors` package (torch back end), so
test_engine_safetensors reads a file produced by the reference implementation: F32, F16 and BF16 tensors
(torch rounds the fp16/bf16 values, including 65504 and 1e30 -> inf in fp16), a 0-d tensor, an empty tensor
and string metadata. Run from the repository root: .venv/bin/python tests/reference/make_safetensors_fixture.py
"""
import sys

import torch
from safetensors.torch import load_file, save_file

OUT = "tests/data/safetensors_py.safetensors"

# The same six values the C test lists (0.1 etc. are rounded to fp32 first, as in C).
src = torch.tensor([0.1, -1.5, 3.14159265, 65504.0, -1e-6, 1e30], dtype=torch.float32)

tensors = {
    "weights.f32": src.reshape(2, 3),
    "weights.f16": src.to(torch.float16),
    "weights.bf16": src.to(torch.bfloat16).reshape(3, 2, 1),
    "scalar": torch.tensor(7.25, dtype=torch.float32),
    "empty": torch.zeros((0, 5), dtype=torch.float16),
}
save_file(tensors, OUT, metadata={"format": "pt", "source": "pulse-pipe fixture"})

back = load_file(OUT)
for name, t in tensors.items():
    if not torch.equal(back[name], t):
        sys.exit(f"{name}: read back differently")
print(f"wrote {OUT}")
