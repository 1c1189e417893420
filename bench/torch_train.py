"""bench/torch_train.py: times training steps of transformers' LlavaForConditionalGeneration (+ PEFT LoRA) on
the shape bench_train describes (its --dump-config JSON), with the same batch layout, thread count, optimizer
(AdamW, weight decay 0, global-norm clip 1.0) and step (forward, loss, zero_grad, backward, clip, AdamW).
Prints one JSON line like bench_train's. Weights are torch's own random initialisation (shapes match the
engine's, values do not). Torch uses its own BLAS (MKL / oneDNN); OPENBLAS_CORETYPE does not affect it.

  .venv/bin/python bench/torch_train.py --config cfg.json --batch 8 --seq 96 --lora-r 0 --threads 2
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration

IMAGE_TOKEN = 4
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def batch(cfg, b, t):
    """BOS, the image's tokens, random text; labels on the text only (bench_train's layout)."""
    patches = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, cfg.text_config.vocab_size, (b, t), generator=g)
    ids[:, 0] = 1
    ids[:, 1 : 1 + patches] = IMAGE_TOKEN
    labels = ids.clone()
    labels[:, : 1 + patches] = -100
    size = cfg.vision_config.image_size
    pixels = torch.rand((b, 3, size, size), generator=g) * 2 - 1
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels, labels=labels)


def model(cfg, lora_r):
    torch.manual_seed(0)
    m = LlavaForConditionalGeneration(cfg)
    if lora_r == 0:
        return m.train()
    from peft import LoraConfig, get_peft_model

    lc = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05, target_modules=TARGETS, bias="none",
                    task_type="CAUSAL_LM")
    return get_peft_model(m, lc).train()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--shape", default="?")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--lora-r", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="transformers attention implementation (sdpa, eager)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        cfg = LlavaConfig.from_dict(json.load(f))
    cfg._attn_implementation = a.attn
    m = model(cfg, a.lora_r)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    inp = batch(cfg, a.batch, a.seq)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = m(**inp).loss
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "torch", "shape": a.shape, "threads": a.threads, "batch": a.batch, "seq": a.seq,
                      "params": sum(p.numel() for p in m.parameters()),
                      "trainable": sum(p.numel() for p in params), "step_ms": round(med * 1e3, 2),
                      "tok_s": round(a.batch * a.seq / med), "maxrss_mb": round(rss), "attn": a.attn,
                      "torch": torch.__version__, "loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()
