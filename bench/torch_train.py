"""bench/torch_train.py: times training steps of transformers' LlavaForConditionalGeneration (+ PEFT LoRA) on
the shape bench_train describes (its --dump-config JSON), with the same batch layout, thread count, optimizer
(AdamW, weight decay 0, global-norm clip 1.0) and step (forward, loss, zero_grad, backward, clip, AdamW).
Prints one JSON line like bench_train's. Weights are torch's own random initialisation (shapes match the
engine's, values do not). Torch uses its own BLAS (MKL / oneDNN); OPENBLAS_CORETYPE does not affect it.

  .venv/bin/python bench/torch_train.py --config cfg.json --batch 8 --seq 96 --lora-r 0 --threads 2
  python3 bench/torch_train.py --config 7b.json --batch 4 --seq 704 --lora-r 128 --device cuda --dtype bf16
  python3 bench/torch_train.py --peak                  # the GPU's dense matmul rate, bf16 and fp32

On cuda the model is built on the GPU directly (no CPU copy of a 13B model). --dtype fp32 turns TF32 off, so
torch does the pedantic fp32 arithmetic the engine does. --dtype bf16 is the usual mixed-precision recipe
(LLaVA's train.py with bf16, HF Trainer's bf16=True): the model is built in bf16, PEFT keeps the adapter in fp32
(its autocast_adapter_dtype default), and the forward and the loss run under torch.autocast(bfloat16).
"""
import argparse
import contextlib
import json
import resource
import statistics
import time

import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration

IMAGE_TOKEN = 4
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def batch(cfg, b, t, device, dtype):
    """BOS, the image's tokens, random text; labels on the text only (bench_train's layout). Drawn on the CPU
    (the same values on every device), then moved."""
    patches = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, cfg.text_config.vocab_size, (b, t), generator=g)
    ids[:, 0] = 1
    ids[:, 1 : 1 + patches] = IMAGE_TOKEN
    labels = ids.clone()
    labels[:, : 1 + patches] = -100
    size = cfg.vision_config.image_size
    pixels = torch.rand((b, 3, size, size), generator=g) * 2 - 1
    out = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels.to(dtype), labels=labels)
    return {k: v.to(device) for k, v in out.items()}


@contextlib.contextmanager
def default_dtype(dtype):
    """Parameters are created in dtype (a bf16 13B model never exists in fp32 first)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def model(cfg, lora_r, device, dtype):
    """Built where it runs: on cuda nothing of the model (adapter included) is initialised on the CPU."""
    torch.manual_seed(0)
    with torch.device(device):
        with default_dtype(dtype):
            m = LlavaForConditionalGeneration(cfg)
        if lora_r == 0:
            return m.train()
        from peft import LoraConfig, get_peft_model

        lc = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05, target_modules=TARGETS, bias="none",
                        task_type="CAUSAL_LM")
        return get_peft_model(m, lc).train()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def gpu_name(device):
    return torch.cuda.get_device_name() if device == "cuda" else None


def peak(a):
    """Dense matmul rate: n^3 torch.matmul, mean of 10 after 3 warm-ups, bf16 then fp32 (no TF32)."""
    n, out = a.peak_n, {"impl": "peak", "device": a.device, "gpu": gpu_name(a.device), "n": a.peak_n}
    for name, dtype in DTYPES.items():
        x = torch.randn(n, n, device=a.device, dtype=dtype)
        y = torch.randn(n, n, device=a.device, dtype=dtype)
        for _ in range(3):
            z = torch.matmul(x, y)
        sync(a.device)
        t0 = time.perf_counter()
        for _ in range(10):
            z = torch.matmul(x, y)
        sync(a.device)
        dt = (time.perf_counter() - t0) / 10
        out[f"{name}_tflops"] = round(2.0 * n**3 / dt / 1e12, 2)
        del x, y, z
    out["torch"] = torch.__version__
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config")
    ap.add_argument("--shape", default="?")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--lora-r", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="transformers attention implementation (sdpa, eager)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    ap.add_argument("--peak", action="store_true", help="print the dense matmul rate (bf16, fp32) and exit")
    ap.add_argument("--peak-n", type=int, default=8192, help="matrix size for --peak")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.device == "cuda":
        if not torch.cuda.is_available():
            ap.error("--device cuda: torch sees no GPU")
        # the engine's fp32 is pedantic (no TF32): compare like with like (the peak's fp32 rate too)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if a.peak:
        return peak(a)
    if not a.config or not a.batch or not a.seq:
        ap.error("--config, --batch and --seq are needed (or --peak)")
    dtype = DTYPES[a.dtype]
    with open(a.config) as f:
        cfg = LlavaConfig.from_dict(json.load(f))
    cfg._attn_implementation = a.attn
    m = model(cfg, a.lora_r, a.device, dtype)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    inp = batch(cfg, a.batch, a.seq, a.device, dtype)
    # bf16: autocast as HF Trainer's bf16=True does (the fp32 adapter's matmuls run in bf16 too)
    amp = (lambda: torch.autocast(a.device, dtype=torch.bfloat16)) if a.dtype == "bf16" else contextlib.nullcontext
    times = []
    for i in range(a.warmup + a.steps):
        sync(a.device)
        t0 = time.perf_counter()
        with amp():
            loss = m(**inp).loss
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync(a.device)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"impl": "torch", "shape": a.shape, "device": a.device, "dtype": a.dtype, "threads": a.threads,
           "batch": a.batch, "seq": a.seq, "params": sum(p.numel() for p in m.parameters()),
           "trainable": sum(p.numel() for p in params), "step_ms": round(med * 1e3, 2),
           "tok_s": round(a.batch * a.seq / med), "maxrss_mb": round(rss), "attn": a.attn,
           "torch": torch.__version__, "steps": a.steps, "warmup": a.warmup, "loss": round(loss.item(), 4)}
    if a.device == "cuda":
        out["gpu"] = gpu_name(a.device)
        out["max_mem_alloc_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        out["max_mem_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
