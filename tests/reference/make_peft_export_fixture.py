"""Writes the fixture test_engine_peft_export reads: two rounds of unlearning on the tiny random LLaVA of
tests/data/llava_tiny (its weights and batch, loaded, not regenerated), the ONE PEFT adapter that stands for
both (stage kind export-peft, docs/formats.md "Several rounds as one adapter") as PEFT itself saves it, and the
logits PEFT computes with that adapter loaded by PeftModel.from_pretrained on the base.

  tests/data/peft_export/round1/, round2/   the rounds' adapters, saved by PEFT in the format pulse-pipe's
      finetune and unlearn write (task_type null, target_modules the regex over the language model that
      stages/adapter.c builds): round 1 r=4, alpha=8 on the seven decoder projections; round 2 r=3, alpha=4
      (scale 4/3, not exact in binary) on q_proj, v_proj and down_proj only. A is PEFT's initialisation, B
      random (PEFT's zeros would make the rounds no-ops).
  tests/data/peft_export/projector.safetensors   the projector after round 2 (random), named as unlearn's
      `projector` output names it ("model.multi_modal_projector.linear_1.weight", ...)
  tests/data/peft_export/export/   the combined adapter, built here in torch from the rules (rank 7 = 4 + 3;
      A = the rounds' A stacked, round 1's rows first; B = their B side by side, each times its alpha/r; zero
      blocks where round 2 does not adapt a module; lora_alpha = 7 so PEFT's scale is 1; target_modules the
      modules' full paths; the projector as modules_to_save; task_type CAUSAL_LM) and saved by
      save_pretrained
  tests/data/peft_export/logits.safetensors   "logits" [B,T,V] of PeftModel.from_pretrained(base, export/) on
      llava_tiny/io.safetensors' batch (two sequences with an image each, the second right-padded)

Before writing, the script checks in PEFT itself that the export is the round-2 model: merging round 1, then
round 2 (merge_and_unload) and setting the projector gives the same logits within 1e-5 relative, and the
logits moved away from the base model's.

With --check DIR it instead loads an export written by pulse-pipe (`pulse-pipe cat NAME adapter_model >
DIR/adapter_model.safetensors`, the same for adapter_config, from an export-peft stage on the fixture's files)
into the base with PeftModel.from_pretrained: every tensor must equal the fixture's, the config must read
back as rank 7 with the projector in modules_to_save, and the logits must be the fixture's.

PEFT saves target_modules from a Python set, whose order follows string hashing: the script re-runs itself
with PYTHONHASHSEED=0 so that adapter_config.json is the same on every run.

Run from the repository root:  .venv/bin/python tests/reference/make_peft_export_fixture.py
"""
import os
import shutil
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlavaForConditionalGeneration

SRC = "tests/data/llava_tiny"
OUT = "tests/data/peft_export"
MP = "model.multi_modal_projector."
ROUNDS = [  # (rank, alpha, projections, B's seed)
    (4, 8, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 11),
    (3, 4, ["q_proj", "v_proj", "down_proj"], 12),
]


def base_model():
    model = LlavaForConditionalGeneration.from_pretrained(SRC).eval()
    model.config._attn_implementation = "eager"
    return model


def save_dir(peft_model, path):
    peft_model.save_pretrained(path)
    os.remove(os.path.join(path, "README.md"))  # a model card template, not part of the format


def make_round(rank, alpha, projections, seed, path):
    """A round's adapter as pulse-pipe writes one: the language-model regex, no task type, B non-zero."""
    torch.manual_seed(seed)
    targets = r".*language_model.*\.(" + "|".join(projections) + ")"
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules=targets, bias="none")
    pm = get_peft_model(base_model(), cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    save_dir(pm, path)


def make_projector(path):
    gen = torch.Generator().manual_seed(13)
    base = base_model().state_dict()
    proj = {}
    for part in ("linear_1", "linear_2"):
        for what in ("weight", "bias"):
            shape = base[MP + part + "." + what].shape
            proj[MP + part + "." + what] = (torch.randn(shape, generator=gen) * 0.15).contiguous()
    save_file(proj, path, metadata={"format": "pt"})
    return proj


def lora_tensors(path):
    """{module: (A, B)} of a saved adapter, in the file's module order as the model lists them."""
    t = load_file(os.path.join(path, "adapter_model.safetensors"))
    mods = {}
    for key in t:
        if key.endswith(".lora_A.weight"):
            m = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            mods[m] = (t[key], t[key.replace(".lora_A.", ".lora_B.")])
    return mods


def module_order(model, modules):
    """The modules in the model's order (what pulse-pipe's round 1 lists first)."""
    names = [n for n, _ in model.named_modules()]
    return sorted(modules, key=names.index)


def combined(rounds):
    """{module: (A [R, in], B [out, R])}: the rounds' blocks, B times alpha/r, zeros where a round is absent."""
    order = []
    for mods, _, _ in rounds:
        order += [m for m in module_order(base_model(), mods) if m not in order]
    out = {}
    for m in order:
        a_blocks, b_blocks = [], []
        shape = next(mods[m] for mods, _, _ in rounds if m in mods)
        n_in, n_out = shape[0].shape[1], shape[1].shape[0]
        for mods, rank, alpha in rounds:
            if m in mods:
                a, b = mods[m]
                a_blocks.append(a)
                b_blocks.append(b * (alpha / rank))  # fp32 tensor x Python float: PEFT's B A * scaling
            else:
                a_blocks.append(torch.zeros(rank, n_in))
                b_blocks.append(torch.zeros(n_out, rank))
        out[m] = (torch.cat(a_blocks, 0), torch.cat(b_blocks, 1))
    return order, out


def make_export(order, tensors, proj, path):
    rank = sum(r for r, _, _, _ in ROUNDS)
    cfg = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=order, bias="none",
                     modules_to_save=[MP + "linear_1", MP + "linear_2"], task_type="CAUSAL_LM")
    pm = get_peft_model(base_model(), cfg)
    state = dict(pm.named_parameters())
    with torch.no_grad():
        for m, (a, b) in tensors.items():
            state[f"base_model.model.{m}.lora_A.default.weight"].copy_(a)
            state[f"base_model.model.{m}.lora_B.default.weight"].copy_(b)
        for name, value in proj.items():
            part, what = name.removeprefix(MP).split(".")
            state[f"base_model.model.{MP}{part}.modules_to_save.default.{what}"].copy_(value)
    save_dir(pm, path)


def batch():
    io = load_file(os.path.join(SRC, "io.safetensors"))
    return dict(input_ids=io["input_ids"].long(), attention_mask=io["attention_mask"].long(),
                pixel_values=io["pixel_values"])


def logits(model):
    with torch.no_grad():
        return model(**batch()).logits.detach().contiguous()


def sequential_logits(proj):
    """Round 1 merged, then round 2 merged, then the projector: what pulse-pipe's model_build_rounds does."""
    model = base_model()
    for k in (1, 2):
        model = PeftModel.from_pretrained(model, os.path.join(OUT, f"round{k}")).merge_and_unload()
    with torch.no_grad():
        for name, value in proj.items():
            model.get_parameter(name).copy_(value)
    return logits(model)


def rel(a, b):
    valid = batch()["attention_mask"].bool()
    return ((a - b)[valid].norm() / b[valid].norm()).item()


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for k, (rank, alpha, projections, seed) in enumerate(ROUNDS, 1):
        make_round(rank, alpha, projections, seed, os.path.join(OUT, f"round{k}"))
    proj = make_projector(os.path.join(OUT, "projector.safetensors"))
    rounds = [(lora_tensors(os.path.join(OUT, f"round{k}")), r, a) for k, (r, a, _, _) in enumerate(ROUNDS, 1)]
    order, tensors = combined(rounds)
    export = os.path.join(OUT, "export")
    make_export(order, tensors, proj, export)
    got = logits(PeftModel.from_pretrained(base_model(), export).eval())
    seq, base = sequential_logits(proj), logits(base_model())
    r_seq, r_base = rel(got, seq), rel(got, base)
    print(f"export vs rounds merged in turn: rel {r_seq:.3g}; vs the base model: rel {r_base:.3g}")
    if not r_seq < 1e-5 or not r_base > 0.05:
        sys.exit("the exported adapter is not the round-2 model")
    save_file({"logits": got}, os.path.join(OUT, "logits.safetensors"), metadata={"format": "pt"})
    print(f"wrote {OUT}/: {len(order)} modules, rank {sum(r for r, _, _, _ in ROUNDS)}")


def check(directory):
    """pulse-pipe's export in PEFT: the same tensors as the fixture's once loaded, and the same logits."""
    pm = PeftModel.from_pretrained(base_model(), directory).eval()
    state = pm.state_dict()
    want = load_file(os.path.join(OUT, "export", "adapter_model.safetensors"))
    for key, tensor in want.items():
        if ".lora_" in key:
            loaded = state[key.replace(".weight", ".default.weight")]
        else:
            part, what = key.removeprefix("base_model.model." + MP).split(".")
            loaded = state[f"base_model.model.{MP}{part}.modules_to_save.default.{what}"]
        if not torch.equal(loaded, tensor):
            sys.exit(f"{key}: differs after loading {directory}")
    cfg = pm.peft_config["default"]
    if (cfg.r, cfg.lora_alpha, sorted(cfg.modules_to_save)) != (7, 7, [MP + "linear_1", MP + "linear_2"]):
        sys.exit(f"{directory}: config read back as r={cfg.r} alpha={cfg.lora_alpha} {cfg.modules_to_save}")
    r = rel(logits(pm), load_file(os.path.join(OUT, "logits.safetensors"))["logits"])
    if not r < 1e-6:
        sys.exit(f"{directory}: logits rel {r:.3g} from the fixture's")
    print(f"{directory}: loads in peft, {len(want)} tensors identical, logits rel {r:.3g}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    elif os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED="0"))
    else:
        main()
